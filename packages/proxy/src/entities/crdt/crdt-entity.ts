// One CRDT entity on this node (PROTOCOL.md §5 "CRDT"): this node's replica of the entity's state,
// and a protocol stream to the user function that sees it. Unlike event-sourced and value entities,
// several commands are in flight at once and replies are matched by id in any order, and server-
// streaming commands stay open after their first reply.
//
// The replica lives in the proxy, not in the stream: when the stream fails or is restarted, its
// waiting callers get an error and the next command opens a new stream whose init carries the
// replica's state. The replica is written to the store (store.crdts) by one write loop: at most one
// write in flight, changes made meanwhile are folded into the next write. A reply waits for the
// write that covers its change when it asked for MAJORITY or ALL (on one node: "durable"), and for
// a delete; LOCAL replies go as soon as the change is applied in memory.
//
// Another writer of the stored state (another node) shows as a version conflict: the stored state
// is joined into the replica, the change of view is pushed to the user function as a delta once it
// has no command outstanding, and the write is retried. A stored delete wins over local changes.
import { create } from "@bufbuild/protobuf";
import {
  CrdtStreamInSchema,
  CrdtStreamOutSchema,
  CrdtWriteConsistency,
  type CrdtReply,
  type CrdtStateAction,
  type CrdtStreamCancelledResponse,
  type CrdtStreamedMessage,
  type CrdtStreamIn,
  type CrdtStreamOut,
} from "@cloudstate-ts/protocol";
import { Code, ProxyError } from "../../errors.js";
import { VersionConflictError, type KeyValueStore } from "../../store/store.js";
import type { Logger } from "../../telemetry/logger.js";
import type { BidiStream, UserFunctionConnection } from "../../user-function/connection.js";
import type { CommandOutcome, CommandRequest } from "../command.js";
import type { HostedEntity } from "../entity-host.js";
import { anyOf, applyLocal, CrdtDeltaError, CrdtStateError, RESET, type Crdt, type ReplicaContext } from "./crdt.js";
import { decodeState, emptyCrdt, encodeState, kindOf, mergeCrdts } from "./crdt-state.js";

const HANDLE_PATH = "/cloudstate.crdt.Crdt/handle";
/** How long to wait before retrying a failed store write. */
const WRITE_RETRY_MS = 1_000;

type Stream = BidiStream<CrdtStreamIn, CrdtStreamOut>;

export interface CrdtEntityOptions {
  readonly serviceName: string;
  readonly persistenceId: string;
  readonly entityId: string;
  readonly passivationTimeoutMs: number;
  /** How long the user function may take to answer a command (its first reply, for streamed ones). */
  readonly commandTimeoutMs: number;
  readonly crdts: KeyValueStore;
  readonly replica: ReplicaContext;
  readonly connection: UserFunctionConnection;
  readonly log: Logger;
  /** Called when the entity leaves its host (passivated, deleted, or shut down). */
  readonly release: () => void;
  /** Reports a protocol violation to the user function (reportError) and the log. */
  readonly reportError: (message: string) => void;
  /**
   * Runs the side effects of an outcome whose client is gone: a cancelled streamed call's reply,
   * streamed messages and CrdtStreamCancelledResponse.
   */
  readonly runDetached: (outcome: CommandOutcome, request: CommandRequest) => Promise<void>;
  readonly onRestart?: (() => void) | undefined;
}

/**
 * queued: waiting for the replica to load; sent: waiting for the first reply; streaming: a
 * streamed call after its first reply; cancelling: the client is gone, waiting for the user
 * function's CrdtStreamCancelledResponse.
 */
type CallState = "queued" | "sent" | "streaming" | "cancelling" | "done";

abstract class Call {
  state: CallState = "queued";
  id = 0n;
  timer: NodeJS.Timeout | undefined;

  constructor(readonly request: CommandRequest) {}

  get streamed(): boolean {
    return this.request.method.serverStreaming;
  }

  /** Hands an outcome (which may still wait for durability) to the caller. */
  abstract deliver(outcome: Promise<CommandOutcome>): void;
  /** No more outcomes. */
  abstract finish(): void;
  abstract fail(error: ProxyError): void;

  clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}

class UnaryCall extends Call {
  constructor(
    request: CommandRequest,
    private readonly resolve: (outcome: CommandOutcome) => void,
    private readonly reject: (error: ProxyError) => void,
  ) {
    super(request);
  }

  deliver(outcome: Promise<CommandOutcome>): void {
    outcome.then(this.resolve, (e: unknown) => this.reject(ProxyError.from(e)));
  }

  finish(): void {}

  fail(error: ProxyError): void {
    this.reject(error);
  }
}

type Item = { readonly outcome: Promise<CommandOutcome> } | { readonly end: true } | { readonly error: ProxyError };

/** A server-streaming call: outcomes queue up in order until its consumer takes them. */
class StreamedCall extends Call {
  private readonly items: Item[] = [];
  private waiting: ((item: Item) => void) | undefined;
  private closed = false;

  deliver(outcome: Promise<CommandOutcome>): void {
    // The consumer may be gone before it reads this: never leave a rejection unhandled.
    outcome.catch(() => undefined);
    this.push({ outcome });
  }

  finish(): void {
    this.push({ end: true });
  }

  fail(error: ProxyError): void {
    this.push({ error });
  }

  next(): Promise<Item> {
    const item = this.items.shift();
    if (item) return Promise.resolve(item);
    return new Promise((resolve) => (this.waiting = resolve));
  }

  private push(item: Item): void {
    if (this.closed) return;
    if (!("outcome" in item)) this.closed = true;
    const waiting = this.waiting;
    this.waiting = undefined;
    if (waiting) waiting(item);
    else this.items.push(item);
  }
}

interface DurabilityWaiter {
  readonly seq: number;
  readonly resolve: () => void;
  readonly reject: (error: ProxyError) => void;
}

type Phase = "new" | "loading" | "ready" | "deleted" | "closed";

export class CrdtEntity implements HostedEntity {
  private phase: Phase = "new";
  private readonly queue: Call[] = [];
  /** Calls sent on the current stream that may still get messages, by command id. */
  private readonly calls = new Map<bigint, Call>();
  /** This stream's cancelled calls by id: late messages for them are expected. */
  private cancelled = new Map<bigint, CommandRequest>();
  private stream: Stream | undefined;
  private nextCommandId = 1n;

  /** This node's replica; undefined until the user function's first change (or after a delete). */
  private crdt: Crdt | undefined;
  /**
   * What the user function has seen, when it differs from the replica: set when another replica's
   * state was joined in while commands were outstanding; the difference is pushed when they are done.
   */
  private userView: Crdt | undefined;
  /** The stored version the replica was last read or written at. */
  private version = 0;
  /** Changes applied (localSeq) and the last one made durable (durableSeq). */
  private localSeq = 0;
  private durableSeq = 0;
  private writing = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly durability: DurabilityWaiter[] = [];

  private idleTimer: NodeJS.Timeout | undefined;
  private stopping = false;
  private readonly shutdownWaiters: (() => void)[] = [];

  constructor(private readonly o: CrdtEntityOptions) {}

  /** A unary command. */
  handle(request: CommandRequest): Promise<CommandOutcome> {
    return new Promise<CommandOutcome>((resolve, reject) => this.submit(new UnaryCall(request, resolve, reject)));
  }

  /** A server-streaming command: its outcomes until the user function ends the stream. */
  async *handleStreamed(request: CommandRequest): AsyncIterable<CommandOutcome> {
    const call = new StreamedCall(request);
    const onAbort = () => this.cancel(call);
    request.signal?.addEventListener("abort", onAbort, { once: true });
    this.submit(call);
    try {
      for (;;) {
        const item = await call.next();
        if ("end" in item) return;
        if ("error" in item) throw item.error;
        yield await item.outcome;
      }
    } finally {
      request.signal?.removeEventListener("abort", onAbort);
      // The consumer stopped early (the client cancelled or the call failed).
      this.cancel(call);
    }
  }

  /** Finishes in-flight commands and pending writes, ends open streamed calls, then closes. */
  shutdown(): Promise<void> {
    if (this.phase === "closed") return Promise.resolve();
    this.stopping = true;
    // Register first: ending the last open call may close the entity at once.
    const closed = new Promise<void>((resolve) => this.shutdownWaiters.push(resolve));
    const ending = new ProxyError(Code.UNAVAILABLE, "the proxy is shutting down");
    for (const call of [...this.calls.values()]) {
      if (call.state === "streaming" || call.state === "cancelling") this.endCall(call, ending);
    }
    this.checkIdle();
    return closed;
  }

  /** Fails every waiting command (the shutdown grace period is over); pending writes still finish. */
  abort(error: ProxyError): void {
    if (this.phase === "closed") return;
    this.stopping = true;
    this.failAll(error);
    this.dropStream();
    this.checkIdle();
  }

  // ---- Commands

  private submit(call: Call): void {
    if (this.stopping || this.phase === "closed") {
      call.fail(new ProxyError(Code.UNAVAILABLE, `entity ${this.o.entityId} is stopping; retry`));
      return;
    }
    if (this.phase === "deleted") {
      call.fail(this.deletedError());
      return;
    }
    this.clearIdleTimer();
    if (this.phase === "ready") {
      this.send(call);
      return;
    }
    this.queue.push(call);
    if (this.phase === "new") void this.load();
  }

  private send(call: Call): void {
    if (call.request.signal?.aborted) {
      call.state = "done";
      call.fail(new ProxyError(Code.CANCELLED, "the call was cancelled before the entity ran it"));
      this.checkIdle();
      return;
    }
    const stream = this.openStream();
    call.id = this.nextCommandId++;
    call.state = "sent";
    this.calls.set(call.id, call);
    call.timer = setTimeout(() => this.commandTimedOut(call), this.o.commandTimeoutMs);
    const { request } = call;
    stream.write(
      create(CrdtStreamInSchema, {
        message: {
          case: "command",
          value: {
            entityId: this.o.entityId,
            id: call.id,
            name: request.method.name,
            payload: anyOf(request.payloadTypeUrl ?? request.method.inputTypeUrl, request.payload),
            streamed: call.streamed,
            metadata: request.metadata,
          },
        },
      }),
    );
  }

  /** The client of a streamed call is gone: tell the user function, which answers with a CrdtStreamCancelledResponse. */
  private cancel(call: Call): void {
    switch (call.state) {
      case "queued": {
        const i = this.queue.indexOf(call);
        if (i >= 0) this.queue.splice(i, 1);
        call.state = "done";
        call.finish();
        this.checkIdle();
        return;
      }
      case "sent":
      case "streaming": {
        call.state = "cancelling";
        call.finish();
        this.cancelled.set(call.id, call.request);
        call.clearTimer();
        // A user function that never answers the cancellation does not keep the entity busy forever.
        call.timer = setTimeout(() => {
          this.o.log.warn({ entityId: this.o.entityId, commandId: String(call.id) }, "the user function did not answer a stream cancellation");
          this.endCall(call);
        }, this.o.commandTimeoutMs);
        this.stream?.write(create(CrdtStreamInSchema, { message: { case: "streamCancelled", value: { entityId: this.o.entityId, id: call.id } } }));
        return;
      }
      default:
        return;
    }
  }

  private commandTimedOut(call: Call): void {
    if (call.state !== "sent") return;
    const text = `the user function did not answer command ${call.request.method.name} of entity ${this.o.entityId} within ${this.o.commandTimeoutMs} ms`;
    this.o.log.warn({ entityId: this.o.entityId }, text);
    this.endCall(call, new ProxyError(Code.UNAVAILABLE, text));
    this.restart(new ProxyError(Code.UNAVAILABLE, `entity ${this.o.entityId} was restarted after a command timed out; retry`));
  }

  /** Removes a call; with an error, its caller gets it. */
  private endCall(call: Call, error?: ProxyError): void {
    call.clearTimer();
    if (this.calls.get(call.id) === call) this.calls.delete(call.id);
    const open = call.state !== "done" && call.state !== "cancelling";
    call.state = "done";
    if (open) {
      if (error) call.fail(error);
      else call.finish();
    }
    this.pushUserViewChanges();
    this.checkIdle();
  }

  // ---- The replica and the stream

  private async load(): Promise<void> {
    this.phase = "loading";
    try {
      const stored = await this.o.crdts.get(this.o.persistenceId, this.o.entityId);
      this.version = stored.version;
      if (stored.value !== undefined) this.crdt = decodeState(stored.value);
      else if (stored.version > 0) this.phase = "deleted";
    } catch (e) {
      // A state this proxy cannot read is corrupt, not a passing outage.
      const code = e instanceof CrdtStateError ? Code.DATA_LOSS : Code.UNAVAILABLE;
      const error = new ProxyError(code, `could not load CRDT entity ${this.o.entityId}: ${(e as Error).message}`, { cause: e });
      this.o.log.error({ entityId: this.o.entityId, err: (e as Error).message }, "could not load CRDT state");
      for (const call of this.queue.splice(0)) call.fail(error);
      this.close();
      return;
    }
    if (this.phase === "deleted") {
      for (const call of this.queue.splice(0)) call.fail(this.deletedError());
      this.close();
      return;
    }
    if (this.phase !== "loading") return;
    this.phase = "ready";
    for (const call of this.queue.splice(0)) this.send(call);
    this.checkIdle();
  }

  /** The current stream, opened (with init) if needed. */
  private openStream(): Stream {
    if (this.stream) return this.stream;
    const stream = this.o.connection.openStream(HANDLE_PATH, CrdtStreamInSchema, CrdtStreamOutSchema);
    this.stream = stream;
    this.nextCommandId = 1n;
    this.cancelled = new Map();
    this.userView = undefined;
    stream.on("data", (out) => {
      if (this.stream === stream) this.onMessage(out);
    });
    stream.on("error", (err) => {
      if (this.stream === stream) this.restart(this.o.connection.toProxyError(err));
    });
    stream.on("end", () => {
      if (this.stream === stream) this.restart(new ProxyError(Code.UNAVAILABLE, `the user function closed the stream of entity ${this.o.entityId}`));
    });
    stream.write(
      create(CrdtStreamInSchema, {
        message: {
          case: "init",
          value: { serviceName: this.o.serviceName, entityId: this.o.entityId, delta: this.crdt?.toDelta(this.o.replica) },
        },
      }),
    );
    return stream;
  }

  /** Cancels the stream; every call on it gets `error`; the next command opens a new stream. */
  private restart(error: ProxyError): void {
    this.dropStream();
    this.failCalls(error);
    this.o.onRestart?.();
    this.checkIdle();
  }

  private dropStream(): void {
    const stream = this.stream;
    this.stream = undefined;
    this.userView = undefined;
    stream?.cancel();
  }

  private failCalls(error: ProxyError): void {
    const calls = [...this.calls.values()];
    this.calls.clear();
    for (const call of calls) {
      call.clearTimer();
      const open = call.state !== "cancelling";
      call.state = "done";
      if (open) call.fail(error);
    }
  }

  private failAll(error: ProxyError): void {
    for (const call of this.queue.splice(0)) call.fail(error);
    this.failCalls(error);
  }

  private protocolError(text: string, offender?: Call): void {
    const message = `entity ${this.o.entityId} of ${this.o.serviceName}: ${text}`;
    this.o.reportError(message);
    if (offender) this.endCall(offender, new ProxyError(Code.INTERNAL, message));
    // The user function may hold a view the replica does not: a new stream re-initialises it.
    this.restart(new ProxyError(Code.UNAVAILABLE, `entity ${this.o.entityId} was restarted after a protocol error of the user function; retry`));
  }

  // ---- Messages from the user function

  private onMessage(out: CrdtStreamOut): void {
    switch (out.message.case) {
      case "reply":
        return this.onReply(out.message.value);
      case "streamedMessage":
        return this.onStreamedMessage(out.message.value);
      case "streamCancelledResponse":
        return this.onCancelledResponse(out.message.value);
      case "failure": {
        const failure = out.message.value;
        const text = `entity ${this.o.entityId} of ${this.o.serviceName} failed: ${failure.description}`;
        this.o.log.warn({ entityId: this.o.entityId, commandId: String(failure.commandId) }, text);
        this.restart(new ProxyError(Code.UNKNOWN, failure.description || text));
        return;
      }
      default:
        this.protocolError("the user function sent an empty stream message");
    }
  }

  private onReply(reply: CrdtReply): void {
    const call = this.calls.get(reply.commandId);
    const late = call === undefined ? this.cancelled.get(reply.commandId) : undefined;
    if ((call === undefined && late === undefined) || (call !== undefined && call.state !== "sent" && call.state !== "cancelling")) {
      const why = call === undefined ? "which is not in flight" : "which already had its reply";
      this.protocolError(`the user function replied to command id ${reply.commandId}, ${why}`);
      return;
    }
    const request = call?.request ?? late!;
    if (reply.streamed && !request.method.serverStreaming) {
      this.protocolError(
        `the user function sent a streamed reply to command ${reply.commandId} (${request.method.name}), which is not a server-streaming method`,
        call,
      );
      return;
    }
    // The client of a cancelled call is gone: the reply still changes state and runs its side effects.
    const detached = call === undefined || call.state === "cancelling";
    if (!detached) call.clearTimer();
    const action = reply.clientAction;
    if (action?.action.case === "failure") {
      // A failed command changes nothing and runs no side effects.
      if (!detached) call.deliver(Promise.resolve({ action, sideEffects: [] }));
      if (call) this.endCall(call);
      if (action.action.value.restart) this.restart(new ProxyError(Code.UNAVAILABLE, `entity ${this.o.entityId} was restarted by the user function; retry`));
      return;
    }
    const durable = this.applyStateAction(reply.stateAction, detached ? undefined : call);
    if (durable === "rejected") return;
    const outcome = durable.then(() => ({ action, sideEffects: reply.sideEffects }));
    if (detached) {
      this.detach(outcome, request);
      // Without a stream to cancel, the user function has nothing more to say about this call.
      if (call && !reply.streamed) this.endCall(call);
      return;
    }
    call.deliver(outcome);
    if (reply.streamed) {
      call.state = "streaming";
      this.pushUserViewChanges();
      this.checkIdle();
    } else {
      this.endCall(call);
    }
  }

  private onStreamedMessage(message: CrdtStreamedMessage): void {
    const call = this.calls.get(message.commandId);
    if (call === undefined || (call.state !== "streaming" && call.state !== "cancelling")) {
      if (call === undefined && this.cancelled.has(message.commandId)) return;
      this.o.reportError(
        `entity ${this.o.entityId} of ${this.o.serviceName}: the user function sent a streamed message for command id ${message.commandId}, which has no open stream`,
      );
      return;
    }
    const outcome = Promise.resolve({ action: message.clientAction, sideEffects: message.sideEffects });
    if (call.state === "cancelling") {
      this.detach(outcome, call.request);
      if (message.endStream) this.endCall(call);
      return;
    }
    if (message.clientAction !== undefined || message.sideEffects.length > 0) call.deliver(outcome);
    if (message.endStream) this.endCall(call);
  }

  private onCancelledResponse(response: CrdtStreamCancelledResponse): void {
    const call = this.calls.get(response.commandId);
    const request = call?.request ?? this.cancelled.get(response.commandId);
    if (request === undefined || (call !== undefined && call.state !== "cancelling")) {
      this.o.reportError(
        `entity ${this.o.entityId} of ${this.o.serviceName}: the user function answered a stream cancellation for command id ${response.commandId}, which was not cancelled`,
      );
      return;
    }
    if (call) this.endCall(call);
    this.cancelled.delete(response.commandId);
    const durable = this.applyStateAction(response.stateAction, undefined);
    if (durable === "rejected") return;
    this.detach(durable.then(() => ({ action: undefined, sideEffects: response.sideEffects })), request);
  }

  /** Runs the side effects of an outcome whose client is gone (a forward or reply has nobody to go to). */
  private detach(outcome: Promise<CommandOutcome>, request: CommandRequest): void {
    outcome
      .then((o) => (o.sideEffects.length > 0 ? this.o.runDetached({ action: undefined, sideEffects: o.sideEffects }, request) : undefined))
      .catch((e: unknown) => this.o.log.warn({ entityId: this.o.entityId, err: (e as Error).message }, "side effects of a cancelled stream failed"));
  }

  /**
   * Applies a reply's state action to the replica. Resolves when the caller may be answered
   * (at once for LOCAL, once durable for MAJORITY, ALL and delete); "rejected" when the action is
   * invalid (the caller has its error and the stream is restarting).
   */
  private applyStateAction(action: CrdtStateAction | undefined, call: Call | undefined): Promise<void> | "rejected" {
    switch (action?.action.case) {
      case undefined:
        return Promise.resolve();
      case "update": {
        if (this.phase === "deleted") {
          if (call) this.endCall(call, this.deletedError());
          return "rejected";
        }
        const delta = action.action.value;
        try {
          if (this.crdt === undefined) {
            const created = emptyCrdt(kindOf(delta));
            applyLocal(created, delta, this.o.replica);
            this.crdt = created;
          } else {
            applyLocal(this.crdt, delta, this.o.replica);
          }
        } catch (e) {
          if (!(e instanceof CrdtDeltaError)) throw e;
          this.protocolError(`invalid CRDT delta (not applied): ${e.message}`, call);
          return "rejected";
        }
        if (this.userView) {
          try {
            this.userView.apply(delta, this.o.replica);
          } catch {
            // The user function's view cannot be followed any more: re-initialise it.
            this.dropStream();
          }
        }
        const seq = ++this.localSeq;
        this.flush();
        return action.writeConsistency === CrdtWriteConsistency.LOCAL ? Promise.resolve() : this.durable(seq);
      }
      case "delete": {
        this.phase = "deleted";
        this.crdt = undefined;
        this.userView = undefined;
        const seq = ++this.localSeq;
        this.flush();
        return this.durable(seq);
      }
    }
  }

  /** After another replica's change: what the user function has not seen, once it has no command outstanding. */
  private pushUserViewChanges(): void {
    const seen = this.userView;
    if (seen === undefined || this.stream === undefined || this.crdt === undefined) return;
    for (const call of this.calls.values()) if (call.state === "sent") return;
    this.userView = undefined;
    if (seen.kind !== this.crdt.kind) {
      // Another replica created the entity as another type, and its state won the join.
      this.restart(new ProxyError(Code.UNAVAILABLE, `entity ${this.o.entityId} changed type on another replica; retry`));
      return;
    }
    const delta = this.crdt.deltaFrom(seen, this.o.replica);
    if (delta === RESET) {
      this.restart(new ProxyError(Code.UNAVAILABLE, `entity ${this.o.entityId} was re-initialised after a change from another replica; retry`));
      return;
    }
    if (delta) this.stream.write(create(CrdtStreamInSchema, { message: { case: "delta", value: delta } }));
  }

  // ---- Durability

  private durable(seq: number): Promise<void> {
    if (seq <= this.durableSeq) return Promise.resolve();
    return new Promise((resolve, reject) => this.durability.push({ seq, resolve, reject }));
  }

  private flush(): void {
    if (this.writing || this.retryTimer) return;
    this.writing = true;
    void this.writeLoop();
  }

  private async writeLoop(): Promise<void> {
    try {
      while (this.durableSeq < this.localSeq) {
        const seq = this.localSeq;
        const deleting = this.phase === "deleted";
        try {
          this.version = await this.o.crdts.write({
            persistenceId: this.o.persistenceId,
            entityId: this.o.entityId,
            expectedVersion: this.version,
            value: deleting ? undefined : encodeState(this.crdt!),
          });
        } catch (e) {
          if (e instanceof VersionConflictError && (await this.joinStored())) continue;
          if (e instanceof VersionConflictError) return;
          this.writeFailed(e);
          return;
        }
        this.durableSeq = seq;
        while (this.durability.length > 0 && this.durability[0]!.seq <= seq) this.durability.shift()!.resolve();
        if (deleting) this.deletedDurably();
      }
    } finally {
      this.writing = false;
      this.checkIdle();
    }
  }

  /**
   * Another writer changed the stored state: join it into the replica (a stored delete wins).
   * Returns whether to write again.
   */
  private async joinStored(): Promise<boolean> {
    let stored;
    try {
      stored = await this.o.crdts.get(this.o.persistenceId, this.o.entityId);
    } catch (e) {
      this.writeFailed(e);
      return false;
    }
    this.version = stored.version;
    if (this.phase === "deleted") return true;
    if (stored.value === undefined) {
      this.deletedRemotely();
      return false;
    }
    let remote: Crdt;
    try {
      remote = decodeState(stored.value);
    } catch (e) {
      this.writeFailed(e);
      return false;
    }
    const before = this.crdt!;
    this.crdt = mergeCrdts(before, remote);
    if (this.stream) this.userView ??= before;
    this.pushUserViewChanges();
    return true;
  }

  private writeFailed(e: unknown): void {
    const message = `could not persist the state of CRDT entity ${this.o.entityId}: ${(e as Error).message}`;
    this.o.log.error({ entityId: this.o.entityId, err: (e as Error).message }, "CRDT write failed");
    const error = new ProxyError(Code.UNAVAILABLE, message, { cause: e });
    for (const waiter of this.durability.splice(0)) waiter.reject(error);
    if (this.stopping) {
      // Nothing will retry after shutdown: what is not stored is lost, and said so.
      this.o.log.error({ entityId: this.o.entityId }, "CRDT changes acknowledged with LOCAL consistency were not stored before shutdown");
      this.durableSeq = this.localSeq;
      return;
    }
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.flush();
    }, WRITE_RETRY_MS);
    this.retryTimer.unref();
  }

  // ---- Deletion

  private deletedError(): ProxyError {
    return new ProxyError(Code.NOT_FOUND, `entity ${this.o.entityId} of ${this.o.serviceName} was deleted`);
  }

  /** The delete is stored: the stream completes, every other caller learns the entity is gone. */
  private deletedDurably(): void {
    const stream = this.stream;
    this.stream = undefined;
    stream?.end();
    this.failAll(this.deletedError());
    this.close();
  }

  /** Another replica deleted the entity: tell the user function, and complete its stream. */
  private deletedRemotely(): void {
    this.phase = "deleted";
    this.crdt = undefined;
    this.userView = undefined;
    const error = this.deletedError();
    for (const waiter of this.durability.splice(0)) waiter.reject(error);
    this.durableSeq = this.localSeq;
    const stream = this.stream;
    this.stream = undefined;
    if (stream) {
      stream.write(create(CrdtStreamInSchema, { message: { case: "delete", value: {} } }));
      stream.end();
    }
    this.failAll(error);
    this.close();
  }

  // ---- Passivation and shutdown

  private isIdle(): boolean {
    return (
      this.queue.length === 0 &&
      this.calls.size === 0 &&
      this.durability.length === 0 &&
      !this.writing &&
      this.retryTimer === undefined &&
      this.durableSeq >= this.localSeq
    );
  }

  private checkIdle(): void {
    if (this.phase === "closed" || this.phase === "new" || this.phase === "loading" || !this.isIdle()) return;
    if (this.stopping) {
      this.close();
      return;
    }
    if (this.idleTimer) return;
    this.idleTimer = setTimeout(() => {
      this.idleTimer = undefined;
      if (this.isIdle()) {
        this.o.log.debug({ entityId: this.o.entityId }, "passivating idle CRDT entity");
        this.close();
      }
    }, this.o.passivationTimeoutMs);
    this.idleTimer.unref();
  }

  private clearIdleTimer(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }

  /** Ends the stream cleanly and leaves the host. */
  private close(): void {
    if (this.phase === "closed") return;
    this.phase = "closed";
    this.clearIdleTimer();
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const stream = this.stream;
    this.stream = undefined;
    stream?.end();
    this.o.release();
    for (const resolve of this.shutdownWaiters.splice(0)) resolve();
  }
}
