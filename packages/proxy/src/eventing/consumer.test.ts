import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { ConsumerOffsets, ConsumerPosition, DeadLetter, DeadLetterInput, DeadLetters } from "../store/store.js";
import { createLogger, silentLogger } from "../telemetry/logger.js";
import { Consumer, PoisonMessageError, type ConsumerSettings, type Deliver } from "./consumer.js";
import type { MessageSource, SourceMessage } from "./sources.js";

const SETTINGS: ConsumerSettings = {
  maxAttempts: 3,
  backoffMinMs: 5,
  backoffMaxMs: 20,
  maxInFlight: 8,
  batchSize: 16,
  commitIntervalMs: 10,
  pollIntervalMs: 20,
  leaseTtlMs: 300,
};

/** An append-only log with keys, like an event log. */
class FakeSource implements MessageSource {
  readonly id = "event-log:test";
  readonly messages: SourceMessage[] = [];
  private readonly watchers = new Set<() => void>();

  add(key: string, count = 1): void {
    for (let i = 0; i < count; i++) {
      const offset = this.messages.length + 1;
      this.messages.push({
        offset,
        id: String(offset),
        source: "test",
        type: "test.Event",
        subject: key,
        contentType: "application/protobuf",
        time: 0,
        key,
        payload: { typeUrl: "type.googleapis.com/test.Event", value: new Uint8Array([offset]) },
        data: new Uint8Array([offset]),
      });
    }
    for (const w of this.watchers) w();
  }

  read(afterOffset: number, limit: number): Promise<SourceMessage[]> {
    return Promise.resolve(this.messages.filter((m) => m.offset > afterOffset).slice(0, limit));
  }

  head(): Promise<number> {
    return Promise.resolve(this.messages.length);
  }

  watch(wake: () => void): () => void {
    this.watchers.add(wake);
    return () => this.watchers.delete(wake);
  }
}

class FakeOffsets implements ConsumerOffsets {
  offset = 0;
  owner: string | undefined;
  expires = 0;
  commits: number[] = [];

  get(): Promise<number> {
    return Promise.resolve(this.offset);
  }
  claim(_g: string, _s: string, owner: string, ttlMs: number): Promise<boolean> {
    if (this.owner === undefined || this.owner === owner || this.expires < Date.now()) {
      this.owner = owner;
      this.expires = Date.now() + ttlMs;
      return Promise.resolve(true);
    }
    return Promise.resolve(false);
  }
  release(_g: string, _s: string, owner: string): Promise<void> {
    if (this.owner === owner) this.owner = undefined;
    return Promise.resolve();
  }
  commit(_g: string, _s: string, owner: string, offset: number): Promise<boolean> {
    if (this.owner !== owner) return Promise.resolve(false);
    this.offset = Math.max(this.offset, offset);
    this.commits.push(offset);
    return Promise.resolve(true);
  }
  list(): Promise<ConsumerPosition[]> {
    return Promise.resolve([{ group: "g", source: "s", offset: this.offset, owner: this.owner }]);
  }
}

class FakeDeadLetters implements DeadLetters {
  readonly letters: DeadLetter[] = [];
  add(letter: DeadLetterInput): Promise<number> {
    this.letters.push({ ...letter, id: this.letters.length + 1 });
    return Promise.resolve(this.letters.length);
  }
  list(limit: number): Promise<DeadLetter[]> {
    return Promise.resolve(this.letters.slice(-limit).reverse());
  }
  count(): Promise<number> {
    return Promise.resolve(this.letters.length);
  }
  remove(): Promise<boolean> {
    return Promise.resolve(false);
  }
}

function consumer(source: FakeSource, offsets: FakeOffsets, deliver: Deliver, dead = new FakeDeadLetters(), owner = "me", settings = SETTINGS, log = silentLogger) {
  return new Consumer("group", source, owner, offsets, dead, deliver, settings, log);
}

async function until(condition: () => boolean, what: string, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("eventing consumer", () => {
  test("delivers every message once, in order per key, several keys at once, and commits the last offset", async () => {
    const source = new FakeSource();
    for (let i = 0; i < 20; i++) for (const key of ["a", "b", "c", "d"]) source.add(key);
    const offsets = new FakeOffsets();
    const seen = new Map<string, number[]>();
    let running = 0;
    let maxRunning = 0;
    const c = consumer(source, offsets, async (m) => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      await sleep(1);
      seen.set(m.key, [...(seen.get(m.key) ?? []), m.offset]);
      running--;
      return "delivered";
    });
    c.start();
    await until(() => offsets.offset === 80, "the commit of offset 80");
    source.add("e", 3);
    await until(() => offsets.offset === 83, "the commit of the later messages");
    await c.stop(1_000);
    for (const [key, list] of seen) {
      assert.deepEqual(list, [...list].sort((x, y) => x - y), `key ${key} in order`);
      assert.equal(new Set(list).size, list.length, `key ${key} without duplicates`);
    }
    assert.equal([...seen.values()].flat().length, 83);
    assert.ok(maxRunning > 1, "different keys are delivered concurrently");
    assert.ok(maxRunning <= 5, "at most one message per key at a time (5 keys)");
    assert.equal(c.status().delivered, 83);
    assert.equal(offsets.owner, undefined, "the lease is given up on stop");
  });

  test("retries a failing message with backoff, then moves it to the dead letters and goes on", async () => {
    const source = new FakeSource();
    source.add("a", 3);
    const offsets = new FakeOffsets();
    const dead = new FakeDeadLetters();
    const attempts = new Map<number, number[]>();
    const lines: string[] = [];
    const log = createLogger("warn", { write: (line: string) => lines.push(line) } as unknown as NodeJS.WritableStream);
    const c = consumer(source, offsets, (m) => {
      attempts.set(m.offset, [...(attempts.get(m.offset) ?? []), Date.now()]);
      if (m.offset === 2) return Promise.reject(new Error("user function says no"));
      return Promise.resolve("delivered");
    }, dead, "me", SETTINGS, log);
    c.start();
    await until(() => offsets.offset === 3, "the commit past the failing message");
    await c.stop(1_000);
    const times = attempts.get(2)!;
    assert.equal(times.length, 3, "maxAttempts attempts");
    assert.ok(times[2]! - times[1]! >= times[1]! - times[0]! - 2, "the backoff grows");
    assert.equal(attempts.get(3)!.length, 1);
    assert.equal(dead.letters.length, 1);
    assert.deepEqual(
      { offset: dead.letters[0]!.offset, attempts: dead.letters[0]!.attempts, error: dead.letters[0]!.error, group: dead.letters[0]!.group, source: dead.letters[0]!.source },
      { offset: 2, attempts: 3, error: "user function says no", group: "group", source: "event-log:test" },
    );
    assert.equal(c.status().deadLetters, 1);
    const entries = lines.map((l) => JSON.parse(l) as { level: number; msg: string; offset?: number; err?: string });
    assert.equal(entries.filter((e) => e.msg === "eventing delivery failed; retrying").length, 2, "each failed attempt but the last is a warning");
    const error = entries.find((e) => e.level === 50);
    assert.deepEqual([error?.msg, error?.offset, error?.err], ["eventing message moved to the dead letters after its last attempt", 2, "user function says no"]);
  });

  test("a poison message goes to the dead letters without retries", async () => {
    const source = new FakeSource();
    source.add("a", 2);
    const offsets = new FakeOffsets();
    const dead = new FakeDeadLetters();
    let calls = 0;
    const c = consumer(source, offsets, (m) => {
      calls++;
      return m.offset === 1 ? Promise.reject(new PoisonMessageError("bad JSON")) : Promise.resolve("delivered");
    }, dead);
    c.start();
    await until(() => offsets.offset === 2, "the commit");
    await c.stop(1_000);
    assert.equal(calls, 2);
    assert.equal(dead.letters[0]!.error, "bad JSON");
    assert.equal(dead.letters[0]!.attempts, 1, "one attempt");
  });

  test("tells each delivery the committed offset, which only grows", async () => {
    const source = new FakeSource();
    source.add("a", 30);
    const offsets = new FakeOffsets();
    offsets.offset = 5;
    const seen: [number, number][] = [];
    const c = consumer(source, offsets, async (m, _signal, committed) => {
      seen.push([m.offset, committed]);
      await sleep(2);
      return "delivered";
    });
    c.start();
    await until(() => offsets.offset === 30, "the commit");
    await c.stop(1_000);
    assert.equal(seen[0]![0], 6, "resumes after the stored offset");
    assert.equal(seen[0]![1], 5);
    for (const [offset, committed] of seen) assert.ok(committed < offset, `${committed} < ${offset}`);
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i]![1] >= seen[i - 1]![1], "never decreases");
    assert.ok(seen.at(-1)![1] > 5, "it grows as commits are made");
  });

  test("never commits past a message still in progress, and what was not committed is delivered again", async () => {
    const source = new FakeSource();
    source.add("slow");
    source.add("fast", 5);
    const offsets = new FakeOffsets();
    let release!: () => void;
    const blocked = new Promise<void>((r) => (release = r));
    const done: number[] = [];
    const c = consumer(source, offsets, async (m) => {
      if (m.key === "slow") await blocked;
      done.push(m.offset);
      return "delivered";
    });
    c.start();
    await until(() => done.length === 5, "the fast messages");
    await sleep(50);
    assert.equal(offsets.offset, 0, "offset 1 is not done, so nothing is committed");
    // Stop without letting the slow one finish: it is abandoned after the grace period.
    await c.stop(20);
    assert.equal(offsets.offset, 0);
    release();

    const again: number[] = [];
    const next = consumer(source, offsets, (m) => {
      again.push(m.offset);
      return Promise.resolve("delivered");
    });
    next.start();
    await until(() => offsets.offset === 6, "the commit after the restart");
    await next.stop(1_000);
    assert.deepEqual(again.sort(), [1, 2, 3, 4, 5, 6], "the uncommitted tail is delivered again");
  });

  test("one consumer per (source, group): another owner waits for the lease", async () => {
    const source = new FakeSource();
    source.add("a", 2);
    const offsets = new FakeOffsets();
    const byFirst: number[] = [];
    const bySecond: number[] = [];
    const first = consumer(source, offsets, (m) => {
      byFirst.push(m.offset);
      return Promise.resolve("delivered");
    }, undefined, "first");
    first.start();
    await until(() => offsets.offset === 2, "the first consumer's commit");
    const second = consumer(source, offsets, (m) => {
      bySecond.push(m.offset);
      return Promise.resolve("delivered");
    }, undefined, "second");
    second.start();
    source.add("a", 2);
    await until(() => offsets.offset === 4, "the first consumer's second commit");
    assert.deepEqual(bySecond, [], "the second consumer does nothing while the first holds the lease");
    assert.equal(second.status().active, false);
    await first.stop(1_000);
    source.add("a");
    await until(() => offsets.offset === 5, "the second consumer taking over");
    await second.stop(1_000);
    assert.deepEqual(byFirst, [1, 2, 3, 4]);
    assert.deepEqual(bySecond, [5]);
  });
});
