// The counters and the poll end to end: the user function served in-process, an in-process proxy on
// a SQLite file in a temporary directory, and plain grpc-js clients calling the proxy as any gRPC
// client would. The bar: 10,000 increments from 64 concurrent callers count exactly 10,000, and
// still do after the proxy is stopped and a new one started on the same database.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { serve, type UserFunctionServer } from "@cloudstate-ts/sdk";
import type { RunningProxy } from "../../../packages/proxy/src/index.js";
import { eventually, GrpcClient } from "../../../tests/support/grpc-client.js";
import { startTestProxy } from "../../../tests/support/proxy.js";
import { counter, poll, upDownCounter } from "./counters.js";
import { Counter, Poll, UpDownCounter } from "./gen/com/example/counter/counter_pb.js";

const quiet = { info() {}, warn() {}, error() {} };
const INCREMENTS = 10_000;
const CALLERS = 64;

describe("the counters through the proxy, on SQLite", () => {
  const dir = mkdtempSync(join(tmpdir(), "cloudstate-counter-"));
  // Relaxed durability (WAL, synchronous=NORMAL: a commit survives the process, not the OS): the proxy
  // stops gracefully here, and with the user function, the proxy and 64 clients on one thread, an
  // fsync per write (about 2 writes per 3 increments) would make this test take ~20 s.
  const settings = { store: `sqlite:${join(dir, "counters.db")}`, durability: "relaxed" } as const;
  let server: UserFunctionServer;
  let proxy: RunningProxy | undefined;
  const clients: GrpcClient[] = [];
  const client = () => {
    const c = new GrpcClient(proxy!.port);
    clients.push(c);
    return c;
  };

  /** Stops the proxy (gracefully: it flushes what is not written yet) and starts a new one on the same database. */
  async function restartProxy(): Promise<void> {
    for (const c of clients.splice(0)) c.close();
    await proxy!.stop();
    proxy = undefined;
    proxy = await startTestProxy(server.port, settings);
  }

  before(async () => {
    server = await serve({ entities: [counter, upDownCounter, poll], port: 0, host: "127.0.0.1", logger: quiet });
    proxy = await startTestProxy(server.port, settings);
  });

  after(async () => {
    for (const c of clients) c.close();
    await proxy?.stop();
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test(`a GCounter incremented ${INCREMENTS} times by ${CALLERS} concurrent callers reads ${INCREMENTS}, also after a restart`, async () => {
    const callers = Array.from({ length: CALLERS }, () => client());
    let next = 0;
    let maxSeen = 0n;
    await Promise.all(
      callers.map(async (c) => {
        while (next < INCREMENTS) {
          next++;
          // by 0 means by 1: half the callers say so, the other half say 1.
          const { value } = await c.unary(Counter.method.increment, { counterId: "hits", by: next % 2 === 0 ? 0n : 1n });
          if (value > maxSeen) maxSeen = value;
        }
      }),
    );
    assert.equal(next, INCREMENTS);
    assert.equal(maxSeen, BigInt(INCREMENTS), "the last increment saw every other");
    assert.equal((await client().unary(Counter.method.getValue, { counterId: "hits" })).value, BigInt(INCREMENTS));

    await restartProxy();
    assert.equal((await client().unary(Counter.method.getValue, { counterId: "hits" })).value, BigInt(INCREMENTS), "after a restart");
    assert.equal((await client().unary(Counter.method.increment, { counterId: "hits", by: 5n })).value, BigInt(INCREMENTS + 5));
  });

  test("Watch over HTTP/JSON is a server-sent event stream of the values", async () => {
    const aborter = new AbortController();
    const res = await fetch(`http://127.0.0.1:${proxy!.port}/com.example.counter.Counter/Watch`, {
      method: "POST",
      headers: { accept: "text/event-stream" },
      body: JSON.stringify({ counterId: "sse" }),
      signal: aborter.signal,
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /text\/event-stream/);
    const reader = res.body!.getReader();
    let text = "";
    const readUntil = async (events: number) => {
      while ((text.match(/^data: /gm) ?? []).length < events) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`the stream ended after ${JSON.stringify(text)}`);
        text += Buffer.from(value).toString("utf8");
      }
    };
    await readUntil(1);
    await client().unary(Counter.method.increment, { counterId: "sse", by: 3n });
    await readUntil(2);
    // Proto3 JSON leaves default values out: a zero counter is `{}`.
    assert.deepEqual(text.match(/^data: .*$/gm), ['data: {}', 'data: {"value":"3"}']);
    aborter.abort();
  });

  test("Watch receives the value at once and after every change, until it is cancelled", async () => {
    const c = client();
    const watch = c.stream(Counter.method.watch, { counterId: "watched" });
    const values = () => watch.received.map((v) => v.value);
    await eventually(() => values().length === 1, () => "the first value");
    assert.deepEqual(values(), [0n]);
    await c.unary(Counter.method.increment, { counterId: "watched", by: 2n });
    await eventually(() => values().length === 2, () => `the value after one change, got ${values()}`);
    await c.unary(Counter.method.increment, { counterId: "watched" });
    await c.unary(Counter.method.getValue, { counterId: "watched" }); // no change: nothing pushed
    await c.unary(Counter.method.increment, { counterId: "watched", by: 4n });
    await eventually(() => values().length === 4, () => `the value after three changes, got ${values()}`);
    assert.deepEqual(values(), [0n, 2n, 3n, 7n]);
    assert.equal(watch.ended, undefined, "the watch stays open");

    // Two watchers of one counter both hear a change.
    const other = client().stream(Counter.method.watch, { counterId: "watched" });
    await eventually(() => other.received.length === 1, () => "the second watcher's first value");
    await c.unary(Counter.method.increment, { counterId: "watched" });
    await eventually(() => values().length === 5 && other.received.length === 2, () => "both watchers hearing the change");
    assert.deepEqual([values().at(-1), other.received.at(-1)?.value], [8n, 8n]);

    watch.cancel();
    other.cancel();
    await eventually(() => watch.ended !== undefined && other.ended !== undefined, () => "the cancelled watches to end");
    await c.unary(Counter.method.increment, { counterId: "watched" });
    assert.equal((await c.unary(Counter.method.getValue, { counterId: "watched" })).value, 9n, "the counter goes on without watchers");
    assert.equal(values().length, 5, "a cancelled watch hears no more");
  });

  test("a PNCounter goes up and down, its Watch follows, and it survives a restart", async () => {
    const c = client();
    const watch = c.stream(UpDownCounter.method.watch, { counterId: "level" });
    await eventually(() => watch.received.length === 1, () => "the first value");
    assert.equal((await c.unary(UpDownCounter.method.change, { counterId: "level", by: 10n })).value, 10n);
    assert.equal((await c.unary(UpDownCounter.method.change, { counterId: "level", by: -25n })).value, -15n);
    await Promise.all(Array.from({ length: 40 }, (_, i) => c.unary(UpDownCounter.method.change, { counterId: "level", by: i % 2 === 0 ? 3n : -1n })));
    const expected = -15n + 20n * 3n - 20n;
    assert.equal((await c.unary(UpDownCounter.method.getValue, { counterId: "level" })).value, expected);
    await eventually(() => watch.received.at(-1)?.value === expected, () => `the watch to reach ${expected}, got ${watch.received.at(-1)?.value}`);
    assert.deepEqual(watch.received.slice(0, 3).map((v) => v.value), [0n, 10n, -15n]);
    watch.cancel();
    // Let the proxy see the cancellation before stopping it: a call after it on the same connection
    // and entity is answered after it. (An open streamed call holds up a proxy stop for the whole
    // shutdown grace period: see "stopping the proxy with a Watch open" below.)
    await c.unary(UpDownCounter.method.getValue, { counterId: "level" });

    await restartProxy();
    assert.equal((await client().unary(UpDownCounter.method.getValue, { counterId: "level" })).value, expected, "after a restart");
  });

  test("a poll: this node's vote and the tally", async () => {
    const c = client();
    const none = await c.unary(Poll.method.getVotes, { pollId: "lunch" });
    assert.deepEqual([none.selfVote, none.votesFor, none.totalVoters, none.atLeastOne], [false, 0, 1, false]);
    const yes = await c.unary(Poll.method.vote, { pollId: "lunch", yes: true });
    assert.deepEqual([yes.selfVote, yes.votesFor, yes.totalVoters, yes.atLeastOne, yes.majority, yes.all], [true, 1, 1, true, true, true]);
    assert.deepEqual(await c.unary(Poll.method.getVotes, { pollId: "lunch" }), yes);
    const no = await c.unary(Poll.method.vote, { pollId: "lunch", yes: false });
    assert.deepEqual([no.selfVote, no.votesFor, no.totalVoters, no.atLeastOne, no.majority, no.all], [false, 0, 1, false, false, false]);
    await c.unary(Poll.method.vote, { pollId: "lunch", yes: true });

    // A new proxy is a new node (new node id): the old node's vote stays in the state, but only live
    // nodes count, and on one node that is this one, which has not voted yet.
    await restartProxy();
    const after = await client().unary(Poll.method.getVotes, { pollId: "lunch" });
    assert.deepEqual([after.selfVote, after.votesFor, after.totalVoters], [false, 0, 1]);
  });
});

describe("stopping the proxy with a Watch open", () => {
  let server: UserFunctionServer;

  before(async () => {
    server = await serve({ entities: [counter], port: 0, host: "127.0.0.1", logger: quiet });
  });

  after(async () => {
    await server?.close();
  });

  // An open server stream must not hold a graceful stop for the whole grace period.
  test("ends the Watch with UNAVAILABLE and stops at once", async () => {
    const proxy = await startTestProxy(server.port, { store: "memory", shutdownGraceMs: 2_000 });
    const c = new GrpcClient(proxy.port);
    try {
      const watch = c.stream(Counter.method.watch, { counterId: "open" });
      await eventually(() => watch.received.length === 1, () => "the first value");
      const started = Date.now();
      await proxy.stop();
      const took = Date.now() - started;
      await eventually(() => watch.ended !== undefined, () => "the watch to end");
      assert.equal(watch.ended!.status, 14, "UNAVAILABLE: retry on another node");
      assert.ok(took < 1_000, `the stop took ${took} ms`);
    } finally {
      c.close();
    }
  });
});
