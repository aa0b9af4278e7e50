// Invariant 5, "bad input gets a clear error and changes nothing": for each bad request and each way a
// user function can break the protocol, the caller gets the right status, the journal is unchanged,
// and the proxy goes on serving (the same entity too, once restarted).
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, afterEach, describe, test } from "node:test";
import { status } from "@grpc/grpc-js";
import { CartClient, rejectsWith } from "./support/cart-client.js";
import { startTestProxy } from "./support/proxy.js";
import { pollUntil, spawnProxyProcess, startRawUserFunctionProcess, stopAll, tempDir } from "./support/processes.js";
import { startRawCartUserFunction, type Misbehaviour, type RawUserFunction } from "./fixtures/raw-cart-user-function.js";
import { startBadSpecUserFunction, type SpecProblem } from "./fixtures/bad-spec-user-function.js";
import type { ProxyConfigInput, RunningProxy } from "../packages/proxy/src/index.js";

const PID = "shopping-cart";
const ADD = "/com.example.shoppingcart.ShoppingCart/AddItem";

type Items = [productId: string, quantity: number][];
const items = (cart: { items: { productId: string; quantity: number }[] }): Items => cart.items.map((i) => [i.productId, i.quantity]);

/** Everything in the journal: entity id → [sequence, type URL, payload hex]. */
async function journalOf(proxy: RunningProxy): Promise<Record<string, [number, string, string][]>> {
  const out: Record<string, [number, string, string][]> = {};
  for (const id of await proxy.store.journal.entityIds(PID)) {
    out[id] = (await proxy.store.journal.events(PID, id)).map((e) => [e.sequence, e.typeUrl, Buffer.from(e.bytes).toString("hex")]);
  }
  return out;
}

interface Setup {
  uf: RawUserFunction;
  proxy: RunningProxy;
  client: CartClient;
}

const running: (() => Promise<void>)[] = [];

/** An in-process user function and proxy (memory store) for one test, stopped by afterEach. */
async function setup(misbehave: Misbehaviour = "none", overrides: ProxyConfigInput = {}): Promise<Setup> {
  const uf = await startRawCartUserFunction({ misbehave });
  running.push(() => uf.close());
  const proxy = await startTestProxy(uf.port, { shutdownGraceMs: 1_000, ...overrides });
  running.push(() => proxy.stop());
  const client = new CartClient(proxy.port);
  running.push(async () => client.close());
  return { uf, proxy, client };
}

afterEach(async () => {
  // Newest first: the client, then the proxy, then the user function.
  for (const stop of running.splice(0).reverse()) await stop();
});
after(() => stopAll());

describe("bad requests", () => {
  test("an unknown method or service is UNIMPLEMENTED and changes nothing", async () => {
    const { proxy, client } = await setup();
    await client.addItem({ userId: "b1", productId: "apple", name: "Apple", quantity: 1 });
    const before = await journalOf(proxy);
    await rejectsWith(client.callBytes("/com.example.shoppingcart.ShoppingCart/Checkout", Buffer.from([0x0a, 0x02, 0x62, 0x31])), status.UNIMPLEMENTED);
    await rejectsWith(client.callBytes("/no.Such/Service", Buffer.alloc(0)), status.UNIMPLEMENTED);
    assert.deepEqual(await journalOf(proxy), before);
    assert.deepEqual(items(await client.getCart("b1")), [["apple", 1]]);
  });

  test("an undecodable payload is INVALID_ARGUMENT and changes nothing", async () => {
    const { proxy, client } = await setup();
    await client.addItem({ userId: "b1", productId: "apple", name: "Apple", quantity: 1 });
    const before = await journalOf(proxy);
    const bad: [string, number[]][] = [
      ["length past the end", [0x0a, 0x10, 0x62, 0x31]],
      ["truncated varint", [0x0a, 0x02, 0x62, 0x31, 0x20, 0xff]],
      ["tag without a field number", [0x02]],
      ["unsupported wire type", [0x0a, 0x02, 0x62, 0x31, 0x17]],
      ["key that is not UTF-8", [0x0a, 0x02, 0xff, 0xfe]],
    ];
    for (const [why, bytes] of bad) {
      await assert.doesNotReject(
        rejectsWith(client.callBytes(ADD, Buffer.from(bytes), 3_000), status.INVALID_ARGUMENT),
        `${why}: expected INVALID_ARGUMENT`,
      );
    }
    assert.deepEqual(await journalOf(proxy), before);
    assert.deepEqual(items(await client.getCart("b1")), [["apple", 1]]);
  });

  test("an entity key field sent with the wrong wire type is INVALID_ARGUMENT, not passed to the user function", async () => {
    const { uf, proxy, client } = await setup();
    // user_id (field 1, a string) as a varint: no protobuf parser accepts this message.
    const commands = uf.commands();
    await rejectsWith(client.callBytes(ADD, Buffer.from([0x08, 0x01]), 3_000), status.INVALID_ARGUMENT, /user_id/);
    await rejectsWith(client.callBytes(ADD, Buffer.from([0x0d, 0x01, 0x02, 0x03, 0x04]), 3_000), status.INVALID_ARGUMENT, /user_id/);
    assert.equal(uf.commands(), commands, "the user function must not see the malformed command");
    assert.deepEqual(await journalOf(proxy), {});
  });

  test("a missing entity key is INVALID_ARGUMENT naming the key field, and changes nothing", async () => {
    const { proxy, client } = await setup();
    await rejectsWith(client.addItem({ userId: "", productId: "x", name: "X", quantity: 1 }), status.INVALID_ARGUMENT, /user_id/);
    await rejectsWith(client.callBytes(ADD, Buffer.alloc(0)), status.INVALID_ARGUMENT, /user_id/);
    await rejectsWith(client.getCart(""), status.INVALID_ARGUMENT, /user_id/);
    assert.deepEqual(await journalOf(proxy), {});
  });

  test("a message over maxMessageBytes is RESOURCE_EXHAUSTED, changes nothing, and the proxy goes on serving", async () => {
    const { proxy, client } = await setup("none", { maxMessageBytes: 64 * 1024 });
    await client.addItem({ userId: "big", productId: "apple", name: "Apple", quantity: 1 });
    const before = await journalOf(proxy);
    await rejectsWith(client.addItem({ userId: "big", productId: "huge", name: "x".repeat(100_000), quantity: 1 }), status.RESOURCE_EXHAUSTED);
    assert.deepEqual(await journalOf(proxy), before);
    await client.addItem({ userId: "big", productId: "pear", name: "Pear", quantity: 2 });
    assert.deepEqual(items(await client.getCart("big")), [
      ["apple", 1],
      ["pear", 2],
    ]);
  });

  test("maxMessageBytes limits client messages only: not the discovery answer, not the protocol envelope around a message that fits", async () => {
    // The cart's descriptor set is ~16 KB: over the limit, but it is no client's request or reply.
    const { proxy, client } = await setup("none", { maxMessageBytes: 4 * 1024 });
    await rejectsWith(client.addItem({ userId: "small", productId: "huge", name: "x".repeat(8 * 1024), quantity: 1 }), status.RESOURCE_EXHAUSTED);
    assert.deepEqual(await journalOf(proxy), {});
    // A request and a reply just under the limit pass, although the Command and the reply carrying
    // them to and from the user function are a little larger.
    const name = "n".repeat(4 * 1024 - 40);
    await client.addItem({ userId: "small", productId: "near", name, quantity: 1 });
    assert.deepEqual(items(await client.getCart("small")), [["near", 1]]);
  });
});

describe("a user function that is down, hangs or breaks the protocol", () => {
  test("unreachable user function: UNAVAILABLE naming its address, nothing written", { timeout: 30_000 }, async () => {
    const uf = await startRawUserFunctionProcess();
    const proxy = await startTestProxy(uf.port, { shutdownGraceMs: 1_000 });
    running.push(() => proxy.stop());
    const client = new CartClient(proxy.port);
    running.push(async () => client.close());
    await client.addItem({ userId: "d1", productId: "apple", name: "Apple", quantity: 1 });
    const before = await journalOf(proxy);
    uf.kill("SIGKILL");
    await uf.exited;
    const address = new RegExp(`127\\.0\\.0\\.1:${uf.port}`);
    // An entity whose stream was open, and one never seen.
    await rejectsWith(client.addItem({ userId: "d1", productId: "pear", name: "Pear", quantity: 1 }), status.UNAVAILABLE, address);
    await rejectsWith(client.addItem({ userId: "d2", productId: "pear", name: "Pear", quantity: 1 }), status.UNAVAILABLE, address);
    await rejectsWith(client.getCart("d1"), status.UNAVAILABLE, address);
    assert.deepEqual(await journalOf(proxy), before);
  });

  test("a hanging user function: the caller's deadline gives DEADLINE_EXCEEDED; after commandTimeoutMs the entity restarts and works", { timeout: 20_000 }, async () => {
    const { uf, proxy, client } = await setup("hang-on-remove", { commandTimeoutMs: 800 });
    await client.addItem({ userId: "h1", productId: "apple", name: "Apple", quantity: 1 });
    const before = await journalOf(proxy);
    const inits = uf.inits();
    const hanging = rejectsWith(client.removeItem({ userId: "h1", productId: "apple" }, 300), status.DEADLINE_EXCEEDED);
    // Queued behind the hanging command; its caller gives up before it runs, so it must never run.
    const queued = rejectsWith(client.addItem({ userId: "h1", productId: "late", name: "Late", quantity: 1 }, 200), status.DEADLINE_EXCEEDED);
    // Other entities are served meanwhile.
    await client.addItem({ userId: "h2", productId: "fig", name: "Fig", quantity: 1 });
    await hanging;
    await queued;
    // Waits for the command timeout, then runs on a fresh stream.
    assert.deepEqual(items(await client.getCart("h1", 10_000)), [["apple", 1]]);
    assert.equal(uf.inits(), inits + 2, "h1 restarted (and h2 started)");
    assert.deepEqual((await journalOf(proxy)).h1, before.h1);
    await client.addItem({ userId: "h1", productId: "pear", name: "Pear", quantity: 1 });
    assert.deepEqual(items(await client.getCart("h1")), [
      ["apple", 1],
      ["pear", 1],
    ]);
  });

  test("a reply with the wrong payload type: INTERNAL, reported to the user function, nothing persisted", async () => {
    const { uf, proxy, client } = await setup("wrong-reply-type");
    const before = await journalOf(proxy);
    await rejectsWith(client.addItem({ userId: "w1", productId: "apple", name: "Apple", quantity: 1 }), status.INTERNAL, /com\.example\.shoppingcart\.Cart.*google\.protobuf\.Empty/);
    await pollUntil(() => uf.reportedErrors.length > 0, () => "an error reported to the user function");
    assert.match(uf.reportedErrors[0]!, /AddItem.*com\.example\.shoppingcart\.Cart.*google\.protobuf\.Empty/);
    // The client was told the command failed: its event must not be in the journal.
    assert.deepEqual(await journalOf(proxy), before);
    uf.setMisbehaviour("none");
    await client.addItem({ userId: "w1", productId: "pear", name: "Pear", quantity: 1 });
    assert.deepEqual(items(await client.getCart("w1")), [["pear", 1]]);
  });

  test("a reply to the wrong command id: an error, reported, nothing persisted; the entity restarts and the next call works", async () => {
    const { uf, proxy, client } = await setup("wrong-command-id");
    await rejectsWith(client.addItem({ userId: "i1", productId: "apple", name: "Apple", quantity: 1 }), status.INTERNAL, /command id 101.*in flight is 1/);
    await pollUntil(() => uf.reportedErrors.length > 0, () => "an error reported to the user function");
    assert.match(uf.reportedErrors[0]!, /entity i1.*command id 101/);
    assert.deepEqual(await journalOf(proxy), {});
    const inits = uf.inits();
    uf.setMisbehaviour("none");
    await client.addItem({ userId: "i1", productId: "pear", name: "Pear", quantity: 1 });
    assert.equal(uf.inits(), inits + 1, "a new stream (init) for the entity");
    assert.deepEqual(items(await client.getCart("i1")), [["pear", 1]]);
  });

  test("the user function closes the stream: UNAVAILABLE, nothing persisted, the next call works", async () => {
    const { uf, proxy, client } = await setup("close-on-remove");
    await client.addItem({ userId: "c1", productId: "apple", name: "Apple", quantity: 1 });
    const before = await journalOf(proxy);
    const inits = uf.inits();
    await rejectsWith(client.removeItem({ userId: "c1", productId: "apple" }), status.UNAVAILABLE, /closed the stream/);
    assert.deepEqual(await journalOf(proxy), before);
    assert.deepEqual(items(await client.getCart("c1")), [["apple", 1]]);
    assert.equal(uf.inits(), inits + 1);
  });

  test("a failure with restart=true: the client gets its text, its events are not persisted, the entity is replayed", async () => {
    const { uf, proxy, client } = await setup("restart-on-remove");
    await client.addItem({ userId: "f1", productId: "apple", name: "Apple", quantity: 2 });
    await client.addItem({ userId: "f1", productId: "pear", name: "Pear", quantity: 1 });
    const before = await journalOf(proxy);
    const inits = uf.inits();
    await rejectsWith(client.removeItem({ userId: "f1", productId: "apple" }), status.UNKNOWN, /^boom$/);
    assert.deepEqual(await journalOf(proxy), before);
    assert.deepEqual(items(await client.getCart("f1")), [
      ["apple", 2],
      ["pear", 1],
    ]);
    assert.equal(uf.inits(), inits + 1, "the entity was restarted: a new init");
    const last = uf.recoveries[uf.recoveries.length - 1]!;
    assert.deepEqual(last, { entityId: "f1", snapshotSequence: undefined, events: 2 });
    uf.setMisbehaviour("none");
    await client.removeItem({ userId: "f1", productId: "apple" });
    assert.deepEqual(items(await client.getCart("f1")), [["pear", 1]]);
    assert.deepEqual(uf.reportedErrors, []);
  });
});

describe("discovery errors", () => {
  const cases: [SpecProblem, RegExp][] = [
    ["no-entity-key", /bad\.Keyless\.Do: its input bad\.Req has no entity key field.*cloudstate\.entity_key/],
    ["unknown-entity-type", /bad\.Keyless has unknown entity type "cloudstate\.nosuch\.Thing"/],
  ];
  for (const [problem, expected] of cases) {
    test(`${problem}: startProxy rejects with one line naming the problem, and reports it to the user function`, async () => {
      const uf = await startBadSpecUserFunction({ problem });
      running.push(() => uf.close());
      let message = "";
      await assert.rejects(
        startTestProxy(uf.port),
        (e: Error) => {
          message = e.message;
          return true;
        },
      );
      assert.match(message, expected);
      assert.doesNotMatch(message, /\n/, "one line");
      assert.deepEqual(uf.reportedErrors, [message]);
    });
  }

  test("`cloudstate proxy` exits non-zero with that one line on stderr", { timeout: 30_000 }, async () => {
    const uf = await startBadSpecUserFunction({ problem: "no-entity-key" });
    running.push(() => uf.close());
    const proxy = spawnProxyProcess({ ufPort: uf.port, storePath: join(tempDir(), "db.sqlite"), extraArgs: ["--log-level", "info"] });
    const code = await proxy.exited;
    assert.notEqual(code, 0);
    assert.notEqual(code, null);
    const lines = proxy.stderr().trim().split("\n");
    assert.equal(lines.length, 1, `stderr:\n${proxy.stderr()}`);
    assert.match(lines[0]!, /^cloudstate: bad\.Keyless\.Do: its input bad\.Req has no entity key field.*cloudstate\.entity_key/);
    assert.deepEqual(uf.reportedErrors, [lines[0]!.slice("cloudstate: ".length)]);
  });
});
