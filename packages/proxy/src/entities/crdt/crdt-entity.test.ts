// CRDT entities end to end: a raw-protocol user function (no SDK), an in-process proxy, a gRPC client.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import * as grpc from "@grpc/grpc-js";
import { CrdtWriteConsistency } from "@cloudstate-ts/protocol";
import { resolveConfig, type ProxyConfigInput } from "../../config.js";
import { startProxy, type RunningProxy } from "../../proxy.js";
import { deltaOf, singleNode } from "./crdt.js";
import { decodeState, emptyCrdt, encodeState } from "./crdt-state.js";
import type { Flag } from "./flag.js";
import type { GCounter } from "./gcounter.js";
import {
  CrdtTestClient,
  PERSISTENCE_ID,
  startRawCrdtUserFunction,
  type RawCrdtUserFunction,
  type Response,
} from "./raw-crdt-user-function.js";

function start(ufPort: number, overrides: ProxyConfigInput = {}): Promise<RunningProxy> {
  const config = resolveConfig(
    { host: "127.0.0.1", port: 0, store: "memory", userFunctionHost: "127.0.0.1", userFunctionPort: ufPort, logLevel: "silent", metricsPort: "off", ...overrides },
    {},
  );
  return startProxy(config, { discoveryBackoffMs: { min: 50, max: 200 } });
}

async function rejectsWith(promise: Promise<unknown>, code: grpc.status, message?: RegExp): Promise<void> {
  await assert.rejects(promise, (e: grpc.ServiceError) => {
    assert.equal(e.code, code, `expected ${grpc.status[code]}, got ${grpc.status[e.code]}: ${e.details}`);
    if (message) assert.match(e.details, message);
    return true;
  });
}

async function eventually(check: () => boolean | Promise<boolean>, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for: ${what}`);
    await sleep(10);
  }
}

/** Reads a server stream to its end: the messages, and the error that ended it, if any. */
function collect(stream: grpc.ClientReadableStream<Response>): Promise<{ messages: Response[]; error?: grpc.ServiceError }> {
  const messages: Response[] = [];
  return new Promise((resolve) => {
    stream.on("data", (m: Response) => messages.push(m));
    stream.on("error", (error: grpc.ServiceError) => resolve({ messages, error }));
    stream.on("end", () => resolve({ messages }));
  });
}

async function storedCrdt(proxy: RunningProxy, entityId: string) {
  const stored = await proxy.store.crdts.get(PERSISTENCE_ID, entityId);
  return { version: stored.version, crdt: stored.value && decodeState(stored.value) };
}

const inc = (key: string, amount: number, consistency = CrdtWriteConsistency.LOCAL) => ({ key, op: "inc", amount, consistency });

describe("CRDT entities through the proxy", () => {
  let uf: RawCrdtUserFunction;
  let proxy: RunningProxy;
  let client: CrdtTestClient;
  before(async () => {
    uf = await startRawCrdtUserFunction();
    proxy = await start(uf.port, { commandTimeoutMs: 1500 });
    client = new CrdtTestClient(proxy.port);
  });
  after(async () => {
    client.close();
    await proxy.stop();
    await uf.close();
  });

  test("discovery offers the CRDT entity type", () => {
    assert.ok(uf.discoveries[0]!.supportedEntityTypes.includes("cloudstate.crdt.Crdt"));
  });

  test("a new entity's init has no delta; its first change creates the state", async () => {
    assert.equal((await client.do(inc("fresh", 3))).value, 3n);
    const [stream] = uf.streamsOf("fresh");
    assert.equal(stream!.init, undefined);
    await eventually(async () => ((await storedCrdt(proxy, "fresh")).crdt as GCounter | undefined)?.value() === 3n, "the increment is stored");
  });

  test("a stored entity's init carries its full state", async () => {
    const counter = emptyCrdt("gcounter");
    counter.apply(deltaOf({ case: "gcounter", value: { increment: 42n } }), singleNode("another-node"));
    await proxy.store.crdts.write({ persistenceId: PERSISTENCE_ID, entityId: "stored", expectedVersion: 0, value: encodeState(counter) });
    assert.equal((await client.do({ key: "stored" })).value, 42n);
    assert.deepEqual(uf.streamsOf("stored")[0]!.init, deltaOf({ case: "gcounter", value: { increment: 42n } }));
    assert.equal((await client.do(inc("stored", 1))).value, 43n);
  });

  test("several commands are in flight at once and replies are matched by id in any order", async () => {
    const order: string[] = [];
    const slow = client.do({ key: "order", op: "slow", amount: 300 }).then((r) => (order.push("slow"), r));
    await sleep(50);
    const fast = client.do(inc("order", 1)).then((r) => (order.push("fast"), r));
    await Promise.all([slow, fast]);
    assert.deepEqual(order, ["fast", "slow"]);
    assert.equal(uf.streamsOf("order").length, 1, "both commands went down one stream");
  });

  test("a streamed call relays each message and ends with end_stream", async () => {
    const { messages, error } = await collect(client.watch({ key: "watched", op: "stream", amount: 3 }));
    assert.equal(error, undefined);
    assert.deepEqual(messages.map((m) => m.text), ["", "message 1", "message 2", "message 3"]);
  });

  test("a non-streamed reply to a streamed method completes the call after one message", async () => {
    const { messages, error } = await collect(client.watch({ key: "watched", op: "plain" }));
    assert.equal(error, undefined);
    assert.equal(messages.length, 1);
  });

  test("a cancelled streamed call sends StreamCancelled; the answer's state change and side effects are applied", async () => {
    const stream = client.watch({ key: "cancelled", op: "forever", target: "cancel-log" });
    await new Promise((resolve) => stream.once("data", resolve));
    stream.on("error", () => undefined);
    stream.cancel();
    await eventually(() => uf.streamsOf("cancelled")[0]?.cancellations.length === 1, "the user function receives StreamCancelled");
    await eventually(async () => (await client.do({ key: "cancel-log" })).value === 1n, "the side effect ran");
    await eventually(async () => ((await storedCrdt(proxy, "cancelled")).crdt as GCounter | undefined)?.value() === 1n, "the state change is stored");
  });

  test("side effects of a reply run", async () => {
    await client.do({ key: "with-effect", op: "effect", target: "effect-log" });
    await eventually(async () => (await client.do({ key: "effect-log" })).value === 1n, "the side effect ran");
  });

  test("an invalid delta is reported, not applied, and affects only its entity", async () => {
    const flag = (value: boolean) => deltaOf({ case: "flag", value: { value } });
    await client.do({ key: "flag", op: "update", delta: flag(true), consistency: CrdtWriteConsistency.MAJORITY });
    const bystander = client.do({ key: "bystander", op: "slow", amount: 200 });
    await rejectsWith(client.do({ key: "flag", op: "update", delta: flag(false) }), grpc.status.INTERNAL, /Flag cannot be disabled/);
    await rejectsWith(
      client.do({ key: "flag", op: "update", delta: deltaOf({ case: "pncounter", value: { change: 1n } }) }),
      grpc.status.INTERNAL,
      /a pncounter delta was sent for a flag/,
    );
    assert.ok(uf.reportedErrors.some((e) => /entity flag of crdttest.CrdtTest: invalid CRDT delta \(not applied\): a Flag cannot be disabled/.test(e)));
    assert.ok(uf.reportedErrors.some((e) => /a pncounter delta was sent for a flag/.test(e)));
    assert.equal(((await storedCrdt(proxy, "flag")).crdt as Flag).value(), true);
    // The entity's stream was restarted: the user function sees the proxy's state again.
    await client.do({ key: "flag" });
    assert.deepEqual(uf.streamsOf("flag").at(-1)!.init, flag(true));
    await bystander;
    assert.equal(uf.streamsOf("bystander").length, 1);
  });

  test("a streamed reply to a unary method is a protocol error", async () => {
    await rejectsWith(client.do({ key: "misstreamed", op: "streamed-reply" }), grpc.status.INTERNAL, /not a server-streaming method/);
    assert.ok(uf.reportedErrors.some((e) => /entity misstreamed .*streamed reply/.test(e)));
  });

  test("a reply for a command id not in flight is reported and fails the entity", async () => {
    await rejectsWith(client.do({ key: "wrong-id", op: "wrong-id" }), grpc.status.UNAVAILABLE, /restarted after a protocol error/);
    assert.ok(uf.reportedErrors.some((e) => /replied to command id 1001, which is not in flight/.test(e)));
    assert.equal((await client.do(inc("wrong-id", 2))).value, 2n, "the next command starts a new stream");
    assert.equal(uf.streamsOf("wrong-id").length, 2);
  });

  test("a streamed message for an unknown command id is reported", async () => {
    const { error } = await collect(client.watch({ key: "stray", op: "stray" }));
    assert.equal(error, undefined);
    assert.ok(uf.reportedErrors.some((e) => /streamed message for command id 999999, which has no open stream/.test(e)));
  });

  test("a failure reaches the client and changes nothing", async () => {
    await client.do(inc("failing", 2));
    await rejectsWith(client.do({ key: "failing", op: "fail" }), grpc.status.UNKNOWN, /failed failing on purpose/);
    assert.equal((await client.do({ key: "failing" })).value, 2n);
  });

  test("a failure with restart: the entity gets a new stream whose init has the unchanged state", async () => {
    await client.do(inc("restarting", 2));
    await rejectsWith(client.do({ key: "restarting", op: "fail-restart" }), grpc.status.UNKNOWN, /failed restarting on purpose/);
    assert.equal((await client.do({ key: "restarting" })).value, 2n);
    assert.equal(uf.streamsOf("restarting").length, 2);
    assert.deepEqual(uf.streamsOf("restarting")[1]!.init, deltaOf({ case: "gcounter", value: { increment: 2n } }));
  });

  test("a stream-level failure fails the waiting commands; the next command starts a new stream", async () => {
    await client.do(inc("broken", 1));
    const waiting = rejectsWith(client.do({ key: "broken", op: "slow", amount: 500 }), grpc.status.UNKNOWN, /entity broken broke/);
    await sleep(50);
    await rejectsWith(client.do({ key: "broken", op: "entity-failure" }), grpc.status.UNKNOWN, /entity broken broke/);
    await waiting;
    assert.equal((await client.do({ key: "broken" })).value, 1n);
    assert.equal(uf.streamsOf("broken").length, 2);
  });

  test("a user function that closes the stream: UNAVAILABLE, then a new stream", async () => {
    await client.do(inc("closing", 4));
    await rejectsWith(client.do({ key: "closing", op: "close" }), grpc.status.UNAVAILABLE, /closed the stream of entity closing/);
    assert.equal((await client.do({ key: "closing" })).value, 4n);
    assert.equal(uf.streamsOf("closing").length, 2);
  });

  test("a user function that never answers: UNAVAILABLE, the entity restarts, no state changes", async () => {
    await client.do(inc("hanging", 5, CrdtWriteConsistency.MAJORITY));
    await rejectsWith(client.do({ key: "hanging", op: "hang" }), grpc.status.UNAVAILABLE, /did not answer command Do .* within 1500 ms/);
    assert.equal((await client.do({ key: "hanging" })).value, 5n);
    assert.equal(uf.streamsOf("hanging").length, 2);
    assert.deepEqual(uf.streamsOf("hanging")[1]!.init, deltaOf({ case: "gcounter", value: { increment: 5n } }));
  });

  test("a deleted entity completes its stream and answers NOT_FOUND afterwards", async () => {
    await client.do(inc("doomed", 1));
    await client.do({ key: "doomed", op: "delete" });
    const stored = await proxy.store.crdts.get(PERSISTENCE_ID, "doomed");
    assert.ok(stored.version > 0 && stored.value === undefined, "the delete is stored (a tombstone)");
    await eventually(() => uf.streamsOf("doomed")[0]!.ended, "the entity's stream is completed");
    await rejectsWith(client.do({ key: "doomed" }), grpc.status.NOT_FOUND, /entity doomed of crdttest.CrdtTest was deleted/);
    const { error } = await collect(client.watch({ key: "doomed", op: "stream", amount: 1 }));
    assert.equal(error?.code, grpc.status.NOT_FOUND);
    assert.equal(uf.streamsOf("doomed").length, 1, "no new stream for a deleted entity");
  });

  test("a missing key on a streamed call is INVALID_ARGUMENT", async () => {
    const { error } = await collect(client.watch({ key: "", op: "stream", amount: 1 }));
    assert.equal(error?.code, grpc.status.INVALID_ARGUMENT);
  });
});

describe("CRDT passivation", () => {
  let uf: RawCrdtUserFunction;
  let proxy: RunningProxy;
  let client: CrdtTestClient;
  before(async () => {
    uf = await startRawCrdtUserFunction({ passivationMs: 150 });
    proxy = await start(uf.port);
    client = new CrdtTestClient(proxy.port);
  });
  after(async () => {
    client.close();
    await proxy.stop();
    await uf.close();
  });

  test("an idle entity passivates, but not while a streamed call is open", async () => {
    const stream = client.watch({ key: "open", op: "forever" });
    await new Promise((resolve) => stream.once("data", resolve));
    await client.do(inc("idle", 1));
    await eventually(() => uf.streamsOf("idle")[0]!.ended, "the idle entity passivates");
    assert.equal(uf.streamsOf("open")[0]!.ended, false, "the entity with an open streamed call stays");
    stream.on("error", () => undefined);
    stream.cancel();
    await eventually(() => uf.streamsOf("open")[0]!.ended, "after the cancellation it passivates too");
    assert.equal(uf.streamsOf("open")[0]!.cancellations.length, 1);
  });
});

describe("CRDT durability (SQLite)", () => {
  let dir: string;
  let uf: RawCrdtUserFunction;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "crdt-durability-"));
    uf = await startRawCrdtUserFunction();
  });
  after(async () => {
    await uf.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test("2,000 increments from 64 concurrent callers survive a proxy restart", async (t) => {
    const store = `sqlite:${join(dir, "crdt.db")}`;
    let proxy = await start(uf.port, { store });
    let client = new CrdtTestClient(proxy.port);
    const total = 2000;
    let next = 0;
    await Promise.all(
      Array.from({ length: 64 }, async (_, caller) => {
        while (next < total) {
          next++;
          // Half the callers ask for LOCAL, half for MAJORITY.
          await client.do(inc("hot", 1, caller % 2 === 0 ? CrdtWriteConsistency.LOCAL : CrdtWriteConsistency.MAJORITY));
        }
      }),
    );
    const writes = proxy.store.stats().writes;
    t.diagnostic(`${writes} store writes for ${total} changes`);
    assert.ok(writes < total, `writes are coalesced (${writes} writes for ${total} changes)`);
    client.close();
    await proxy.stop();

    proxy = await start(uf.port, { store });
    client = new CrdtTestClient(proxy.port);
    try {
      assert.equal((await client.do({ key: "hot" })).value, BigInt(total));
      assert.deepEqual(uf.streamsOf("hot").at(-1)!.init, deltaOf({ case: "gcounter", value: { increment: BigInt(total) } }));
    } finally {
      client.close();
      await proxy.stop();
    }
  });
});
