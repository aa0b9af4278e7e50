// What every handler may do, whatever the entity type: fail, forward, run side effects, read
// metadata and the CloudEvent it carries. Each entity type's context extends this with its own
// operations (state, no reply, …).
import { create, isMessage, type DescMessage, type DescMethod, type MessageInitShape } from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import {
  ClientActionSchema,
  ForwardSchema,
  MetadataEntrySchema,
  MetadataSchema,
  SideEffectSchema,
  type ClientAction,
  type Forward as ForwardProto,
  type Metadata as MetadataProto,
  type MetadataEntry,
  type SideEffect,
} from "@cloudstate-ts/protocol";
import { isAnySchema, pack } from "./any.js";
import { cloudEventOf, type CloudEvent } from "./cloud-event.js";
import { CommandFailure } from "./errors.js";

export type MetadataValue = string | Uint8Array;
/** Metadata to send with a forward or side effect. */
export type MetadataInit = Record<string, MetadataValue> | Iterable<readonly [string, MetadataValue]>;

/** Request metadata (headers, CloudEvent attributes). Keys compare case-insensitively, like HTTP headers. */
export class Metadata implements Iterable<[string, MetadataValue]> {
  static readonly empty = new Metadata([]);

  private constructor(private readonly entries: readonly [string, MetadataValue][]) {}

  static fromProto(proto: MetadataProto | undefined): Metadata {
    if (!proto || proto.entries.length === 0) return Metadata.empty;
    const entries: [string, MetadataValue][] = [];
    for (const e of proto.entries) if (e.value.case) entries.push([e.key, e.value.value]);
    return new Metadata(entries);
  }

  /** The first value for `key`. */
  get(key: string): MetadataValue | undefined {
    const k = key.toLowerCase();
    return this.entries.find(([name]) => name.toLowerCase() === k)?.[1];
  }

  getAll(key: string): MetadataValue[] {
    const k = key.toLowerCase();
    return this.entries.filter(([name]) => name.toLowerCase() === k).map(([, v]) => v);
  }

  has(key: string): boolean {
    return this.get(key) !== undefined;
  }

  get size(): number {
    return this.entries.length;
  }

  [Symbol.iterator](): Iterator<[string, MetadataValue]> {
    return this.entries[Symbol.iterator]();
  }
}

/**
 * A command's answer that hands the call to another method: return it from the handler. Its type
 * carries the target's output type, so the compiler checks the client gets the reply type it expects.
 */
export class Forward<O extends DescMessage = DescMessage> {
  /** @internal */
  constructor(
    readonly output: O,
    /** @internal */ readonly proto: ForwardProto,
  ) {}
}

/**
 * The answer that sends the client nothing: return `ctx.noReply()` (actions, value and event-sourced
 * entities). The command's state change and side effects still happen; for an eventing subscriber
 * with an `out` topic it means "nothing to publish".
 */
export class NoReply {
  static readonly instance = new NoReply();
  // A private member makes the type nominal: a plain object is never a NoReply.
  private readonly name = "NoReply";
  private constructor() {}

  toString(): string {
    return this.name;
  }
}

export interface ForwardOptions {
  metadata?: MetadataInit;
}

export interface EffectOptions {
  /** The proxy waits for a synchronous effect (in order) before it replies; default false. */
  synchronous?: boolean;
  metadata?: MetadataInit;
}

/** What a command handler returns: the reply message (a message or its init shape), or a forward. */
export type Reply<O extends DescMessage> = MessageInitShape<O> | Forward<O>;

/** What every handler may do, whatever the entity type (actions included). */
export interface Context {
  /** The method name as in the proto, e.g. "AddItem". */
  readonly commandName: string;
  /** The request metadata: the client's headers, or the CloudEvent attributes of an eventing delivery. */
  readonly metadata: Metadata;
  /**
   * The CloudEvent this command is, when the proxy delivered it from an eventing source (a topic or
   * an event log): its attributes, read from the metadata. Undefined for a client's call.
   */
  readonly cloudEvent: CloudEvent | undefined;
  /** Fails the command: the client gets `message` as the error; the command's state changes and effects are dropped. */
  fail(message: string): never;
  /** Hands the command to `method` (of any service) once this command's state change is durable; return the result. */
  forward<M extends DescMethod>(
    method: M,
    message: MessageInitShape<M["input"]>,
    options?: ForwardOptions,
  ): Forward<M["output"]>;
  /** Calls `method` (of any service) after this command's state change is durable; its result is ignored. */
  effect<M extends DescMethod>(method: M, message: MessageInitShape<M["input"]>, options?: EffectOptions): void;
}

/** The context of a command to an entity: a `Context` that knows its entity and command id. */
export interface CommandContext extends Context {
  /** The entity the command is for. */
  readonly entityId: string;
  /** The command's id on this entity's protocol stream. */
  readonly commandId: bigint;
}

/** The shared implementation; each entity type's context extends it. */
export class BaseContext implements Context {
  /** The side effects recorded and not yet sent. */
  readonly sideEffects: SideEffect[] = [];
  /** Set by fail(), so a failure stands even if the handler catches the CommandFailure. */
  failure: string | undefined;
  private active = true;
  private event: CloudEvent | undefined | null = null; // null: not read yet

  constructor(
    readonly commandName: string,
    readonly metadata: Metadata,
  ) {}

  get cloudEvent(): CloudEvent | undefined {
    if (this.event === null) this.event = cloudEventOf(this.metadata);
    return this.event;
  }

  fail(message: string): never {
    this.ensureActive("fail");
    this.failure = message;
    throw new CommandFailure(message);
  }

  forward<M extends DescMethod>(
    method: M,
    message: MessageInitShape<M["input"]>,
    options?: ForwardOptions,
  ): Forward<M["output"]> {
    this.ensureActive("forward");
    const proto = create(ForwardSchema, {
      serviceName: method.parent.typeName,
      commandName: method.name,
      payload: pack(method.input, create(method.input, message)),
      metadata: metadataProto(options?.metadata),
    });
    return new Forward(method.output, proto);
  }

  effect<M extends DescMethod>(method: M, message: MessageInitShape<M["input"]>, options?: EffectOptions): void {
    this.ensureActive("effect");
    this.sideEffects.push(
      create(SideEffectSchema, {
        serviceName: method.parent.typeName,
        commandName: method.name,
        payload: pack(method.input, create(method.input, message)),
        synchronous: options?.synchronous ?? false,
        metadata: metadataProto(options?.metadata),
      }),
    );
  }

  /** Called when the handler has settled: a late call (e.g. from a forgotten promise) must not go unnoticed. */
  deactivate(): void {
    this.active = false;
  }

  /** The side effects recorded since the last call, for a response of a stream. */
  takeSideEffects(): SideEffect[] {
    return this.sideEffects.splice(0);
  }

  protected ensureActive(operation: string): void {
    if (!this.active) {
      throw new Error(`ctx.${operation}() called after the handler of ${this.commandName} finished (a promise not awaited?)`);
    }
  }
}

/** The shared implementation of an entity command's context. */
export class BaseCommandContext extends BaseContext implements CommandContext {
  constructor(
    readonly entityId: string,
    readonly commandId: bigint,
    commandName: string,
    metadata: Metadata,
  ) {
    super(commandName, metadata);
  }
}

/** Turns a handler's return value into the protocol's client action. `outputUrl` is the output's type URL. */
export function replyAction(method: DescMethod, outputUrl: string, result: unknown): ClientAction {
  if (result instanceof Forward) {
    return create(ClientActionSchema, { action: { case: "forward", value: result.proto } });
  }
  const where = `the handler of ${method.parent.name}.${method.name}`;
  if (result === undefined || result === null) {
    throw new TypeError(`${where} returned nothing: return the ${method.output.typeName} reply, or ctx.forward(...)`);
  }
  if (result instanceof NoReply) throw new TypeError(`${where} answered ctx.noReply(), which this entity type does not offer`);
  if (isAnySchema(method.output)) {
    // An Any reply goes as is: its type URL says what it is (a protobuf message, JSON, text, bytes).
    if (isMessage(result) && !isMessage(result, AnySchema)) {
      throw new TypeError(`${where} returned a ${result.$typeName}, expected a google.protobuf.Any: wrap it with protobufAny(<its schema>, message)`);
    }
    const payload = create(AnySchema, result as MessageInitShape<typeof AnySchema>);
    if (!payload.typeUrl) {
      throw new TypeError(`${where} returned an Any with no type URL: build it with protobufAny, jsonAny, textAny or bytesAny`);
    }
    return create(ClientActionSchema, { action: { case: "reply", value: { payload } } });
  }
  if (isMessage(result) && result.$typeName !== method.output.typeName) {
    throw new TypeError(`${where} returned a ${result.$typeName}, expected a ${method.output.typeName}`);
  }
  // create() returns a message of the right type as is, and builds one from an init shape.
  const reply = create(method.output, result as MessageInitShape<DescMessage>);
  return create(ClientActionSchema, {
    action: { case: "reply", value: { payload: pack(method.output, reply, outputUrl) } },
  });
}

export function failureAction(commandId: bigint, description: string, restart: boolean): ClientAction {
  return create(ClientActionSchema, {
    action: { case: "failure", value: { commandId, description, restart } },
  });
}

/** @internal */
export function metadataProto(init: MetadataInit | undefined): MetadataProto | undefined {
  if (init === undefined) return undefined;
  const pairs = Symbol.iterator in init ? init : Object.entries(init);
  const entries: MetadataEntry[] = [];
  for (const [key, value] of pairs as Iterable<readonly [string, MetadataValue]>) {
    entries.push(
      create(MetadataEntrySchema, {
        key,
        value: typeof value === "string" ? { case: "stringValue", value } : { case: "bytesValue", value },
      }),
    );
  }
  return create(MetadataSchema, { entries });
}
