// One consumer per (source, consumer group): reads the source in offset order, delivers each
// message at least once, one at a time per key (an event log's entity) and many keys at once, and
// commits the offset below which everything is done — batched, every commitIntervalMs. A message
// that keeps failing is retried with backoff, then set aside as a dead letter so that the stream
// goes on. A crash loses at most the work after the last commit, which is then delivered again.
import { setMaxListeners } from "node:events";
import type { ConsumerOffsets, DeadLetters } from "../store/store.js";
import type { Logger } from "../telemetry/logger.js";
import type { MessageSource, SourceMessage } from "./sources.js";

export interface ConsumerSettings {
  /** Attempts per message before it becomes a dead letter (≥ 1). */
  readonly maxAttempts: number;
  /** Backoff between attempts: doubles from min to max. */
  readonly backoffMinMs: number;
  readonly backoffMaxMs: number;
  /** Messages being delivered at once (over distinct keys). */
  readonly maxInFlight: number;
  /** Messages read per query. */
  readonly batchSize: number;
  readonly commitIntervalMs: number;
  /** How often an idle consumer looks for messages written by other processes. */
  readonly pollIntervalMs: number;
  /** The lease on (group, source): renewed at a third of it; another proxy takes over after it. */
  readonly leaseTtlMs: number;
}

/** What became of one message. */
export type DeliveryOutcome = "delivered" | "unmatched" | "dead-letter";

export interface ConsumerHooks {
  /** One call per finished message, and per failed attempt ("retry"). */
  readonly onOutcome?: (outcome: DeliveryOutcome | "retry") => void;
}

/**
 * Delivers one message; resolves with "unmatched" when no method takes it (it is skipped),
 * throws to have it retried. A PoisonMessageError goes straight to the dead letters. `committed`
 * is the consumer's stored offset: no message at or below it will ever be delivered again.
 */
export type Deliver = (message: SourceMessage, signal: AbortSignal, committed: number) => Promise<"delivered" | "unmatched">;

/** A message that can never be delivered (e.g. data that does not decode): no point retrying it. */
export class PoisonMessageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PoisonMessageError";
  }
}

export interface ConsumerStatus {
  readonly group: string;
  readonly source: string;
  /** Holds the lease, i.e. is the one consumer of (source, group) right now. */
  readonly active: boolean;
  readonly committed: number;
  /** The highest offset read so far. */
  readonly read: number;
  readonly inFlight: number;
  readonly delivered: number;
  readonly deadLetters: number;
}

interface Tracked {
  readonly message: SourceMessage;
  done: boolean;
}

export class Consumer {
  private stopped = false;
  private active = false;
  private committed = 0;
  private readOffset = 0;
  /** Read and not yet committed, in offset order: the commit point is the first not done. */
  private readonly window: Tracked[] = [];
  private windowHead = 0;
  /** Per key: the messages waiting behind the one being delivered. */
  private readonly lanes = new Map<string, Tracked[]>();
  private running = 0;
  private readonly ready: Tracked[] = [];
  private delivered = 0;
  private deadLettered = 0;
  private wakeUp: (() => void) | undefined;
  private woken = false;
  /** Stopping: no new reads, attempts or backoff waits. */
  private readonly halt = new AbortController();
  /** The grace period is over: deliveries still running are abandoned (delivered again later). */
  private readonly aborter = new AbortController();
  private loop: Promise<void> | undefined;
  private lastCommit = 0;
  private lastClaim = 0;
  private unwatch: (() => void) | undefined;

  constructor(
    readonly group: string,
    private readonly source: MessageSource,
    private readonly owner: string,
    private readonly offsets: ConsumerOffsets,
    private readonly deadLetters: DeadLetters,
    private readonly deliver: Deliver,
    private readonly settings: ConsumerSettings,
    private readonly log: Logger,
    private readonly hooks: ConsumerHooks = {},
  ) {}

  start(): void {
    // Every delivery in flight listens to it (up to maxInFlight): not a leak.
    setMaxListeners(0, this.aborter.signal, this.halt.signal);
    this.unwatch = this.source.watch(() => this.wake());
    this.loop ??= this.run();
  }

  status(): ConsumerStatus {
    return {
      group: this.group,
      source: this.source.id,
      active: this.active,
      committed: this.committed,
      read: this.readOffset,
      inFlight: this.running,
      delivered: this.delivered,
      deadLetters: this.deadLettered,
    };
  }

  /**
   * Stops reading, lets deliveries in progress finish (abandoning those still backing off: they
   * are delivered again later), commits what is done and gives the lease up.
   */
  async stop(graceMs: number): Promise<void> {
    if (this.stopped) return this.loop;
    this.stopped = true;
    this.unwatch?.();
    this.halt.abort();
    await this.waitUntil(() => this.running === 0, graceMs);
    this.aborter.abort();
    await this.loop;
    if (this.active) {
      await this.commit().catch(() => undefined);
      await this.offsets.release(this.group, this.source.id, this.owner).catch(() => undefined);
      this.active = false;
    }
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        await this.step();
      } catch (e) {
        // The store or the source is unreachable: wait, then carry on from what is known.
        this.log.warn({ group: this.group, source: this.source.id, err: (e as Error).message }, "eventing consumer could not read or commit; retrying");
        await this.sleep(this.settings.backoffMaxMs);
      }
    }
  }

  private async step(): Promise<void> {
    const now = Date.now();
    if (!this.active || now - this.lastClaim >= this.settings.leaseTtlMs / 3) {
      const held = await this.offsets.claim(this.group, this.source.id, this.owner, this.settings.leaseTtlMs);
      this.lastClaim = now;
      if (!held) {
        if (this.active) this.lostLease();
        await this.sleep(this.settings.leaseTtlMs / 3, false);
        return;
      }
      if (!this.active) {
        // Take over from the committed offset: whatever was read past it is delivered again.
        this.committed = await this.offsets.get(this.group, this.source.id);
        this.readOffset = this.committed;
        this.active = true;
        this.log.info({ group: this.group, source: this.source.id, offset: this.committed }, "eventing consumer started");
      }
    }
    if (Date.now() - this.lastCommit >= this.settings.commitIntervalMs) await this.commit();
    const buffered = this.window.length - this.windowHead;
    if (buffered >= this.settings.batchSize * 4) {
      await this.sleep(this.settings.commitIntervalMs);
      return;
    }
    const batch = await this.source.read(this.readOffset, this.settings.batchSize);
    if (batch.length === 0) {
      const uncommitted = this.window.length > this.windowHead || this.readOffset > this.committed;
      await this.sleep(uncommitted ? this.settings.commitIntervalMs : this.settings.pollIntervalMs);
      return;
    }
    for (const message of batch) {
      if (message.offset <= this.readOffset) continue;
      this.readOffset = message.offset;
      this.enqueue({ message, done: false });
    }
  }

  private lostLease(): void {
    // Another proxy consumes now; what is in flight here finishes (at least once), the rest is dropped.
    this.log.warn({ group: this.group, source: this.source.id }, "eventing consumer lost its lease to another proxy");
    this.active = false;
    this.window.length = 0;
    this.windowHead = 0;
    this.lanes.clear();
    this.ready.length = 0;
  }

  private enqueue(tracked: Tracked): void {
    this.window.push(tracked);
    const lane = this.lanes.get(tracked.message.key);
    if (lane !== undefined) {
      lane.push(tracked);
      return;
    }
    this.lanes.set(tracked.message.key, []);
    this.ready.push(tracked);
    this.pump();
  }

  private pump(): void {
    while (this.running < this.settings.maxInFlight && this.ready.length > 0 && !this.halt.signal.aborted) {
      const next = this.ready.shift()!;
      this.running++;
      void this.process(next).finally(() => {
        this.running--;
        this.next(next.message.key);
        this.wake();
      });
    }
  }

  /** The key's next message, once the previous one is done. */
  private next(key: string): void {
    const lane = this.lanes.get(key);
    if (lane === undefined) return;
    const following = lane.shift();
    if (following === undefined) this.lanes.delete(key);
    else this.ready.push(following);
    this.pump();
  }

  private async process(tracked: Tracked): Promise<void> {
    const { message } = tracked;
    const signal = this.aborter.signal;
    const halted = this.halt.signal;
    let lastError = "";
    let attempts = 0;
    for (let attempt = 1; attempt <= this.settings.maxAttempts; attempt++) {
      if (halted.aborted) return;
      attempts = attempt;
      try {
        const outcome = await this.deliver(message, signal, this.committed);
        this.finish(tracked, outcome);
        return;
      } catch (e) {
        if (signal.aborted) return;
        lastError = (e as Error).message;
        if (e instanceof PoisonMessageError) break;
        this.hooks.onOutcome?.("retry");
        if (attempt < this.settings.maxAttempts) {
          this.log.warn({ group: this.group, source: this.source.id, offset: message.offset, attempt, err: lastError }, "eventing delivery failed; retrying");
          await this.sleep(Math.min(this.settings.backoffMaxMs, this.settings.backoffMinMs * 2 ** (attempt - 1)), false);
        }
      }
    }
    if (halted.aborted) return;
    await this.deadLetter(tracked, lastError, attempts);
  }

  private async deadLetter(tracked: Tracked, error: string, attempts: number): Promise<void> {
    const { message } = tracked;
    // Setting a message aside must not lose it: keep trying until it is stored (or we stop).
    for (;;) {
      try {
        await this.deadLetters.add({
          group: this.group,
          source: this.source.id,
          offset: message.offset,
          messageId: message.id,
          type: message.type,
          subject: message.subject,
          contentType: message.contentType,
          data: message.data,
          attempts,
          // Stores refuse NUL in text; an error message is only for people.
          error: error.replaceAll("\0", "\\0"),
          time: Date.now(),
        });
        break;
      } catch (e) {
        if (this.halt.signal.aborted) return;
        if (e instanceof RangeError) {
          // The store refuses the record itself: retrying cannot help; the log keeps what it said.
          this.log.error({ group: this.group, source: this.source.id, offset: message.offset, err: e.message }, "could not store a dead letter");
          break;
        }
        this.log.warn({ err: (e as Error).message }, "could not store a dead letter; retrying");
        await this.sleep(this.settings.backoffMaxMs, false);
        if (this.halt.signal.aborted) return;
      }
    }
    this.deadLettered++;
    this.log.error(
      { group: this.group, source: this.source.id, offset: message.offset, id: message.id, type: message.type, subject: message.subject, err: error },
      "eventing message moved to the dead letters after its last attempt",
    );
    this.finish(tracked, "dead-letter");
  }

  private finish(tracked: Tracked, outcome: DeliveryOutcome): void {
    tracked.done = true;
    if (outcome === "delivered") this.delivered++;
    this.hooks.onOutcome?.(outcome);
  }

  /** The offset below which every read message is done. */
  private commitPoint(): number {
    let point = this.committed;
    while (this.windowHead < this.window.length && this.window[this.windowHead]!.done) {
      point = this.window[this.windowHead]!.message.offset;
      this.windowHead++;
    }
    if (this.windowHead > 1024) {
      this.window.splice(0, this.windowHead);
      this.windowHead = 0;
    }
    // Nothing outstanding: everything read is done, including offsets skipped between messages.
    return this.windowHead === this.window.length ? Math.max(point, this.readOffset) : point;
  }

  private async commit(): Promise<void> {
    this.lastCommit = Date.now();
    if (!this.active) return;
    const point = this.commitPoint();
    if (point <= this.committed) return;
    const held = await this.offsets.commit(this.group, this.source.id, this.owner, point);
    if (held) this.committed = point;
    else this.lostLease();
  }

  private wake(): void {
    this.woken = true;
    const wake = this.wakeUp;
    this.wakeUp = undefined;
    wake?.();
  }

  /**
   * Waits ms, or until stopped, or (when `wakeable`) until woken. Only the read loop sleeps
   * wakeable, so there is at most one such sleeper.
   */
  private sleep(ms: number, wakeable = true): Promise<void> {
    if (wakeable && this.woken) {
      this.woken = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const signal = this.halt.signal;
      if (signal.aborted) return resolve();
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        if (wakeable) {
          this.woken = false;
          if (this.wakeUp === done) this.wakeUp = undefined;
        }
        resolve();
      };
      const timer = setTimeout(done, Math.max(1, ms));
      signal.addEventListener("abort", done, { once: true });
      if (wakeable) this.wakeUp = done;
    });
  }

  private async waitUntil(condition: () => boolean, ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (!condition() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  }
}
