// The contexts of a CRDT entity's handlers: a command (the CRDT, delete, write consistency, and for
// streamed calls the two stream callbacks), a state change seen by a streamed call, and the
// cancellation of a streamed call.
import type { DescMessage, DescMethod, MessageInitShape } from "@bufbuild/protobuf";
import { CrdtWriteConsistency, type Command } from "@cloudstate-ts/protocol";
import { BaseCommandContext, Metadata, type CommandContext, type EffectOptions, type Reply } from "../context.js";
import { CommandFailure } from "../errors.js";
import type { Crdt } from "./types/crdt.js";

/**
 * What a streamed call's handlers may answer: a reply (or forward), several (each its own message
 * to the client, in order), or nothing.
 */
export type StreamedReplies<O extends DescMessage> = Reply<O> | readonly Reply<O>[] | undefined | void;

/** Called after each change of the CRDT while a streamed call is open; returns what to push to its client. */
export type StateChangeHandler<State extends Crdt, O extends DescMessage> = (state: State, ctx: StateChangeContext) => StreamedReplies<O>;

/** Called when the client of a streamed call goes away; may change the CRDT and add side effects. */
export type StreamCancelHandler<State extends Crdt> = (state: State, ctx: StreamCancelContext) => void;

interface CrdtChanges {
  /**
   * How many replicas must have this command's change before the proxy answers: LOCAL (the default:
   * at once), MAJORITY or ALL.
   */
  writeConsistency: CrdtWriteConsistency;
  /** Deletes the CRDT on every replica once the command succeeds; the entity then answers no more commands. */
  delete(): void;
}

export interface CrdtCommandContext<State extends Crdt> extends CommandContext, CrdtChanges {
  /**
   * The entity's CRDT. Change it here: the change is sent with the reply, and undone if the command
   * fails. It is not a copy: do not keep it to change it later.
   */
  readonly state: State;
  /** Whether the client called a server-streaming method and waits for a stream. */
  readonly streamed: boolean;
}

/** The context of a server-streaming method's command. */
export interface CrdtStreamedCommandContext<State extends Crdt, O extends DescMessage> extends CrdtCommandContext<State> {
  /**
   * Keeps the call open and calls `handler` after each change of the CRDT (by a command here,
   * including this one, or by another replica) until the stream ends. Whatever `handler` returns
   * goes to this call's client; `ctx.endStream()` there ends the call. The handler must not change
   * the CRDT, and must not be async.
   */
  onStateChange(handler: StateChangeHandler<State, O>): void;
  /** Keeps the call open, and calls `handler` when its client cancels it (goes away). */
  onStreamCancel(handler: StreamCancelHandler<State>): void;
}

/** The context of a state change seen by a streamed call: its command's identity, effects, forwards, the end of the stream. */
export interface StateChangeContext extends CommandContext {
  /** Ends the call after what the handler returns (if anything). */
  endStream(): void;
  /** Fails the call: its client gets `message` as the error, and the call ends. */
  fail(message: string): never;
}

/** The context of a cancelled streamed call. */
export interface StreamCancelContext extends CrdtChanges {
  readonly entityId: string;
  /** The id of the streamed call's command. */
  readonly commandId: bigint;
  readonly commandName: string;
  /** The metadata of the streamed call's command. */
  readonly metadata: Metadata;
  effect<M extends DescMethod>(method: M, message: MessageInitShape<M["input"]>, options?: EffectOptions): void;
}

/** The identity of a streamed call, kept for the contexts of its callbacks. */
export interface CallIdentity {
  readonly entityId: string;
  readonly commandId: bigint;
  readonly commandName: string;
  readonly metadata: Metadata;
}

/** Write consistency and deletion, shared by commands and cancellations. */
abstract class ChangingContext extends BaseCommandContext implements CrdtChanges {
  deleted = false;
  private consistency = CrdtWriteConsistency.LOCAL;

  get writeConsistency(): CrdtWriteConsistency {
    return this.consistency;
  }

  set writeConsistency(value: CrdtWriteConsistency) {
    this.ensureActive("writeConsistency");
    if (typeof value !== "number" || !(value in CrdtWriteConsistency)) {
      throw new TypeError(`writeConsistency must be WriteConsistency.LOCAL, MAJORITY or ALL, got ${String(value)}`);
    }
    this.consistency = value;
  }

  delete(): void {
    this.ensureActive("delete");
    this.deleted = true;
  }
}

export class CrdtContext extends ChangingContext implements CrdtStreamedCommandContext<Crdt, DescMessage> {
  changeHandler: StateChangeHandler<Crdt, DescMessage> | undefined;
  cancelHandler: StreamCancelHandler<Crdt> | undefined;

  constructor(
    readonly state: Crdt,
    command: Command,
    readonly streamed: boolean,
  ) {
    super(command.entityId, command.id, command.name, Metadata.fromProto(command.metadata));
  }

  get identity(): CallIdentity {
    return { entityId: this.entityId, commandId: this.commandId, commandName: this.commandName, metadata: this.metadata };
  }

  onStateChange(handler: StateChangeHandler<Crdt, DescMessage>): void {
    this.ensureActive("onStateChange");
    this.ensureStreamed("onStateChange");
    if (typeof handler !== "function") throw new TypeError("ctx.onStateChange() takes a function");
    this.changeHandler = handler;
  }

  onStreamCancel(handler: StreamCancelHandler<Crdt>): void {
    this.ensureActive("onStreamCancel");
    this.ensureStreamed("onStreamCancel");
    if (typeof handler !== "function") throw new TypeError("ctx.onStreamCancel() takes a function");
    this.cancelHandler = handler;
  }

  /** A streamed call whose handler registered a callback stays open. */
  get subscribed(): boolean {
    return this.changeHandler !== undefined || this.cancelHandler !== undefined;
  }

  private ensureStreamed(operation: string): void {
    // A server-streaming method called without a stream (a proxy may do so for a plain HTTP call):
    // there is no stream to keep open, so the client learns that this method needs one.
    if (!this.streamed) throw new CommandFailure(`${this.commandName} must be called as a stream (ctx.${operation}() needs one)`);
  }
}

export class StateChangeCallContext extends BaseCommandContext implements StateChangeContext {
  ended = false;

  constructor(call: CallIdentity) {
    super(call.entityId, call.commandId, call.commandName, call.metadata);
  }

  endStream(): void {
    this.ensureActive("endStream");
    this.ended = true;
  }
}

export class StreamCancelCallContext extends ChangingContext implements StreamCancelContext {
  constructor(call: CallIdentity) {
    super(call.entityId, call.commandId, call.commandName, call.metadata);
  }
}
