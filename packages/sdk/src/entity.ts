// What the server needs from any entity definition, whatever its type. Each entity type
// (eventsourced/, later value/, crdt/, action/) provides definitions implementing `Entity` and one
// `EntityProtocol` that serves them all.
import type { DescFile, DescService } from "@bufbuild/protobuf";
import type { UntypedServiceImplementation } from "@grpc/grpc-js";
import type { Logger } from "./logger.js";
import type { Streams } from "./streams.js";

export interface Entity {
  /** The user's gRPC service, implemented by this entity. */
  readonly service: DescService;
  /** The entity type as discovery names it, e.g. "cloudstate.eventsourced.EventSourced". */
  readonly entityType: string;
  /** The name under which the proxy stores this entity type's state. */
  readonly persistenceId: string;
  /** Idle time after which the proxy passivates an entity; undefined = the proxy's default. */
  readonly passivationTimeoutMs: number | undefined;
  /** The files the discovery descriptor set must contain (their imports are added). */
  readonly files: readonly DescFile[];
  /** @internal The protocol that serves this kind of entity. */
  readonly protocol: EntityProtocol;
}

/** @internal One entity type's protocol service (e.g. cloudstate.eventsourced.EventSourced). */
export interface EntityProtocol {
  /** The protocol's gRPC service; its full name is also the entity type. */
  readonly service: DescService;
  /** Handlers for the protocol service, routing to `entities` (all of this protocol). */
  handlers(entities: readonly Entity[], env: ProtocolEnv): UntypedServiceImplementation;
}

export interface ProtocolEnv {
  readonly logger: Logger;
  readonly streams: Streams;
}
