// The host of one event-sourced service: one EventSourcedEntity per entity id.
import type { ProxyError } from "../../errors.js";
import type { ServiceModel } from "../../discovery/service-model.js";
import type { Journal } from "../../store/store.js";
import type { Logger } from "../../telemetry/logger.js";
import type { UserFunctionConnection } from "../../user-function/connection.js";
import type { CommandOutcome, CommandRequest, EntityService } from "../command.js";
import { EntityHost } from "../entity-host.js";
import { EventSourcedEntity } from "./eventsourced-entity.js";

export interface EventSourcedServiceOptions {
  readonly service: ServiceModel;
  readonly journal: Journal;
  readonly connection: UserFunctionConnection;
  readonly commandTimeoutMs: number;
  readonly log: Logger;
  readonly reportError: (message: string) => void;
  readonly onRestart?: () => void;
}

export class EventSourcedService implements EntityService {
  private readonly host: EntityHost<EventSourcedEntity>;

  constructor(o: EventSourcedServiceOptions) {
    const log = o.log.child({ service: o.service.name });
    this.host = new EntityHost(
      (entityId, release) =>
        new EventSourcedEntity({
          serviceName: o.service.name,
          persistenceId: o.service.persistenceId,
          entityId,
          passivationTimeoutMs: o.service.passivationTimeoutMs,
          commandTimeoutMs: o.commandTimeoutMs,
          journal: o.journal,
          connection: o.connection,
          log,
          release,
          reportError: o.reportError,
          onRestart: o.onRestart,
        }),
    );
  }

  handle(request: CommandRequest): Promise<CommandOutcome> {
    return this.host.get(request.entityId).handle(request);
  }

  activeEntities(): number {
    return this.host.size();
  }

  shutdown(): Promise<void> {
    return this.host.shutdown();
  }

  abort(error: ProxyError): void {
    this.host.abort(error);
  }
}
