// One event-sourced entity (PROTOCOL.md §5): a FIFO mailbox in front of one protocol stream to the
// user function. Recovery replays the latest snapshot and the events after it; each command's events
// (and snapshot) are appended to the journal with the expected sequence before its outcome is
// released, so an acknowledged reply is always durable and the journal never forks.
import { create } from "@bufbuild/protobuf";
import { AnySchema, type Any } from "@bufbuild/protobuf/wkt";
import {
  EventSourcedStreamInSchema,
  EventSourcedStreamOutSchema,
  type EventSourcedReply,
  type EventSourcedStreamIn,
  type EventSourcedStreamOut,
} from "@cloudstate-ts/protocol";
import { Code, ProxyError } from "../../errors.js";
import type { Journal, StoredPayload } from "../../store/store.js";
import { SequenceConflictError } from "../../store/store.js";
import type { Logger } from "../../telemetry/logger.js";
import type { BidiStream, UserFunctionConnection } from "../../user-function/connection.js";
import type { CommandOutcome, CommandRequest } from "../command.js";
import type { HostedEntity } from "../entity-host.js";

const HANDLE_PATH = "/cloudstate.eventsourced.EventSourced/handle";

type Stream = BidiStream<EventSourcedStreamIn, EventSourcedStreamOut>;

interface Pending {
  readonly request: CommandRequest;
  readonly resolve: (outcome: CommandOutcome) => void;
  readonly reject: (error: ProxyError) => void;
  id?: bigint;
  timer?: NodeJS.Timeout;
}

export interface EventSourcedEntityOptions {
  readonly serviceName: string;
  readonly persistenceId: string;
  readonly entityId: string;
  readonly passivationTimeoutMs: number;
  /** How long the user function may take to answer one command before the entity is restarted. */
  readonly commandTimeoutMs: number;
  readonly journal: Journal;
  readonly connection: UserFunctionConnection;
  readonly log: Logger;
  /** Called when the entity leaves its host (passivated or stopped). */
  readonly release: () => void;
  /** Reports a protocol violation to the user function (reportError) and the log. */
  readonly reportError: (message: string) => void;
  readonly onRestart?: () => void;
}

type Phase = "idle" | "starting" | "ready" | "stopped";

export class EventSourcedEntity implements HostedEntity {
  private phase: Phase = "idle";
  private readonly queue: Pending[] = [];
  private inflight: Pending | undefined;
  private persisting = false;
  private stream: Stream | undefined;
  /** The journal's highest sequence as this entity last wrote or read it. */
  private sequence = 0;
  private nextCommandId = 1n;
  private idleTimer: NodeJS.Timeout | undefined;
  private shuttingDown: (() => void) | undefined;

  constructor(private readonly o: EventSourcedEntityOptions) {}

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
    const { request } = next;
    this.stream!.write(
      create(EventSourcedStreamInSchema, {
        message: {
          case: "command",
          value: {
            entityId: this.o.entityId,
            id,
            name: request.method.name,
            payload: anyOf(request.method.inputTypeUrl, request.payload),
          },
        },
      }),
    );
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
    let recovered;
    try {
      recovered = await this.o.journal.recover(this.o.persistenceId, this.o.entityId);
    } catch (e) {
      this.stop(new ProxyError(Code.UNAVAILABLE, `could not load entity ${this.o.entityId}: ${(e as Error).message}`, { cause: e }));
      return;
    }
    if (this.phase !== "starting") return;
    this.sequence = recovered.sequence;
    this.nextCommandId = 1n;
    const stream = this.o.connection.openStream(HANDLE_PATH, EventSourcedStreamInSchema, EventSourcedStreamOutSchema);
    this.stream = stream;
    stream.on("data", (out) => {
      if (this.stream === stream) this.onMessage(out);
    });
    stream.on("error", (err) => {
      if (this.stream !== stream) return;
      this.stop(this.o.connection.toProxyError(err));
    });
    stream.on("end", () => {
      if (this.stream !== stream) return;
      this.stop(new ProxyError(Code.UNAVAILABLE, `the user function closed the stream of entity ${this.o.entityId}`));
    });
    const snapshot = recovered.snapshot;
    stream.write(
      create(EventSourcedStreamInSchema, {
        message: {
          case: "init",
          value: {
            serviceName: this.o.serviceName,
            entityId: this.o.entityId,
            snapshot: snapshot
              ? { snapshotSequence: BigInt(snapshot.sequence), snapshot: anyOf(snapshot.typeUrl, snapshot.bytes) }
              : undefined,
          },
        },
      }),
    );
    for (const event of recovered.events) {
      stream.write(
        create(EventSourcedStreamInSchema, {
          message: { case: "event", value: { sequence: BigInt(event.sequence), payload: anyOf(event.typeUrl, event.bytes) } },
        }),
      );
    }
    this.phase = "ready";
    this.pump();
  }

  private onMessage(out: EventSourcedStreamOut): void {
    const pending = this.inflight;
    switch (out.message.case) {
      case "reply": {
        const reply = out.message.value;
        if (pending === undefined || reply.commandId !== pending.id) {
          const message = `entity ${this.o.entityId} of ${this.o.serviceName}: the user function replied to command id ${reply.commandId}, but the command in flight is ${pending?.id ?? "none"}`;
          this.o.reportError(message);
          this.stop(new ProxyError(Code.INTERNAL, message));
          return;
        }
        this.finishCommand(pending);
        void this.applyReply(pending, reply);
        return;
      }
      case "failure": {
        const failure = out.message.value;
        const message = `entity ${this.o.entityId} of ${this.o.serviceName} failed: ${failure.description}`;
        this.o.log.warn({ entityId: this.o.entityId, commandId: String(failure.commandId) }, message);
        this.stop(new ProxyError(Code.UNKNOWN, failure.description || message));
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

  private async applyReply(pending: Pending, reply: EventSourcedReply): Promise<void> {
    const action = reply.clientAction;
    if (action?.action.case === "failure") {
      // A failed command persists nothing and runs no side effects.
      pending.resolve({ action, sideEffects: [] });
      if (action.action.value.restart) this.restart();
      else this.pump();
      return;
    }
    const payload = action?.action.case === "reply" ? action.action.value.payload : undefined;
    if (payload !== undefined && payload.typeUrl !== pending.request.method.outputTypeUrl) {
      // Checked before persisting: a reply the client cannot use must not leave a state change behind.
      const message = `${this.o.serviceName}.${pending.request.method.name} replied with ${payload.typeUrl || "an Any without a type URL"}, but the method returns ${pending.request.method.outputTypeUrl}`;
      this.o.reportError(message);
      pending.reject(new ProxyError(Code.INTERNAL, message));
      this.restart();
      return;
    }
    if (reply.events.length > 0) {
      this.persisting = true;
      const events: StoredPayload[] = reply.events.map((e) => ({ typeUrl: e.typeUrl, bytes: e.value }));
      const snapshot = reply.snapshot ? { typeUrl: reply.snapshot.typeUrl, bytes: reply.snapshot.value } : undefined;
      try {
        await this.o.journal.append({
          persistenceId: this.o.persistenceId,
          entityId: this.o.entityId,
          expectedSequence: this.sequence,
          events,
          snapshot,
        });
        this.sequence += events.length;
      } catch (e) {
        this.persisting = false;
        // The user function has applied events the journal does not hold: its state must be rebuilt.
        const conflict = e instanceof SequenceConflictError;
        pending.reject(
          new ProxyError(
            conflict ? Code.ABORTED : Code.UNAVAILABLE,
            conflict
              ? `entity ${this.o.entityId} was changed concurrently by another writer; the command was not applied, retry it`
              : `could not persist the events of entity ${this.o.entityId}: ${(e as Error).message}`,
            { cause: e },
          ),
        );
        this.restart();
        return;
      }
      this.persisting = false;
    }
    pending.resolve({ action, sideEffects: reply.sideEffects });
    this.pump();
  }

  private commandTimedOut(pending: Pending): void {
    if (this.inflight !== pending) return;
    const message = `the user function did not answer command ${pending.request.method.name} of entity ${this.o.entityId} within ${this.o.commandTimeoutMs} ms`;
    this.o.log.warn({ entityId: this.o.entityId }, message);
    this.inflight = undefined;
    pending.reject(new ProxyError(Code.UNAVAILABLE, message));
    this.restart();
  }

  /** Drops the stream and replays the entity from the journal before the next command. */
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

function anyOf(typeUrl: string, value: Uint8Array): Any {
  return create(AnySchema, { typeUrl, value });
}
