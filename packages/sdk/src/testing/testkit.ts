// Runs an entity or action in-process, as the proxy would (journal and snapshots, stored state,
// restarts, call shapes), with no network: for the user's unit tests. Commands and replies still go
// through their wire encoding.
import {
  create,
  fromBinary,
  type DescMessage,
  type DescMethod,
  type DescService,
  type Message,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import type { GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import type { Any } from "@bufbuild/protobuf/wkt";
import {
  ActionCommandSchema,
  CommandSchema,
  EventSourcedEventSchema,
  EventSourcedSnapshotSchema,
  ValueEntityInitStateSchema,
  type ActionCommand,
  type ActionResponse,
  type Forward,
  type SideEffect,
} from "@cloudstate-ts/protocol";
import { Action } from "../action/entity.js";
import { ActionRunner } from "../action/handler.js";
import { pack, typeNameOf } from "../any.js";
import { metadataProto, type MetadataInit } from "../context.js";
import { CrdtEntity } from "../crdt/entity.js";
import type { Crdt } from "../crdt/types/crdt.js";
import { CommandFailure } from "../errors.js";
import { EventSourcedEntity } from "../eventsourced/entity.js";
import { EventSourcedInstance } from "../eventsourced/handler.js";
import { stderrLogger, type Logger } from "../logger.js";
import { ValueEntity } from "../value/entity.js";
import { ValueEntityInstance } from "../value/handler.js";
import { CrdtTestkit, type CrdtTestkitOptions } from "./crdt-testkit.js";

/** Everything one command produced. */
export interface CommandResult<Output extends Message> {
  /** The reply, unless the command forwarded or failed. */
  readonly reply?: Output;
  readonly forward?: Forward;
  readonly failure?: { readonly description: string; readonly restart: boolean };
  /** The events persisted by this command (none on failure). */
  readonly events: Message[];
  /** The side effects the proxy would run (none on failure). */
  readonly sideEffects: SideEffect[];
  /** Whether the command's reply carried a snapshot. */
  readonly snapshotted: boolean;
}

export interface TestkitOptions {
  /** Default "test-entity". */
  entityId?: string;
  /** Where unexpected handler errors are logged; default stderr. */
  logger?: Logger;
}

export class EventSourcedTestkit<Methods extends GenServiceMethods, StateSchema extends DescMessage> {
  readonly entityId: string;
  /** Every persisted event, decoded, in journal order. */
  readonly events: Message[] = [];
  private readonly journal: Any[] = [];
  private snapshot: { sequence: number; state: Any } | undefined;
  private instance: EventSourcedInstance;
  private nextId = 1n;
  private readonly logger: Logger;

  constructor(
    private readonly entity: EventSourcedEntity<Methods, StateSchema>,
    options: TestkitOptions = {},
  ) {
    this.entityId = options.entityId ?? "test-entity";
    this.logger = options.logger ?? stderrLogger;
    this.instance = this.recover();
  }

  /** The entity's current state (do not modify it). */
  get state(): MessageShape<StateSchema> {
    return this.instance.state as MessageShape<StateSchema>;
  }

  /** The sequence number of the last persisted event. */
  get sequence(): number {
    return this.instance.sequence;
  }

  /** Handles one command and reports all it produced; failures resolve too. */
  async send<K extends keyof Methods & string>(
    command: K,
    input: MessageInitShape<Methods[K]["input"]>,
  ): Promise<CommandResult<MessageShape<Methods[K]["output"]>>> {
    const method = this.entity.service.method[command];
    if (!method) throw new TypeError(`${this.entity.service.typeName} has no method ${command}`);
    const id = this.nextId++;
    const reply = await this.instance.handle(
      create(CommandSchema, {
        entityId: this.entityId,
        id,
        name: method.name,
        payload: pack(method.input, create(method.input, input)),
      }),
    );
    const action = reply.clientAction?.action;
    if (action?.case === "failure") {
      // The proxy drops the reply and, on restart, rebuilds the entity from its journal.
      if (action.value.restart) this.restart();
      return { failure: action.value, events: [], sideEffects: [], snapshotted: false };
    }
    const events = reply.events.map((any) => {
      this.journal.push(any);
      const route = this.entity.events.get(typeNameOf(any.typeUrl))!;
      return fromBinary(route.schema, any.value);
    });
    this.events.push(...events);
    if (reply.snapshot) this.snapshot = { sequence: this.instance.sequence, state: reply.snapshot };
    return {
      reply: action?.case === "reply" ? (fromBinary(method.output, action.value.payload!.value) as MessageShape<Methods[K]["output"]>) : undefined,
      forward: action?.case === "forward" ? action.value : undefined,
      events,
      sideEffects: reply.sideEffects,
      snapshotted: reply.snapshot !== undefined,
    };
  }

  /** Handles one command and returns its reply; rejects with a CommandFailure if it failed. */
  async call<K extends keyof Methods & string>(
    command: K,
    input: MessageInitShape<Methods[K]["input"]>,
  ): Promise<MessageShape<Methods[K]["output"]>> {
    return replyOrThrow(command, await this.send(command, input));
  }

  /** Rebuilds the entity from the last snapshot and the later events, as after passivation or a restart. */
  restart(): void {
    this.instance = this.recover();
  }

  private recover(): EventSourcedInstance {
    const snapshot = this.snapshot && create(EventSourcedSnapshotSchema, { snapshotSequence: BigInt(this.snapshot.sequence), snapshot: this.snapshot.state });
    const instance = new EventSourcedInstance(this.entity as unknown as EventSourcedEntity, this.entityId, snapshot, this.logger);
    for (let seq = (this.snapshot?.sequence ?? 0) + 1; seq <= this.journal.length; seq++) {
      instance.replay(create(EventSourcedEventSchema, { sequence: BigInt(seq), payload: this.journal[seq - 1] }));
    }
    return instance;
  }
}


/** Everything one value entity command produced. */
export interface ValueCommandResult<Output extends Message> {
  /** The reply, unless the command forwarded or failed. */
  readonly reply?: Output;
  readonly forward?: Forward;
  readonly failure?: { readonly description: string; readonly restart: boolean };
  /** What the command did to the stored state: "update", "delete", or nothing (always so on failure). */
  readonly stateAction: "update" | "delete" | undefined;
  /** The side effects the proxy would run (none on failure). */
  readonly sideEffects: SideEffect[];
}

export interface ValueEntityTestkitOptions<StateSchema extends DescMessage> extends TestkitOptions {
  /** The stored state the entity starts from; default none (the entity starts from its initial state). */
  state?: MessageInitShape<StateSchema>;
}

export class ValueEntityTestkit<Methods extends GenServiceMethods, StateSchema extends DescMessage> {
  readonly entityId: string;
  /** The stored state, as the proxy's store holds it (undefined: none). */
  private value: Any | undefined;
  private instance: ValueEntityInstance;
  private nextId = 1n;
  private readonly logger: Logger;

  constructor(
    private readonly entity: ValueEntity<Methods, StateSchema>,
    options: ValueEntityTestkitOptions<StateSchema> = {},
  ) {
    this.entityId = options.entityId ?? "test-entity";
    this.logger = options.logger ?? stderrLogger;
    if (options.state !== undefined) this.value = pack(entity.stateSchema, create(entity.stateSchema, options.state));
    this.instance = this.recover();
  }

  /** The entity's current state: the stored one, or the initial state when none is (do not modify it). */
  get state(): MessageShape<StateSchema> {
    return this.instance.state as MessageShape<StateSchema>;
  }

  /** The stored state, decoded; undefined when none is stored (never set, or deleted). */
  get stored(): MessageShape<StateSchema> | undefined {
    return this.value && (fromBinary(this.entity.stateSchema, this.value.value) as MessageShape<StateSchema>);
  }

  /** Handles one command and reports all it produced; failures resolve too. */
  async send<K extends keyof Methods & string>(
    command: K,
    input: MessageInitShape<Methods[K]["input"]>,
  ): Promise<ValueCommandResult<MessageShape<Methods[K]["output"]>>> {
    const method = methodOf(this.entity.service, command);
    const reply = await this.instance.handle(
      create(CommandSchema, {
        entityId: this.entityId,
        id: this.nextId++,
        name: method.name,
        payload: pack(method.input, create(method.input, input)),
      }),
    );
    const action = reply.clientAction?.action;
    if (action?.case === "failure") {
      // The proxy drops the reply and, on restart, starts the entity again from its stored state.
      if (action.value.restart) this.restart();
      return { failure: action.value, stateAction: undefined, sideEffects: [] };
    }
    const change = reply.stateAction?.action;
    if (change?.case === "update") this.value = change.value.value;
    if (change?.case === "delete") this.value = undefined;
    return {
      reply: action?.case === "reply" ? (fromBinary(method.output, action.value.payload!.value) as MessageShape<Methods[K]["output"]>) : undefined,
      forward: action?.case === "forward" ? action.value : undefined,
      stateAction: change?.case,
      sideEffects: reply.sideEffects,
    };
  }

  /** Handles one command and returns its reply; rejects with a CommandFailure if it failed. */
  async call<K extends keyof Methods & string>(
    command: K,
    input: MessageInitShape<Methods[K]["input"]>,
  ): Promise<MessageShape<Methods[K]["output"]>> {
    return replyOrThrow(command, await this.send(command, input));
  }

  /** Starts the entity again from its stored state, as after passivation or a restart. */
  restart(): void {
    this.instance = this.recover();
  }

  private recover(): ValueEntityInstance {
    const state = create(ValueEntityInitStateSchema, { value: this.value });
    return new ValueEntityInstance(this.entity as unknown as ValueEntity, this.entityId, state, this.logger);
  }
}

/** One response of an action call. */
export interface ActionResult<Output extends Message> {
  /** The reply, if the response has one. */
  readonly reply?: Output;
  readonly forward?: Forward;
  readonly failure?: { readonly description: string };
  /** The response sends the client nothing (`ctx.noReply()`, or effects recorded after a stream's last answer). */
  readonly noReply: boolean;
  /** The side effects the proxy would run with this response (none on failure). */
  readonly sideEffects: SideEffect[];
}

export interface ActionTestkitOptions {
  /** Where unexpected handler errors are logged; default stderr. */
  logger?: Logger;
}

export interface ActionCallOptions {
  /** The request metadata (the proxy makes it from the client's headers). */
  metadata?: MetadataInit;
}

export interface ActionStreamOptions extends ActionCallOptions {
  /** Stop after this many responses, as a client that cancels the call (the handler's iterator is closed). */
  take?: number;
}

/** The names of the methods of one kind, e.g. the server-streaming ones. */
export type MethodsOfKind<Methods extends GenServiceMethods, Kind extends DescMethod["methodKind"]> = {
  [K in keyof Methods]: Methods[K]["methodKind"] extends Kind ? K : never;
}[keyof Methods] &
  string;

type Input<Methods extends GenServiceMethods, K extends keyof Methods> = MessageInitShape<Methods[K]["input"]>;
type Output<Methods extends GenServiceMethods, K extends keyof Methods> = MessageShape<Methods[K]["output"]>;

export class ActionTestkit<Methods extends GenServiceMethods> {
  private readonly runner: ActionRunner;

  constructor(
    private readonly action: Action<Methods>,
    options: ActionTestkitOptions = {},
  ) {
    this.runner = new ActionRunner(new Map([[action.service.typeName, action as unknown as Action]]), options.logger ?? stderrLogger);
  }

  /** Calls a unary method; failures resolve too. */
  async unary<K extends MethodsOfKind<Methods, "unary">>(command: K, input: Input<Methods, K>, options?: ActionCallOptions): Promise<ActionResult<Output<Methods, K>>> {
    const method = methodOf(this.action.service, command);
    const response = await this.runner.unary(this.command(method, options, input), new AbortController().signal);
    return result(method, response);
  }

  /** Calls a unary method and returns its reply; rejects with a CommandFailure if it failed. */
  async call<K extends MethodsOfKind<Methods, "unary">>(command: K, input: Input<Methods, K>, options?: ActionCallOptions): Promise<Output<Methods, K>> {
    return replyOrThrow(command, await this.unary(command, input, options));
  }

  /** Calls a client-streaming method with the given requests. */
  async streamedIn<K extends MethodsOfKind<Methods, "client_streaming">>(
    command: K,
    inputs: Iterable<Input<Methods, K>> | AsyncIterable<Input<Methods, K>>,
    options?: ActionCallOptions,
  ): Promise<ActionResult<Output<Methods, K>>> {
    const method = methodOf(this.action.service, command);
    return result(method, await this.runner.streamedIn(this.commands(method, options, inputs), new AbortController().signal));
  }

  /** Calls a server-streaming method and collects its responses. */
  async streamedOut<K extends MethodsOfKind<Methods, "server_streaming">>(
    command: K,
    input: Input<Methods, K>,
    options?: ActionStreamOptions,
  ): Promise<ActionResult<Output<Methods, K>>[]> {
    const method = methodOf(this.action.service, command);
    const aborter = new AbortController();
    return collect(method, this.runner.streamedOut(this.command(method, options, input), aborter.signal), aborter, options?.take);
  }

  /** Calls a bidirectional method with the given requests and collects its responses. */
  async streamed<K extends MethodsOfKind<Methods, "bidi_streaming">>(
    command: K,
    inputs: Iterable<Input<Methods, K>> | AsyncIterable<Input<Methods, K>>,
    options?: ActionStreamOptions,
  ): Promise<ActionResult<Output<Methods, K>>[]> {
    const method = methodOf(this.action.service, command);
    const aborter = new AbortController();
    return collect(method, this.runner.streamed(this.commands(method, options, inputs), aborter.signal), aborter, options?.take);
  }

  private command(method: DescMethod, options: ActionCallOptions | undefined, input?: MessageInitShape<DescMessage>): ActionCommand {
    return create(ActionCommandSchema, {
      serviceName: this.action.service.typeName,
      name: method.name,
      metadata: metadataProto(options?.metadata),
      payload: input === undefined ? undefined : pack(method.input, create(method.input, input)),
    });
  }

  /** A streamed call's messages, as the proxy sends them: the header, then one per request. */
  private async *commands(
    method: DescMethod,
    options: ActionCallOptions | undefined,
    inputs: Iterable<MessageInitShape<DescMessage>> | AsyncIterable<MessageInitShape<DescMessage>>,
  ): AsyncGenerator<ActionCommand> {
    yield this.command(method, options);
    for await (const input of inputs) yield create(ActionCommandSchema, { payload: pack(method.input, create(method.input, input)) });
  }
}

function result<O extends Message>(method: DescMethod, response: ActionResponse): ActionResult<O> {
  const r = response.response;
  switch (r.case) {
    case "reply":
      return { reply: fromBinary(method.output, r.value.payload!.value) as O, noReply: false, sideEffects: response.sideEffects };
    case "forward":
      return { forward: r.value, noReply: false, sideEffects: response.sideEffects };
    case "failure":
      return { failure: { description: r.value.description }, noReply: false, sideEffects: response.sideEffects };
    default:
      return { noReply: true, sideEffects: response.sideEffects };
  }
}

async function collect<O extends Message>(
  method: DescMethod,
  responses: AsyncGenerator<ActionResponse, void, undefined>,
  aborter: AbortController,
  take = Infinity,
): Promise<ActionResult<O>[]> {
  const results: ActionResult<O>[] = [];
  if (take <= 0) aborter.abort();
  for await (const response of responses) {
    results.push(result(method, response));
    if (results.length >= take) {
      // As a client that cancels: the handler sees ctx.signal aborted, and its iterator is closed.
      aborter.abort(new Error("the client cancelled the call"));
      break;
    }
  }
  return results;
}

function methodOf(service: DescService, command: string): DescMethod {
  const method = service.methods.find((m) => m.localName === command);
  if (!method) throw new TypeError(`${service.typeName} has no method ${command}`);
  return method;
}

/** The reply of a result; a failure rejects with a CommandFailure (or an Error for a bug). */
function replyOrThrow<O>(command: string, result: { reply?: O; forward?: Forward; failure?: { description: string; restart?: boolean } }): O {
  if (result.failure) {
    if (result.failure.restart) throw new Error(result.failure.description);
    throw new CommandFailure(result.failure.description);
  }
  if (!result.reply) {
    const instead = result.forward ? `forwarded to ${result.forward.serviceName}/${result.forward.commandName}` : "sent no reply";
    throw new Error(`${command} ${instead} instead of replying`);
  }
  return result.reply;
}

/** An in-process testkit: for an event-sourced entity, a value entity, an action or a CRDT entity. */
export function testkit<Methods extends GenServiceMethods, StateSchema extends DescMessage>(
  entity: EventSourcedEntity<Methods, StateSchema>,
  options?: TestkitOptions,
): EventSourcedTestkit<Methods, StateSchema>;
export function testkit<Methods extends GenServiceMethods, StateSchema extends DescMessage>(
  entity: ValueEntity<Methods, StateSchema>,
  options?: ValueEntityTestkitOptions<StateSchema>,
): ValueEntityTestkit<Methods, StateSchema>;
export function testkit<Methods extends GenServiceMethods>(action: Action<Methods>, options?: ActionTestkitOptions): ActionTestkit<Methods>;
export function testkit<Methods extends GenServiceMethods, State extends Crdt>(
  entity: CrdtEntity<Methods, State>,
  options?: CrdtTestkitOptions,
): CrdtTestkit<Methods, State>;
export function testkit(
  entity: EventSourcedEntity | ValueEntity | Action | CrdtEntity,
  options?: (TestkitOptions & ValueEntityTestkitOptions<DescMessage>) | CrdtTestkitOptions,
):
  | EventSourcedTestkit<GenServiceMethods, DescMessage>
  | ValueEntityTestkit<GenServiceMethods, DescMessage>
  | ActionTestkit<GenServiceMethods>
  | CrdtTestkit<GenServiceMethods, Crdt> {
  if (entity instanceof CrdtEntity) return new CrdtTestkit(entity, options as CrdtTestkitOptions);
  const others = options as TestkitOptions & ValueEntityTestkitOptions<DescMessage>;
  if (entity instanceof EventSourcedEntity) return new EventSourcedTestkit(entity, others);
  if (entity instanceof ValueEntity) return new ValueEntityTestkit(entity, others);
  if (entity instanceof Action) return new ActionTestkit(entity, others);
  throw new TypeError("testkit() takes an event-sourced entity, a value entity, an action or a CRDT entity");
}
