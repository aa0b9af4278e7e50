// What event-sourced and value entities share (PROTOCOL.md §5): a FIFO mailbox in front of one
// protocol stream to the user function, one command in flight, recovery before the first command,
// restarts, stops, passivation and command timeouts. A subclass says how to recover its state, how
// to frame init and commands, and how to make a reply's state change durable.
import { create } from "@bufbuild/protobuf";
import { AnySchema, type Any } from "@bufbuild/protobuf/wkt";
import type { ClientAction, Failure, SideEffect } from "@cloudstate-ts/protocol";
import { Code, ProxyError } from "../errors.js";
import type { Logger } from "../telemetry/logger.js";
import type { BidiStream, UserFunctionConnection } from "../user-function/connection.js";
import type { CommandOutcome, CommandRequest } from "./command.js";
import { replyTypeFits } from "../discovery/service-model.js";
import type { HostedEntity } from "./entity-host.js";

export interface KeyedEntityOptions {
  readonly serviceName: string;
  readonly persistenceId: string;
  readonly entityId: string;
  readonly passivationTimeoutMs: number;
  /** How long the user function may take to answer one command before the entity is restarted. */
  readonly commandTimeoutMs: number;
  readonly connection: UserFunctionConnection;
  readonly log: Logger;
  /** Called when the entity leaves its host (passivated or stopped). */
  readonly release: () => void;
  /** Reports a protocol violation to the user function (reportError) and the log. */
  readonly reportError: (message: string) => void;
  readonly onRestart?: (() => void) | undefined;
}

/** A reply from the user function, in the shape every keyed model shares. */
export interface KeyedReply {
  readonly commandId: bigint;
  readonly clientAction?: ClientAction | undefined;
  readonly sideEffects: readonly SideEffect[];
}

/** One message from the user function, classified by the subclass. */
export type StreamOutMessage<R extends KeyedReply> =
  | { readonly case: "reply"; readonly value: R }
  | { readonly case: "failure"; readonly value: Failure }
  | { readonly case: undefined };

interface Pending {
  readonly request: CommandRequest;
  readonly resolve: (outcome: CommandOutcome) => void;
  readonly reject: (error: ProxyError) => void;
  id?: bigint;
  timer?: NodeJS.Timeout;
}

type Phase = "idle" | "starting" | "ready" | "stopped";

export abstract class KeyedEntity<In, Out, R extends KeyedReply> implements HostedEntity {
  private phase: Phase = "idle";
  private readonly queue: Pending[] = [];
  private inflight: Pending | undefined;
  private persisting = false;
  private stream: BidiStream<In, Out> | undefined;
  private nextCommandId = 1n;
  private idleTimer: NodeJS.Timeout | undefined;
  private shuttingDown: (() => void) | undefined;

  constructor(protected readonly o: KeyedEntityOptions) {}

  /** The protocol's stream path, e.g. "/cloudstate.eventsourced.EventSourced/handle". */
  protected abstract openStream(): BidiStream<In, Out>;
  /** Loads the entity's durable state and returns the messages that start the stream (init, replay). */
  protected abstract recover(): Promise<In[]>;
  protected abstract commandMessage(id: bigint, request: CommandRequest): In;
  protected abstract classify(out: Out): StreamOutMessage<R>;
  /** Makes the reply's state change durable; a thrown error fails the command and restarts the entity. */
  protected abstract persist(reply: R): Promise<void>;

  handle(request: CommandRequest): Promise<CommandOutcome> {
    if (this.phase === "stopped") {
      return Promise.reject(new ProxyError(Code.UNAVAILABLE, `entity ${this.o.entityId} is stopping; retry`));
    }
    return new Promise<CommandOutcome>((resolve, reject) => {
      this.queue.push({ request, resolve, reject });
      this.pump();
    });
  }

  /** Fails every waiting and in-flight command with `error` and stops (shutdown grace expired). */
  abort(error: ProxyError): void {
    this.stop(error);
  }

  /** Finishes what is queued, then closes the stream (used by graceful shutdown). */
  shutdown(): Promise<void> {
    if (this.phase === "stopped") return Promise.resolve();
    if (this.isIdle()) {
      this.close();
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.shuttingDown = resolve;
    });
  }

  private isIdle(): boolean {
    return this.queue.length === 0 && this.inflight === undefined && !this.persisting;
  }

  private pump(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    if (this.inflight !== undefined || this.persisting) return;
    if (this.phase === "idle") {
      if (this.queue.length > 0) void this.start();
      return;
    }
    if (this.phase !== "ready") return;
    let next: Pending | undefined;
    while ((next = this.queue.shift()) !== undefined) {
      if (next.request.signal?.aborted) {
        next.reject(new ProxyError(Code.CANCELLED, "the call was cancelled before the entity ran it"));
        continue;
      }
      break;
    }
    if (next === undefined) {
      this.becameIdle();
      return;
    }
    const id = this.nextCommandId++;
    next.id = id;
    this.inflight = next;
    next.timer = setTimeout(() => this.commandTimedOut(next), this.o.commandTimeoutMs);
    this.stream!.write(this.commandMessage(id, next.request));
  }

  private becameIdle(): void {
    if (this.shuttingDown) {
      this.close();
      this.shuttingDown();
      this.shuttingDown = undefined;
      return;
    }
    this.idleTimer = setTimeout(() => this.passivate(), this.o.passivationTimeoutMs);
    this.idleTimer.unref();
  }

  private passivate(): void {
    if (!this.isIdle() || this.phase !== "ready") return;
    this.o.log.debug({ entityId: this.o.entityId }, "passivating idle entity");
    this.close();
  }

  /** Ends the stream cleanly and leaves the host. */
  private close(): void {
    this.phase = "stopped";
    if (this.idleTimer) clearTimeout(this.idleTimer);
    const stream = this.stream;
    this.stream = undefined;
    stream?.end();
    this.o.release();
  }

  private async start(): Promise<void> {
    this.phase = "starting";
    let initial: In[];
    try {
      initial = await this.recover();
    } catch (e) {
      this.stop(new ProxyError(Code.UNAVAILABLE, `could not load entity ${this.o.entityId}: ${(e as Error).message}`, { cause: e }));
      return;
    }
    if (this.phase !== "starting") return;
    this.nextCommandId = 1n;
    const stream = this.openStream();
    this.stream = stream;
    stream.on("data", (out) => {
      if (this.stream === stream) this.onMessage(out);
    });
    stream.on("error", (err) => {
      if (this.stream === stream) this.stop(this.o.connection.toProxyError(err));
    });
    stream.on("end", () => {
      if (this.stream !== stream) return;
      this.stop(new ProxyError(Code.UNAVAILABLE, `the user function closed the stream of entity ${this.o.entityId}`));
    });
    for (const message of initial) stream.write(message);
    this.phase = "ready";
    this.pump();
  }

  private onMessage(out: Out): void {
    const pending = this.inflight;
    const message = this.classify(out);
    switch (message.case) {
      case "reply": {
        const reply = message.value;
        if (pending === undefined || reply.commandId !== pending.id) {
          const text = `entity ${this.o.entityId} of ${this.o.serviceName}: the user function replied to command id ${reply.commandId}, but the command in flight is ${pending?.id ?? "none"}`;
          this.o.reportError(text);
          this.stop(new ProxyError(Code.INTERNAL, text));
          return;
        }
        this.finishCommand(pending);
        void this.applyReply(pending, reply);
        return;
      }
      case "failure": {
        const failure = message.value;
        const text = `entity ${this.o.entityId} of ${this.o.serviceName} failed: ${failure.description}`;
        this.o.log.warn({ entityId: this.o.entityId, commandId: String(failure.commandId) }, text);
        this.stop(new ProxyError(Code.UNKNOWN, failure.description || text));
        return;
      }
      default:
        this.o.reportError(`entity ${this.o.entityId} of ${this.o.serviceName}: the user function sent an empty stream message`);
        this.stop(new ProxyError(Code.INTERNAL, "the user function sent an invalid message"));
    }
  }

  private finishCommand(pending: Pending): void {
    if (pending.timer) clearTimeout(pending.timer);
    this.inflight = undefined;
  }

  private async applyReply(pending: Pending, reply: R): Promise<void> {
    const action = reply.clientAction;
    if (action?.action.case === "failure") {
      // A failed command changes no state and runs no side effects.
      pending.resolve({ action, sideEffects: [] });
      if (action.action.value.restart) this.restart();
      else this.pump();
      return;
    }
    const payload = action?.action.case === "reply" ? action.action.value.payload : undefined;
    if (payload !== undefined && !replyTypeFits(pending.request.method, payload.typeUrl)) {
      // Checked before persisting: a reply the client cannot use must not leave a state change behind.
      const text = `${this.o.serviceName}.${pending.request.method.name} replied with ${payload.typeUrl || "an Any without a type URL"}, but the method returns ${pending.request.method.outputTypeUrl}`;
      this.o.reportError(text);
      pending.reject(new ProxyError(Code.INTERNAL, text));
      this.restart();
      return;
    }
    this.persisting = true;
    try {
      await this.persist(reply);
    } catch (e) {
      this.persisting = false;
      // The user function holds a state the store does not: rebuild it before the next command.
      pending.reject(ProxyError.from(e));
      this.restart();
      return;
    }
    this.persisting = false;
    pending.resolve({ action, sideEffects: reply.sideEffects });
    this.pump();
  }

  private commandTimedOut(pending: Pending): void {
    if (this.inflight !== pending) return;
    const text = `the user function did not answer command ${pending.request.method.name} of entity ${this.o.entityId} within ${this.o.commandTimeoutMs} ms`;
    this.o.log.warn({ entityId: this.o.entityId }, text);
    this.inflight = undefined;
    pending.reject(new ProxyError(Code.UNAVAILABLE, text));
    this.restart();
  }

  /** Drops the stream and recovers the entity from the store before the next command. */
  private restart(): void {
    const stream = this.stream;
    this.stream = undefined;
    stream?.cancel();
    this.phase = "idle";
    this.o.onRestart?.();
    this.pump();
  }

  /** The entity cannot go on: every caller waiting on it gets the error; the next command starts it afresh. */
  private stop(error: ProxyError): void {
    if (this.phase === "stopped") return;
    this.phase = "stopped";
    if (this.idleTimer) clearTimeout(this.idleTimer);
    const stream = this.stream;
    this.stream = undefined;
    stream?.cancel();
    this.o.release();
    const inflight = this.inflight;
    this.inflight = undefined;
    if (inflight) {
      this.finishCommand(inflight);
      inflight.reject(error);
    }
    for (const p of this.queue.splice(0)) p.reject(error);
    if (this.shuttingDown) {
      this.shuttingDown();
      this.shuttingDown = undefined;
    }
  }
}

export function anyOf(typeUrl: string, value: Uint8Array): Any {
  return create(AnySchema, { typeUrl, value });
}
