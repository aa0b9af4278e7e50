// Runs an entity or action in-process, as the proxy would (journal and snapshots, stored state,
// restarts, call shapes, eventing deliveries), with no network: for the user's unit tests. Commands
// and replies still go through their wire encoding.
import {
  create,
  fromBinary,
  getOption,
  type DescMessage,
  type DescMethod,
  type DescService,
  type Message,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import type { GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import { AnySchema, type Any } from "@bufbuild/protobuf/wkt";
import {
  ActionCommandSchema,
  CommandSchema,
  EventSourcedEventSchema,
  EventSourcedSnapshotSchema,
  ValueEntityInitStateSchema,
  eventing,
  type ActionCommand,
  type ActionResponse,
  type ClientAction,
  type Forward,
  type Metadata as MetadataProto,
  type SideEffect,
} from "@cloudstate-ts/protocol";
import { Action } from "../action/entity.js";
import { ActionRunner } from "../action/handler.js";
import { contentTypeOf, isAnySchema, pack, typeNameOf, unpackReply } from "../any.js";
import { metadataProto, type MetadataInit, type MetadataValue } from "../context.js";
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
  /** The reply, unless the command forwarded, failed or answered `ctx.noReply()` (what a subscriber's `out` topic gets). */
  readonly reply?: Output;
  readonly forward?: Forward;
  readonly failure?: { readonly description: string; readonly restart: boolean };
  /** The command answered `ctx.noReply()`: the client (or the `out` topic) gets nothing. */
  readonly noReply: boolean;
  /** The events persisted by this command (none on failure). */
  readonly events: Message[];
  /** The side effects the proxy would run (none on failure). */
  readonly sideEffects: SideEffect[];
  /** Whether the command's reply carried a snapshot. */
  readonly snapshotted: boolean;
}

/** Options of a command sent by the testkit. */
export interface CallOptions {
  /** The request metadata (the proxy makes it from the client's headers, or from a CloudEvent). */
  metadata?: MetadataInit;
}

/**
 * A delivery as an eventing subscription makes it (PROTOCOL.md §8): the CloudEvent attributes the
 * proxy puts in the metadata. Each has a default, so a test names only what it checks.
 */
export interface DeliverOptions {
  /** `ce-id`; default "1", "2", … per testkit, as a source's offsets. */
  id?: string;
  /** `ce-source`; default the method's `(cloudstate.eventing).in` topic or event log, else "testkit". */
  source?: string;
  /** `ce-type`; default the payload's type (the path of its type URL, e.g. "com.example.ItemAdded"). */
  type?: string;
  /** `ce-subject`; default the entity id for entities, none for actions. */
  subject?: string;
  /** `ce-time`; default none. */
  time?: Date;
  /** `Content-Type`; default by the payload's convention: application/protobuf, application/json, text/plain, application/octet-stream. */
  contentType?: string;
  /** More metadata entries, after the CloudEvent's. */
  metadata?: MetadataInit;
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
  private readonly deliveries = new Deliveries();
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
    options?: CallOptions,
  ): Promise<CommandResult<MessageShape<Methods[K]["output"]>>> {
    const method = methodOf(this.entity.service, command);
    return this.handle(method, packInput(method, input), metadataProto(options?.metadata));
  }

  /** Handles one command and returns its reply; rejects with a CommandFailure if it failed. */
  async call<K extends keyof Methods & string>(
    command: K,
    input: MessageInitShape<Methods[K]["input"]>,
    options?: CallOptions,
  ): Promise<MessageShape<Methods[K]["output"]>> {
    return replyOrThrow(command, await this.send(command, input, options));
  }

  /**
   * Delivers `message` to `command` as an eventing subscription does: as it is for a method that
   * takes google.protobuf.Any (build it with protobufAny, jsonAny, textAny or bytesAny), with the
   * CloudEvent attributes in the metadata (`ce-subject` = the entity id unless given). The result's
   * reply is what the method's `out` topic would get; `noReply` means nothing is published.
   */
  async deliver<K extends keyof Methods & string>(
    command: K,
    message: MessageInitShape<Methods[K]["input"]>,
    options?: DeliverOptions,
  ): Promise<CommandResult<MessageShape<Methods[K]["output"]>>> {
    const method = methodOf(this.entity.service, command);
    const { payload, metadata } = this.deliveries.next(method, message, { subject: this.entityId, ...options });
    return this.handle(method, payload, metadata);
  }

  private async handle<O extends Message>(method: DescMethod, payload: Any, metadata: MetadataProto | undefined): Promise<CommandResult<O>> {
    const reply = await this.instance.handle(
      create(CommandSchema, { entityId: this.entityId, id: this.nextId++, name: method.name, payload, metadata }),
    );
    const action = reply.clientAction?.action;
    if (action?.case === "failure") {
      // The proxy drops the reply and, on restart, rebuilds the entity from its journal.
      if (action.value.restart) this.restart();
      return { failure: action.value, noReply: false, events: [], sideEffects: [], snapshotted: false };
    }
    const events = reply.events.map((any) => {
      this.journal.push(any);
      const route = this.entity.events.get(typeNameOf(any.typeUrl))!;
      return fromBinary(route.schema, any.value);
    });
    this.events.push(...events);
    if (reply.snapshot) this.snapshot = { sequence: this.instance.sequence, state: reply.snapshot };
    return {
      ...answerOf<O>(method, reply.clientAction),
      events,
      sideEffects: reply.sideEffects,
      snapshotted: reply.snapshot !== undefined,
    };
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
  /** The reply, unless the command forwarded, failed or answered `ctx.noReply()` (what a subscriber's `out` topic gets). */
  readonly reply?: Output;
  readonly forward?: Forward;
  readonly failure?: { readonly description: string; readonly restart: boolean };
  /** The command answered `ctx.noReply()`: the client (or the `out` topic) gets nothing. */
  readonly noReply: boolean;
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
  private readonly deliveries = new Deliveries();
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
    options?: CallOptions,
  ): Promise<ValueCommandResult<MessageShape<Methods[K]["output"]>>> {
    const method = methodOf(this.entity.service, command);
    return this.handle(method, packInput(method, input), metadataProto(options?.metadata));
  }

  /** Handles one command and returns its reply; rejects with a CommandFailure if it failed. */
  async call<K extends keyof Methods & string>(
    command: K,
    input: MessageInitShape<Methods[K]["input"]>,
    options?: CallOptions,
  ): Promise<MessageShape<Methods[K]["output"]>> {
    return replyOrThrow(command, await this.send(command, input, options));
  }

  /**
   * Delivers `message` to `command` as an eventing subscription does: as it is for a method that
   * takes google.protobuf.Any (build it with protobufAny, jsonAny, textAny or bytesAny), with the
   * CloudEvent attributes in the metadata (`ce-subject` = the entity id unless given). The result's
   * reply is what the method's `out` topic would get; `noReply` means nothing is published.
   */
  async deliver<K extends keyof Methods & string>(
    command: K,
    message: MessageInitShape<Methods[K]["input"]>,
    options?: DeliverOptions,
  ): Promise<ValueCommandResult<MessageShape<Methods[K]["output"]>>> {
    const method = methodOf(this.entity.service, command);
    const { payload, metadata } = this.deliveries.next(method, message, { subject: this.entityId, ...options });
    return this.handle(method, payload, metadata);
  }

  private async handle<O extends Message>(method: DescMethod, payload: Any, metadata: MetadataProto | undefined): Promise<ValueCommandResult<O>> {
    const reply = await this.instance.handle(
      create(CommandSchema, { entityId: this.entityId, id: this.nextId++, name: method.name, payload, metadata }),
    );
    const action = reply.clientAction?.action;
    if (action?.case === "failure") {
      // The proxy drops the reply and, on restart, starts the entity again from its stored state.
      if (action.value.restart) this.restart();
      return { failure: action.value, noReply: false, stateAction: undefined, sideEffects: [] };
    }
    const change = reply.stateAction?.action;
    if (change?.case === "update") this.value = change.value.value;
    if (change?.case === "delete") this.value = undefined;
    return { ...answerOf<O>(method, reply.clientAction), stateAction: change?.case, sideEffects: reply.sideEffects };
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

/** Options of an action call. */
export type ActionCallOptions = CallOptions;

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
  private readonly deliveries = new Deliveries();

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

  /**
   * Delivers `message` to a unary method as an eventing subscription does: as it is for a method
   * that takes google.protobuf.Any (build it with protobufAny, jsonAny, textAny or bytesAny), with
   * the CloudEvent attributes in the metadata. The result's reply is what the method's `out` topic
   * would get; `noReply` means nothing is published.
   */
  async deliver<K extends MethodsOfKind<Methods, "unary">>(command: K, message: Input<Methods, K>, options?: DeliverOptions): Promise<ActionResult<Output<Methods, K>>> {
    const method = methodOf(this.action.service, command);
    const { payload, metadata } = this.deliveries.next(method, message, options ?? {});
    const delivery = create(ActionCommandSchema, { serviceName: this.action.service.typeName, name: method.name, metadata, payload });
    return result(method, await this.runner.unary(delivery, new AbortController().signal));
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
      payload: input === undefined ? undefined : packInput(method, input),
    });
  }

  /** A streamed call's messages, as the proxy sends them: the header, then one per request. */
  private async *commands(
    method: DescMethod,
    options: ActionCallOptions | undefined,
    inputs: Iterable<MessageInitShape<DescMessage>> | AsyncIterable<MessageInitShape<DescMessage>>,
  ): AsyncGenerator<ActionCommand> {
    yield this.command(method, options);
    for await (const input of inputs) yield create(ActionCommandSchema, { payload: packInput(method, input) });
  }
}

function result<O extends Message>(method: DescMethod, response: ActionResponse): ActionResult<O> {
  const r = response.response;
  switch (r.case) {
    case "reply":
      return { reply: unpackReply(method.output, r.value.payload!) as O, noReply: false, sideEffects: response.sideEffects };
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

/** An entity's answer: the reply (decoded), the forward, or no reply. */
function answerOf<O extends Message>(method: DescMethod, clientAction: ClientAction | undefined): { reply?: O; forward?: Forward; noReply: boolean } {
  const action = clientAction?.action;
  if (action?.case === "reply") return { reply: unpackReply(method.output, action.value.payload!) as O, noReply: false };
  if (action?.case === "forward") return { forward: action.value, noReply: false };
  return { noReply: true };
}

/** A request as a client's call carries it: the message packed as the method's input type. */
function packInput(method: DescMethod, input: MessageInitShape<DescMessage>): Any {
  return pack(method.input, create(method.input, input));
}

/** Builds eventing deliveries: the payload as the proxy sends it, and the CloudEvent metadata. */
class Deliveries {
  private nextId = 1;

  next(method: DescMethod, message: MessageInitShape<DescMessage>, options: DeliverOptions): { payload: Any; metadata: MetadataProto | undefined } {
    let payload: Any;
    if (isAnySchema(method.input)) {
      // A method that takes Any gets the event as it is, whatever its type.
      payload = create(AnySchema, message as MessageInitShape<typeof AnySchema>);
      if (!payload.typeUrl) throw new TypeError(`deliver("${method.localName}") takes an Any with a type URL: build it with protobufAny, jsonAny, textAny or bytesAny`);
    } else {
      payload = packInput(method, message);
    }
    const url = payload.typeUrl;
    const source = getOption(method, eventing)?.in?.source;
    const entries: (readonly [string, MetadataValue])[] = [
      ["ce-specversion", "1.0"],
      ["ce-id", options.id ?? String(this.nextId++)],
      ["ce-source", options.source ?? (source?.case ? source.value : "testkit")],
      ["ce-type", options.type ?? url.slice(url.indexOf("/") + 1)],
    ];
    if (options.subject !== undefined) entries.push(["ce-subject", options.subject]);
    if (options.time !== undefined) entries.push(["ce-time", options.time.toISOString()]);
    entries.push(["Content-Type", options.contentType ?? contentTypeOf(url)]);
    const extra = options.metadata ?? [];
    entries.push(...(Symbol.iterator in extra ? extra : Object.entries(extra)));
    return { payload, metadata: metadataProto(entries) };
  }
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
