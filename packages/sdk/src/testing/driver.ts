// Talks to a user function as the proxy does, over real gRPC: for protocol-level tests of the SDK
// and of user functions (discovery, event-sourced, value entity and CRDT streams, action calls).
import { create, type DescMessage, type DescMethod, type MessageInitShape } from "@bufbuild/protobuf";
import type { Any } from "@bufbuild/protobuf/wkt";
import {
  ActionCommandSchema,
  ActionProtocol,
  Crdt,
  CrdtStreamInSchema,
  EntityDiscovery,
  EventSourced,
  EventSourcedStreamInSchema,
  ProxyInfoSchema,
  UserFunctionErrorSchema,
  ValueEntity,
  ValueEntityStreamInSchema,
  type ActionCommand,
  type ActionResponse,
  type CrdtDelta,
  type CrdtReply,
  type CrdtStreamCancelledResponse,
  type CrdtStreamedMessage,
  type CrdtStreamIn,
  type CrdtStreamOut,
  type EntitySpec,
  type EventSourcedStreamIn,
  type EventSourcedStreamOut,
  type Failure,
  type Metadata as MetadataProto,
  type ValueEntityStreamIn,
  type ValueEntityStreamOut,
} from "@cloudstate-ts/protocol";
import * as grpc from "@grpc/grpc-js";
import { pack } from "../any.js";
import { metadataProto, type MetadataInit } from "../context.js";
import { serviceDefinition } from "../grpc.js";

const discovery = serviceDefinition(EntityDiscovery);
const eventSourcedHandle = serviceDefinition(EventSourced)["handle"]!;
const valueEntityHandle = serviceDefinition(ValueEntity)["handle"]!;
const crdtHandle = serviceDefinition(Crdt)["handle"]!;
const actions = serviceDefinition(ActionProtocol);

type ActionCommandInit = MessageInitShape<typeof ActionCommandSchema>;

export interface ProxyActionOptions {
  /** The request metadata (as the proxy makes it from the client's headers). */
  metadata?: MetadataInit;
  /** The service to name; default the method's. */
  serviceName?: string;
  /** Cancels the call (unary and streamed-in calls; streamed responses have `cancel()`). */
  signal?: AbortSignal;
}

export class ProxyDriver {
  private readonly client: grpc.Client;

  /** `address` is "host:port", or a port on 127.0.0.1. */
  constructor(address: string | number) {
    const target = typeof address === "number" ? `127.0.0.1:${address}` : address;
    this.client = new grpc.Client(target, grpc.credentials.createInsecure());
  }

  discover(info: MessageInitShape<typeof ProxyInfoSchema> = {}): Promise<EntitySpec> {
    const request = create(ProxyInfoSchema, {
      protocolMajorVersion: 0,
      protocolMinorVersion: 2,
      proxyName: "test-driver",
      proxyVersion: "0.0.0",
      supportedEntityTypes: ["cloudstate.eventsourced.EventSourced", "cloudstate.valueentity.ValueEntity", "cloudstate.action.ActionProtocol", "cloudstate.crdt.Crdt"],
      ...info,
    });
    return this.unary<EntitySpec>(discovery["discover"]!, request);
  }

  async reportError(message: string): Promise<void> {
    await this.unary(discovery["reportError"]!, create(UserFunctionErrorSchema, { message }));
  }

  /** Opens an event-sourced protocol stream (one entity). */
  eventSourced(): EventSourcedStreamDriver {
    const def = eventSourcedHandle;
    return new EventSourcedStreamDriver(
      this.client.makeBidiStreamRequest<EventSourcedStreamIn, EventSourcedStreamOut>(def.path, def.requestSerialize, def.responseDeserialize),
    );
  }

  /** Opens a value entity protocol stream (one entity). */
  valueEntity(): ValueEntityStreamDriver {
    const def = valueEntityHandle;
    return new ValueEntityStreamDriver(
      this.client.makeBidiStreamRequest<ValueEntityStreamIn, ValueEntityStreamOut>(def.path, def.requestSerialize, def.responseDeserialize),
    );
  }

  /** Opens a CRDT protocol stream (one entity, as one proxy node serves it). */
  crdt(): CrdtStreamDriver {
    const def = crdtHandle;
    return new CrdtStreamDriver(this.client.makeBidiStreamRequest<CrdtStreamIn, CrdtStreamOut>(def.path, def.requestSerialize, def.responseDeserialize));
  }

  /** Calls a unary action method (`handleUnary`). */
  actionUnary<M extends DescMethod>(method: M, input: MessageInitShape<M["input"]>, options?: ProxyActionOptions): Promise<ActionResponse> {
    return this.handleUnary(actionCommand(method, options, input), options?.signal);
  }

  /** Calls a client-streaming action method (`handleStreamedIn`): the header, then one message per input. */
  async actionStreamedIn<M extends DescMethod>(
    method: M,
    inputs: Iterable<MessageInitShape<M["input"]>> | AsyncIterable<MessageInitShape<M["input"]>>,
    options?: ProxyActionOptions,
  ): Promise<ActionResponse> {
    const commands = async function* () {
      yield actionCommand(method, options);
      for await (const input of inputs) yield { payload: pack(method.input, create(method.input, input)) };
    };
    return this.handleStreamedIn(commands(), options?.signal);
  }

  /** Calls a server-streaming action method (`handleStreamedOut`); read the responses from the driver. */
  actionStreamedOut<M extends DescMethod>(method: M, input: MessageInitShape<M["input"]>, options?: ProxyActionOptions): ActionStreamDriver<M> {
    return this.handleStreamedOut(actionCommand(method, options, input), method);
  }

  /** Calls a bidirectional action method (`handleStreamed`): the header is sent; then `send` inputs and `end`. */
  actionStreamed<M extends DescMethod>(method: M, options?: ProxyActionOptions): ActionStreamDriver<M> {
    const call = this.handleStreamed(method);
    call.sendRaw(actionCommand(method, options));
    return call;
  }

  /** `handleUnary` with any command, e.g. one that breaks the protocol. */
  handleUnary(command: ActionCommandInit, signal?: AbortSignal): Promise<ActionResponse> {
    return this.unary<ActionResponse>(actions["handleUnary"]!, create(ActionCommandSchema, command), signal);
  }

  /** `handleStreamedIn` with any messages, e.g. a first one with a payload. */
  handleStreamedIn(commands: Iterable<ActionCommandInit> | AsyncIterable<ActionCommandInit>, signal?: AbortSignal): Promise<ActionResponse> {
    const def = actions["handleStreamedIn"]!;
    return new Promise<ActionResponse>((resolve, reject) => {
      const call = this.client.makeClientStreamRequest<ActionCommand, ActionResponse>(def.path, def.requestSerialize, def.responseDeserialize, (e, r) =>
        e ? reject(e) : resolve(r!),
      );
      cancelOnAbort(call, signal);
      (async () => {
        for await (const command of commands) {
          if (signal?.aborted) return;
          call.write(create(ActionCommandSchema, command));
        }
        call.end();
      })().catch((e: unknown) => {
        call.cancel();
        reject(e as Error);
      });
    });
  }

  /** `handleStreamedOut` with any command. `method` is the one `send` packs inputs for (none: rawSend only). */
  handleStreamedOut<M extends DescMethod>(command: ActionCommandInit, method?: M): ActionStreamDriver<M> {
    const def = actions["handleStreamedOut"]!;
    const call = this.client.makeServerStreamRequest<ActionCommand, ActionResponse>(
      def.path,
      def.requestSerialize,
      def.responseDeserialize,
      create(ActionCommandSchema, command),
    );
    return new ActionStreamDriver<M>(call, method);
  }

  /** `handleStreamed` with nothing sent yet: send the header with `sendRaw`. */
  handleStreamed<M extends DescMethod>(method?: M): ActionStreamDriver<M> {
    const def = actions["handleStreamed"]!;
    return new ActionStreamDriver<M>(
      this.client.makeBidiStreamRequest<ActionCommand, ActionResponse>(def.path, def.requestSerialize, def.responseDeserialize),
      method,
    );
  }

  close(): void {
    this.client.close();
  }

  private unary<T>(def: grpc.MethodDefinition<unknown, unknown>, request: unknown, signal?: AbortSignal): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const call = this.client.makeUnaryRequest<unknown, T>(def.path, def.requestSerialize, def.responseDeserialize as (b: Buffer) => T, request, (e, r) =>
        e ? reject(e) : resolve(r!),
      );
      cancelOnAbort(call, signal);
    });
  }
}

function cancelOnAbort(call: grpc.Call, signal: AbortSignal | undefined): void {
  if (!signal) return;
  if (signal.aborted) return call.cancel();
  const cancel = () => call.cancel();
  signal.addEventListener("abort", cancel, { once: true });
  call.on("status", () => signal.removeEventListener("abort", cancel));
}

/** An action call's first (or only) message: the service, the method, the metadata, and the payload if any. */
function actionCommand<M extends DescMethod>(method: M, options: ProxyActionOptions | undefined, input?: MessageInitShape<M["input"]>): ActionCommandInit {
  return {
    serviceName: options?.serviceName ?? method.parent.typeName,
    name: method.name,
    metadata: metadataProto(options?.metadata),
    payload: input === undefined ? undefined : pack(method.input, create(method.input, input)),
  };
}

/** The end of a stream: the gRPC status the user function closed it with. */
export interface StreamEnd {
  readonly code: grpc.status;
  readonly details: string;
}

/** What a user function streams back, in order, and how the stream ended. */
class Received<Out> {
  private readonly queue: Out[] = [];
  private readonly waiting: ((message: Out | undefined) => void)[] = [];
  private finished = false;
  readonly ended: Promise<StreamEnd>;

  constructor(call: grpc.ClientReadableStream<Out> | grpc.ClientDuplexStream<unknown, Out>) {
    call.on("data", (message: Out) => {
      const waiter = this.waiting.shift();
      if (waiter) waiter(message);
      else this.queue.push(message);
    });
    this.ended = new Promise<StreamEnd>((resolve) => {
      call.on("status", (status: grpc.StatusObject) => {
        this.finish();
        resolve({ code: status.code, details: status.details });
      });
    });
    // The status event reports how the stream ended; an error event would otherwise be unhandled.
    call.on("error", () => this.finish());
  }

  next(timeoutMs: number): Promise<Out | undefined> {
    const message = this.queue.shift();
    if (message || this.finished) return Promise.resolve(message);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.splice(this.waiting.indexOf(deliver), 1);
        reject(new Error(`no message from the user function within ${timeoutMs} ms`));
      }, timeoutMs);
      const deliver = (m: Out | undefined): void => {
        clearTimeout(timer);
        resolve(m);
      };
      this.waiting.push(deliver);
    });
  }

  private finish(): void {
    this.finished = true;
    for (const waiter of this.waiting.splice(0)) waiter(undefined);
  }
}

/** Options of a command on an entity stream. */
export interface EntityCommandOptions {
  /** The command's metadata (e.g. the CloudEvent attributes of an eventing delivery). */
  metadata?: MetadataInit;
}

/** A command as the entity streams' commandMessage gets it. */
interface CommandFields {
  entityId: string;
  id: bigint;
  name: string;
  payload: Any | undefined;
  metadata: MetadataProto | undefined;
}

/** An entity's protocol stream: send init and commands, read the replies. */
abstract class EntityStreamDriver<In, Out> {
  private readonly received: Received<Out>;
  private nextId = 1n;
  protected entityId = "";
  /** Resolves when the user function ends the stream. */
  readonly ended: Promise<StreamEnd>;

  constructor(private readonly call: grpc.ClientDuplexStream<In, Out>) {
    this.received = new Received(call);
    this.ended = this.received.ended;
  }

  /** Sends a command for `method` (ids count from 1 on each stream) and returns what comes back. */
  command<M extends DescMethod>(method: M, input: MessageInitShape<M["input"]>, options?: EntityCommandOptions): Promise<Out | undefined> {
    return this.rawCommand(method.name, pack(method.input, create(method.input, input)), options);
  }

  /** Sends a command with any name and payload, e.g. one the entity does not know, or an eventing delivery's payload. */
  rawCommand(name: string, payload: Any | undefined, options?: EntityCommandOptions): Promise<Out | undefined> {
    const id = this.nextId++;
    this.write(this.commandMessage({ entityId: this.entityId, id, name, payload, metadata: metadataProto(options?.metadata) }, options));
    return this.next();
  }

  /** The next message from the user function; undefined once the stream has ended. */
  next(timeoutMs = 5_000): Promise<Out | undefined> {
    return this.received.next(timeoutMs);
  }

  /** Half-closes the stream, as the proxy does to passivate an entity. */
  end(): void {
    this.call.end();
  }

  /** Cancels the call, as the proxy does when it goes away. */
  cancel(): void {
    this.call.cancel();
  }

  protected write(message: In): void {
    this.call.write(message);
  }

  protected abstract commandMessage(command: CommandFields, options: EntityCommandOptions | undefined): In;
}

export class EventSourcedStreamDriver extends EntityStreamDriver<EventSourcedStreamIn, EventSourcedStreamOut> {
  send(message: MessageInitShape<typeof EventSourcedStreamInSchema>): void {
    this.write(create(EventSourcedStreamInSchema, message));
  }

  init(serviceName: string, entityId: string, snapshot?: { sequence: number; schema: DescMessage; state: MessageInitShape<DescMessage> }): void {
    this.entityId = entityId;
    this.send({
      message: {
        case: "init",
        value: {
          serviceName,
          entityId,
          snapshot: snapshot && {
            snapshotSequence: BigInt(snapshot.sequence),
            snapshot: pack(snapshot.schema, create(snapshot.schema, snapshot.state)),
          },
        },
      },
    });
  }

  event<S extends DescMessage>(sequence: number, schema: S, event: MessageInitShape<S>): void {
    this.send({ message: { case: "event", value: { sequence: BigInt(sequence), payload: pack(schema, create(schema, event)) } } });
  }

  protected commandMessage(command: CommandFields): EventSourcedStreamIn {
    return create(EventSourcedStreamInSchema, { message: { case: "command", value: command } });
  }
}

export class ValueEntityStreamDriver extends EntityStreamDriver<ValueEntityStreamIn, ValueEntityStreamOut> {
  send(message: MessageInitShape<typeof ValueEntityStreamInSchema>): void {
    this.write(create(ValueEntityStreamInSchema, message));
  }

  /** Sends init with the stored state, if any (as the proxy does, `state` is always set, its value only if one is stored). */
  init<S extends DescMessage>(serviceName: string, entityId: string, stored?: { schema: S; state: MessageInitShape<S> }): void {
    this.entityId = entityId;
    const value = stored && pack(stored.schema, create(stored.schema, stored.state));
    this.send({ message: { case: "init", value: { serviceName, entityId, state: { value } } } });
  }

  protected commandMessage(command: CommandFields): ValueEntityStreamIn {
    return create(ValueEntityStreamInSchema, { message: { case: "command", value: command } });
  }
}

export interface CrdtCommandOptions extends EntityCommandOptions {
  /** Whether the client waits for a stream; default: whether the method is server-streaming (rawCommand: false). */
  streamed?: boolean;
}

export class CrdtStreamDriver extends EntityStreamDriver<CrdtStreamIn, CrdtStreamOut> {
  send(message: MessageInitShape<typeof CrdtStreamInSchema>): void {
    this.write(create(CrdtStreamInSchema, message));
  }

  /** Sends init with the CRDT's state, if the proxy has one (see `crdtDelta` for building it). */
  init(serviceName: string, entityId: string, state?: CrdtDelta): void {
    this.entityId = entityId;
    this.send({ message: { case: "init", value: { serviceName, entityId, delta: state } } });
  }

  /** Sends another replica's change; what it makes the open streamed calls push comes with `next()`. */
  delta(delta: CrdtDelta): void {
    this.send({ message: { case: "delta", value: delta } });
  }

  /** Sends the deletion of the CRDT by another replica. */
  delete(): void {
    this.send({ message: { case: "delete", value: {} } });
  }

  /** Sends a command (streamed if the method is server-streaming) and returns what comes back first: its reply. */
  override command<M extends DescMethod>(method: M, input: MessageInitShape<M["input"]>, options: CrdtCommandOptions = {}): Promise<CrdtStreamOut | undefined> {
    const withStreamed: CrdtCommandOptions = { ...options, streamed: options.streamed ?? method.methodKind === "server_streaming" };
    return super.command(method, input, withStreamed);
  }

  override rawCommand(name: string, payload: Any | undefined, options?: CrdtCommandOptions): Promise<CrdtStreamOut | undefined> {
    return super.rawCommand(name, payload, options);
  }

  /** Tells the user function that the client of streamed call `commandId` went away; returns its answer. */
  cancelStream(commandId: bigint): Promise<CrdtStreamOut | undefined> {
    this.send({ message: { case: "streamCancelled", value: { entityId: this.entityId, id: commandId } } });
    return this.next();
  }

  protected commandMessage(command: CommandFields, options: CrdtCommandOptions | undefined): CrdtStreamIn {
    return create(CrdtStreamInSchema, { message: { case: "command", value: { ...command, streamed: options?.streamed ?? false } } });
  }
}

/** The messages of a CrdtStreamOut, by case. */
export interface CrdtOutMessages {
  reply: CrdtReply;
  streamedMessage: CrdtStreamedMessage;
  streamCancelledResponse: CrdtStreamCancelledResponse;
  failure: Failure;
}

/** The `kind` message in a CrdtStreamOut (e.g. "reply", "streamedMessage"), or an assertion error describing what came instead. */
export function crdtMessageOf<C extends keyof CrdtOutMessages>(out: CrdtStreamOut | undefined, kind: C): CrdtOutMessages[C] {
  const message = out?.message;
  if (message?.case !== kind) {
    const what =
      message === undefined
        ? "the end of the stream"
        : message.case === "failure"
          ? `a stream failure: ${message.value.description}`
          : message.case === "reply" && message.value.clientAction?.action.case === "failure"
            ? `a reply with the failure "${message.value.clientAction.action.value.description}"`
            : (message.case ?? "an empty message");
    throw new Error(`expected a ${kind}, got ${what}`);
  }
  return message.value as CrdtOutMessages[C];
}

/** A streamed action call (`handleStreamedOut`, `handleStreamed`): read its responses; for bidi, send inputs. */
export class ActionStreamDriver<M extends DescMethod = DescMethod> {
  private readonly received: Received<ActionResponse>;
  /** Resolves when the user function ends the call. */
  readonly ended: Promise<StreamEnd>;

  constructor(
    private readonly call: grpc.ClientReadableStream<ActionResponse> | grpc.ClientDuplexStream<ActionCommand, ActionResponse>,
    private readonly method: M | undefined,
  ) {
    this.received = new Received(call);
    this.ended = this.received.ended;
  }

  /** Sends one client message (bidi calls only). */
  send(input: MessageInitShape<M["input"]>): void {
    if (!this.method) throw new TypeError("this call was opened without a method: use sendRaw");
    this.sendRaw({ payload: pack(this.method.input, create(this.method.input, input)) });
  }

  /** Sends any message (bidi calls only), e.g. the header or a payload of the wrong type. */
  sendRaw(command: ActionCommandInit): void {
    this.duplex().write(create(ActionCommandSchema, command));
  }

  /** Half-closes the client side (bidi calls only): no more inputs. */
  end(): void {
    this.duplex().end();
  }

  /** The next response; undefined once the call has ended. */
  next(timeoutMs = 5_000): Promise<ActionResponse | undefined> {
    return this.received.next(timeoutMs);
  }

  /** Every response until the user function ends the call, and how it ended. */
  async all(timeoutMs = 5_000): Promise<{ responses: ActionResponse[]; end: StreamEnd }> {
    const responses: ActionResponse[] = [];
    for (let r = await this.next(timeoutMs); r !== undefined; r = await this.next(timeoutMs)) responses.push(r);
    return { responses, end: await this.ended };
  }

  /** Cancels the call, as the proxy does when its client goes away. */
  cancel(): void {
    this.call.cancel();
  }

  private duplex(): grpc.ClientDuplexStream<ActionCommand, ActionResponse> {
    if (!("write" in this.call)) throw new TypeError("a streamed-out call takes no client messages");
    return this.call;
  }
}

type StreamOut<R> = {
  message: { case: "reply"; value: R } | { case: "failure"; value: Failure } | { case: undefined; value?: undefined };
};

/** The reply in a StreamOut (event-sourced or value entity), or an assertion error describing what came instead. */
export function replyOf<R>(out: StreamOut<R> | undefined): R {
  if (out?.message.case !== "reply") {
    const what =
      out === undefined ? "the end of the stream" : out.message.case === "failure" ? `a stream failure: ${out.message.value.description}` : "an empty message";
    throw new Error(`expected a reply, got ${what}`);
  }
  return out.message.value;
}
