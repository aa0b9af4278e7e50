// Defining a CRDT entity: its service, its CRDT (a replicated data type, one per entity) and its
// command handlers, typed from the user's generated protobuf code.
import type { DescFile, Message, MessageShape } from "@bufbuild/protobuf";
import type { GenService, GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import { checkPassivationTimeout, commandRoutes, type CommandRoute } from "../command.js";
import type { Reply } from "../context.js";
import type { Entity } from "../entity.js";
import type { CrdtCommandContext, CrdtStreamedCommandContext, StreamedReplies } from "./context.js";
import { crdtProtocol } from "./handler.js";
import type { Crdt } from "./types/crdt.js";

/**
 * One handler per method of the service, keyed by the method's local name (e.g. `increment`). A
 * unary method's handler returns the reply; a server-streaming method's handler may return replies
 * (each one a message to the client) or nothing, and keeps the call open with `ctx.onStateChange`
 * or `ctx.onStreamCancel`.
 */
export type CrdtCommandHandlers<Methods extends GenServiceMethods, State extends Crdt> = {
  [K in keyof Methods]: Methods[K]["methodKind"] extends "unary"
    ? (
        command: MessageShape<Methods[K]["input"]>,
        ctx: CrdtCommandContext<State>,
      ) => Reply<Methods[K]["output"]> | Promise<Reply<Methods[K]["output"]>>
    : Methods[K]["methodKind"] extends "server_streaming"
      ? (
          command: MessageShape<Methods[K]["input"]>,
          ctx: CrdtStreamedCommandContext<State, Methods[K]["output"]>,
        ) => StreamedReplies<Methods[K]["output"]> | Promise<StreamedReplies<Methods[K]["output"]>>
      : never; // CRDT entities serve no client-streaming methods (the proxy rejects them at discovery)
};

export interface CrdtEntityOptions<Methods extends GenServiceMethods, State extends Crdt> {
  /** The generated service (e.g. `Counter` from `counter_pb.ts`). */
  service: GenService<Methods>;
  /**
   * Makes the entity's CRDT, empty: `() => new GCounter()`. The CRDT's type is the entity's, for
   * good; the proxy's initial state and other replicas' changes are applied to it.
   */
  crdt: (entityId: string) => State;
  /** The command handlers; each returns the reply (or `ctx.forward(...)`), possibly as a promise. */
  commands: NoInfer<CrdtCommandHandlers<Methods, State>>;
  /** The name under which the proxy keeps this entity type's CRDTs; default: the service's full name. */
  persistenceId?: string;
  /** Overrides the proxy's idle time before it passivates an entity (never while a streamed call is open). */
  passivationTimeoutMs?: number;
}

/** @internal */
export type AnyCrdtCommandHandler = (command: Message, ctx: CrdtStreamedCommandContext<Crdt, never>) => unknown;

/** A CRDT entity type; pass it to `serve({ entities: [...] })`. */
export class CrdtEntity<Methods extends GenServiceMethods = GenServiceMethods, State extends Crdt = Crdt> implements Entity {
  readonly entityType = "cloudstate.crdt.Crdt";
  readonly protocol = crdtProtocol;
  readonly service: GenService<Methods>;
  readonly persistenceId: string;
  readonly passivationTimeoutMs: number | undefined;
  readonly files: readonly DescFile[];
  /** @internal */ readonly crdt: (entityId: string) => State;
  /** @internal By proto method name, as commands name them. */ readonly commands: ReadonlyMap<string, CommandRoute<AnyCrdtCommandHandler>>;

  constructor(options: CrdtEntityOptions<Methods, State>) {
    const { service, passivationTimeoutMs } = options;
    const where = `CRDT entity ${service.typeName}`;
    checkPassivationTimeout(where, passivationTimeoutMs);
    if (typeof options.crdt !== "function") throw new TypeError(`${where}: crdt must be a function that makes the entity's CRDT, e.g. () => new GCounter()`);
    for (const method of service.methods) {
      if (method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming") {
        throw new TypeError(`${where}: ${method.name} is ${method.methodKind}; CRDT entities serve unary and server-streaming methods only`);
      }
    }
    this.service = service;
    this.persistenceId = options.persistenceId || service.typeName;
    this.passivationTimeoutMs = passivationTimeoutMs;
    this.crdt = options.crdt;
    this.commands = commandRoutes(service, options.commands, where);
    this.files = [service.file];
  }
}

/**
 * Defines a CRDT entity. The compiler checks the command handlers against the service (names,
 * input and reply types, streamed or not) and `ctx.state` against the CRDT `crdt` makes.
 */
export function crdtEntity<Methods extends GenServiceMethods, State extends Crdt>(
  options: CrdtEntityOptions<Methods, State>,
): CrdtEntity<Methods, State> {
  return new CrdtEntity(options);
}
