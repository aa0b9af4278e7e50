// Defining a value entity: its service, its state (stored whole after every change) and its command
// handlers, typed from the user's generated protobuf code.
import type { DescFile, DescMessage, Message, MessageShape } from "@bufbuild/protobuf";
import type { GenService, GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import { typeUrl } from "../any.js";
import { checkPassivationTimeout, commandRoutes, type CommandRoute } from "../command.js";
import type { NoReply, Reply } from "../context.js";
import type { Entity } from "../entity.js";
import type { ValueEntityCommandContext } from "./context.js";
import { valueEntityProtocol } from "./handler.js";

/** One handler per method of the service, keyed by the method's local name (e.g. `addItem`). */
export type ValueEntityCommandHandlers<Methods extends GenServiceMethods, State extends Message> = {
  [K in keyof Methods]: Methods[K]["methodKind"] extends "unary"
    ? (
        command: MessageShape<Methods[K]["input"]>,
        ctx: ValueEntityCommandContext<State>,
      ) => Reply<Methods[K]["output"]> | NoReply | Promise<Reply<Methods[K]["output"]> | NoReply>
    : never; // value entities serve unary methods only (the proxy rejects others at discovery)
};

export interface ValueEntityOptions<Methods extends GenServiceMethods, StateSchema extends DescMessage> {
  /** The generated service (e.g. `ShoppingCart` from `shoppingcart_pb.ts`). */
  service: GenService<Methods>;
  /** The name under which the proxy stores this entity type's states. */
  persistenceId: string;
  /** The state's message type. */
  state: StateSchema;
  /** The state of an entity that has none stored (never set, or deleted). */
  initial: (entityId: string) => MessageShape<StateSchema>;
  /** The command handlers; each returns the reply (or `ctx.forward(...)`, `ctx.noReply()`), possibly as a promise. */
  commands: NoInfer<ValueEntityCommandHandlers<Methods, MessageShape<StateSchema>>>;
  /** Overrides the proxy's idle time before it passivates an entity. */
  passivationTimeoutMs?: number;
}

type AnyCommandHandler = (command: Message, ctx: ValueEntityCommandContext<Message>) => unknown;

/** A value entity type; pass it to `serve({ entities: [...] })`. */
export class ValueEntity<
  Methods extends GenServiceMethods = GenServiceMethods,
  StateSchema extends DescMessage = DescMessage,
> implements Entity {
  readonly entityType = "cloudstate.valueentity.ValueEntity";
  readonly protocol = valueEntityProtocol;
  readonly service: GenService<Methods>;
  readonly persistenceId: string;
  readonly passivationTimeoutMs: number | undefined;
  readonly files: readonly DescFile[];
  readonly stateSchema: StateSchema;
  /** @internal */ readonly stateUrl: string;
  /** @internal */ readonly initial: (entityId: string) => Message;
  /** @internal By proto method name, as commands name them. */ readonly commands: ReadonlyMap<string, CommandRoute<AnyCommandHandler>>;

  constructor(options: ValueEntityOptions<Methods, StateSchema>) {
    const { service, state, passivationTimeoutMs } = options;
    const where = `value entity ${service.typeName}`;
    checkPassivationTimeout(where, passivationTimeoutMs);
    if (!options.persistenceId) throw new TypeError(`${where}: persistenceId is required`);
    this.service = service;
    this.persistenceId = options.persistenceId;
    this.passivationTimeoutMs = passivationTimeoutMs;
    this.stateSchema = state;
    this.stateUrl = typeUrl(state);
    this.initial = options.initial;
    this.commands = commandRoutes(service, options.commands, where, { model: "value entities" });
    this.files = [...new Set<DescFile>([service.file, state.file])];
  }
}

/**
 * Defines a value entity. The compiler checks the command handlers against the service (names,
 * input and reply types) and `ctx.setState` against the state type.
 */
export function valueEntity<Methods extends GenServiceMethods, StateSchema extends DescMessage>(
  options: ValueEntityOptions<Methods, StateSchema>,
): ValueEntity<Methods, StateSchema> {
  return new ValueEntity(options);
}
