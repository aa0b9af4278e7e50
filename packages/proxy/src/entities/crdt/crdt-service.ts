// The host of one CRDT service: one CrdtEntity (this node's replica and its stream) per entity id.
import type { ServiceModel } from "../../discovery/service-model.js";
import type { ProxyError } from "../../errors.js";
import type { KeyValueStore } from "../../store/store.js";
import type { Logger } from "../../telemetry/logger.js";
import type { UserFunctionConnection } from "../../user-function/connection.js";
import type { CommandOutcome, CommandRequest, EntityService } from "../command.js";
import { EntityHost } from "../entity-host.js";
import type { ReplicaContext } from "./crdt.js";
import { CrdtEntity } from "./crdt-entity.js";

export interface CrdtServiceOptions {
  readonly service: ServiceModel;
  readonly crdts: KeyValueStore;
  /** This node's id and the live nodes (one node: singleNode(id)). */
  readonly replica: ReplicaContext;
  readonly connection: UserFunctionConnection;
  readonly commandTimeoutMs: number;
  readonly log: Logger;
  readonly reportError: (message: string) => void;
  /** Runs side effects whose client is gone (cancelled streamed calls); the dispatcher's settle. */
  readonly runDetached: (outcome: CommandOutcome, request: CommandRequest) => Promise<void>;
  readonly onRestart?: ((entityId: string) => void) | undefined;
}

export class CrdtService implements EntityService {
  private readonly host: EntityHost<CrdtEntity>;

  constructor(o: CrdtServiceOptions) {
    const log = o.log.child({ service: o.service.name });
    this.host = new EntityHost(
      (entityId, release) =>
        new CrdtEntity({
          serviceName: o.service.name,
          persistenceId: o.service.persistenceId,
          entityId,
          passivationTimeoutMs: o.service.passivationTimeoutMs,
          commandTimeoutMs: o.commandTimeoutMs,
          crdts: o.crdts,
          replica: o.replica,
          connection: o.connection,
          log,
          release,
          reportError: o.reportError,
          runDetached: o.runDetached,
          onRestart: o.onRestart && (() => o.onRestart!(entityId)),
        }),
    );
  }

  handle(request: CommandRequest): Promise<CommandOutcome> {
    return this.host.get(request.entityId).handle(request);
  }

  /** A server-streaming command: every outcome the user function streams, until it ends the stream. */
  async *handleStreamed(request: CommandRequest): AsyncIterable<CommandOutcome> {
    // The entity is looked up when the caller starts reading, so an unread call starts nothing.
    yield* this.host.get(request.entityId).handleStreamed(request);
  }

  activeEntities(): number {
    return this.host.size();
  }

  activeEntityIds(): string[] {
    return this.host.ids();
  }

  shutdown(): Promise<void> {
    return this.host.shutdown();
  }

  abort(error: ProxyError): void {
    this.host.abort(error);
  }
}
