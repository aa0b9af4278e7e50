// Defining an event-sourced entity: its service, state, events and command handlers, typed from the
// user's generated protobuf code.
import type { DescFile, DescMessage, Message, MessageShape } from "@bufbuild/protobuf";
import type { GenService, GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import { typeUrl } from "../any.js";
import { checkPassivationTimeout, commandRoutes, type CommandRoute } from "../command.js";
import type { NoReply, Reply } from "../context.js";
import type { Entity } from "../entity.js";
import type { EventSourcedCommandContext } from "./context.js";
import { eventSourcedProtocol } from "./handler.js";

/** `[EventSchema, (state, event) => newState]` for each event type, in a tuple. */
export type EventHandlers<State, Events extends readonly DescMessage[]> = {
  readonly [I in keyof Events]: readonly [schema: Events[I], apply: (state: State, event: MessageShape<Events[I]>) => State];
};

/** One handler per method of the service, keyed by the method's local name (e.g. `addItem`). */
export type CommandHandlers<Methods extends GenServiceMethods, State extends Message, Event extends Message> = {
  [K in keyof Methods]: Methods[K]["methodKind"] extends "unary"
    ? (
        command: MessageShape<Methods[K]["input"]>,
        ctx: EventSourcedCommandContext<State, Event>,
      ) => Reply<Methods[K]["output"]> | NoReply | Promise<Reply<Methods[K]["output"]> | NoReply>
    : never; // event-sourced entities serve unary methods only (the proxy rejects others at discovery)
};

export interface EventSourcedOptions<
  Methods extends GenServiceMethods,
  StateSchema extends DescMessage,
  Events extends readonly DescMessage[],
> {
  /** The generated service (e.g. `ShoppingCart` from `shoppingcart_pb.ts`). */
  service: GenService<Methods>;
  /** The name under which the proxy journals this entity type's events. */
  persistenceId: string;
  /** The state's message type, also the snapshot's. */
  state: StateSchema;
  /** The state of an entity with no snapshot and no events. */
  initial: (entityId: string) => MessageShape<StateSchema>;
  /** Snapshot when the event count crosses a multiple of this; 0 = never. Default 100. */
  snapshotEvery?: number;
  /**
   * The event handlers. Each returns the state after the event: it may mutate the state it is given
   * and return it, or return a new one. They must be pure (replay runs them again) and never throw.
   */
  events: EventHandlers<MessageShape<StateSchema>, Events>;
  /** The command handlers; each returns the reply (or `ctx.forward(...)`, `ctx.noReply()`), possibly as a promise. */
  commands: NoInfer<CommandHandlers<Methods, MessageShape<StateSchema>, MessageShape<Events[number]>>>;
  /** Overrides the proxy's idle time before it passivates an entity. */
  passivationTimeoutMs?: number;
}

type AnyCommandHandler = (command: Message, ctx: EventSourcedCommandContext<Message, Message>) => unknown;
type AnyEventHandler = (state: Message, event: Message) => Message;

/** @internal An event type's handler, resolved by the event's full name. */
export interface EventRoute {
  readonly schema: DescMessage;
  readonly url: string;
  readonly apply: AnyEventHandler;
}

/** An event-sourced entity type; pass it to `serve({ entities: [...] })`. */
export class EventSourcedEntity<
  Methods extends GenServiceMethods = GenServiceMethods,
  StateSchema extends DescMessage = DescMessage,
> implements Entity {
  readonly entityType = "cloudstate.eventsourced.EventSourced";
  readonly protocol = eventSourcedProtocol;
  readonly service: GenService<Methods>;
  readonly persistenceId: string;
  readonly passivationTimeoutMs: number | undefined;
  readonly files: readonly DescFile[];
  readonly stateSchema: StateSchema;
  readonly snapshotEvery: number;
  /** @internal */ readonly stateUrl: string;
  /** @internal */ readonly initial: (entityId: string) => Message;
  /** @internal By proto method name, as commands name them. */ readonly commands: ReadonlyMap<string, CommandRoute<AnyCommandHandler>>;
  /** @internal By full message name. */ readonly events: ReadonlyMap<string, EventRoute>;

  constructor(options: EventSourcedOptions<Methods, StateSchema, readonly DescMessage[]>) {
    const { service, state, snapshotEvery = 100, passivationTimeoutMs } = options;
    const where = `event-sourced entity ${service.typeName}`;
    if (!Number.isInteger(snapshotEvery) || snapshotEvery < 0) {
      throw new TypeError(`${where}: snapshotEvery must be a whole number >= 0, got ${snapshotEvery}`);
    }
    checkPassivationTimeout(where, passivationTimeoutMs);
    if (!options.persistenceId) throw new TypeError(`${where}: persistenceId is required`);
    this.service = service;
    this.persistenceId = options.persistenceId;
    this.passivationTimeoutMs = passivationTimeoutMs;
    this.stateSchema = state;
    this.stateUrl = typeUrl(state);
    this.snapshotEvery = snapshotEvery;
    this.initial = options.initial;

    this.commands = commandRoutes(service, options.commands, where, { model: "event-sourced entities" });

    const events = new Map<string, EventRoute>();
    for (const [schema, apply] of options.events as unknown as readonly (readonly [DescMessage, AnyEventHandler])[]) {
      if (events.has(schema.typeName)) throw new TypeError(`${where}: two handlers for event ${schema.typeName}`);
      events.set(schema.typeName, { schema, url: typeUrl(schema), apply });
    }
    this.events = events;

    const files = new Set<DescFile>([service.file, state.file]);
    for (const { schema } of events.values()) files.add(schema.file);
    this.files = [...files];
  }
}

/**
 * Defines an event-sourced entity. The compiler checks the command handlers against the service
 * (names, input and reply types) and `ctx.emit` against the event types that have a handler.
 */
export function eventSourced<
  Methods extends GenServiceMethods,
  StateSchema extends DescMessage,
  const Events extends readonly DescMessage[],
>(options: EventSourcedOptions<Methods, StateSchema, Events>): EventSourcedEntity<Methods, StateSchema> {
  return new EventSourcedEntity<Methods, StateSchema>(options as unknown as EventSourcedOptions<Methods, StateSchema, readonly DescMessage[]>);
}
