import assert from "node:assert/strict";
import { test } from "node:test";
import { CrdtClock } from "@cloudstate-ts/protocol";
import { ProtocolError } from "../../errors.js";
import { assertDelta, hosted } from "../../testdata/crdt-host.js";
import { crdtDelta } from "../../testing/crdt-delta.js";
import { Crdt } from "./crdt.js";
import { GCounter } from "./gcounter.js";
import { LWWRegister } from "./lww-register.js";
import { ORMap } from "./ormap.js";
import { ORSet } from "./orset.js";
import { Vote } from "./vote.js";

const counters = () => new ORMap("string", () => new GCounter());

function filled(entries: Record<string, number>): ORMap<"string", GCounter> {
  const m = counters();
  m.applyDelta(crdtDelta.ormap("string", { added: Object.entries(entries).map(([k, n]) => [k, crdtDelta.gcounter(n)] as const) }));
  return m;
}

function values(m: ORMap<"string", GCounter>): Record<string, number> {
  return Object.fromEntries([...m].map(([k, v]) => [k, v.value]));
}

test("a new ORMap is empty and has no delta", () => {
  const m = counters();
  assert.equal(m.size, 0);
  assert.equal(m.get("a"), undefined);
  assert.equal(m.pendingDelta(), undefined);
});

test("getOrCreate adds a value made by the factory, sent whole in added", () => {
  const m = counters();
  m.getOrCreate("a").increment(2);
  m.getOrCreate("a").increment(3);
  assert.equal(m.get("a")?.value, 5);
  assertDelta(m.pendingDelta(), crdtDelta.ormap("string", { added: [["a", crdtDelta.gcounter(5)]] }));
  m.resetDelta();
  assert.equal(m.pendingDelta(), undefined);
  assert.equal(m.get("a")!.pendingDelta(), undefined, "the values' deltas are reset too");
});

test("a change to a value the proxy has is sent in updated, as the value's own delta", () => {
  const m = filled({ a: 1, b: 2 });
  m.get("b")!.increment(10);
  assertDelta(m.pendingDelta(), crdtDelta.ormap("string", { updated: [["b", crdtDelta.gcounter(10)]] }));
  assert.deepEqual(values(m), { a: 1, b: 12 });
});

test("set over an existing key is a remove and an add; delete of a new key leaves nothing", () => {
  const m = filled({ a: 1 });
  m.set("a", new GCounter().increment(7));
  assertDelta(m.pendingDelta(), crdtDelta.ormap("string", { removed: ["a"], added: [["a", crdtDelta.gcounter(7)]] }));
  m.resetDelta();
  m.getOrCreate("x");
  m.delete("x");
  assert.equal(m.pendingDelta(), undefined);
  assert.equal(m.delete("nothing"), false);
});

test("delete and clear", () => {
  const m = filled({ a: 1, b: 2, c: 3 });
  m.get("c")!.increment();
  assert.equal(m.delete("a"), true);
  m.delete("c");
  assertDelta(m.pendingDelta(), crdtDelta.ormap("string", { removed: ["a", "c"] }), "a removed value's update is not sent");
  m.clear();
  m.getOrCreate("d").increment();
  assertDelta(m.pendingDelta(), crdtDelta.ormap("string", { cleared: true, added: [["d", crdtDelta.gcounter(1)]] }));
  assert.deepEqual(values(m), { d: 1 });
  assertDelta(m.fullState(), crdtDelta.ormap("string", { added: [["d", crdtDelta.gcounter(1)]] }));
});

test("deltas from the proxy: clear, remove, update, add — new values made by the factory", () => {
  const m = filled({ a: 1, b: 2 });
  m.applyDelta(
    crdtDelta.ormap("string", {
      removed: ["a"],
      updated: [["b", crdtDelta.gcounter(5)]],
      added: [["c", crdtDelta.gcounter(3)]],
    }),
  );
  assert.deepEqual(values(m), { b: 7, c: 3 });
  assert.equal(m.pendingDelta(), undefined);
  m.applyDelta(crdtDelta.ormap("string", { cleared: true, added: [["z", crdtDelta.gcounter(1)]] }));
  assert.deepEqual(values(m), { z: 1 });
});

test("a proxy's update of a missing key, or a value of another type than the factory's, is a protocol error", () => {
  const m = filled({ a: 1 });
  assert.throws(() => m.applyDelta(crdtDelta.ormap("string", { updated: [["b", crdtDelta.gcounter(1)]] })), ProtocolError);
  assert.throws(
    () => m.applyDelta(crdtDelta.ormap("string", { added: [["b", crdtDelta.flag()]] })),
    (e) => e instanceof ProtocolError && /Flag for ORMap key "b", where create\(\) makes a GCounter/.test(e.message),
  );
});

test("values of several types, chosen by key; nested maps send nested deltas", () => {
  const m = new ORMap("string", (key): Crdt => (key.startsWith("vote") ? new Vote() : new ORMap("string", () => new ORSet("string"))));
  m.applyDelta(crdtDelta.ormap("string", { added: [["inner", crdtDelta.ormap("string", { added: [["s", crdtDelta.orset("string", { added: ["x"] })]] })]] }));
  const inner = m.get("inner") as ORMap<"string", ORSet<"string">>;
  inner.get("s")!.add("y");
  (m.getOrCreate("vote-1") as Vote).vote(true);
  assertDelta(
    m.pendingDelta(),
    crdtDelta.ormap("string", {
      updated: [["inner", crdtDelta.ormap("string", { updated: [["s", crdtDelta.orset("string", { added: ["y"] })]] })]],
      added: [["vote-1", crdtDelta.vote({ selfVote: true, votesFor: 1, totalVoters: 1 })]],
    }),
  );
});

test("a register value sends its clock in added", () => {
  const m = new ORMap("int32", () => new LWWRegister("string", ""));
  m.getOrCreate(1).set("one", CrdtClock.CUSTOM, 9);
  assertDelta(m.pendingDelta(), crdtDelta.ormap("int32", { added: [[1, crdtDelta.lwwregister("string", "one", CrdtClock.CUSTOM, 9)]] }));
});

test("a CRDT can be the value of one map at one key only", () => {
  const a = counters();
  const b = counters();
  const c = new GCounter();
  a.set("x", c);
  assert.throws(() => b.set("x", c), /already a value/);
  assert.throws(() => a.set("y", c), /already a value/);
  a.set("x", c); // the same value at the same key: nothing to do
  a.delete("x");
  b.set("x", c); // removed from a: free again
  const self = new ORMap("string", (): Crdt => new GCounter());
  assert.throws(() => self.set("me", self), /cannot hold itself/);
});

test("a rollback restores entries and values; a value changed, removed and restored has no stale delta", () => {
  const m = filled({ a: 1, b: 2 });
  const host = hosted(m);
  m.get("a")!.increment(5);
  m.delete("a");
  m.set("b", new GCounter());
  m.getOrCreate("c").increment();
  m.clear();
  host.rollback();
  assert.deepEqual(values(m), { a: 1, b: 2 });
  assert.equal(m.pendingDelta(), undefined);
  assert.equal(m.get("a")!.pendingDelta(), undefined);
  m.get("a")!.increment();
  assertDelta(m.pendingDelta(), crdtDelta.ormap("string", { updated: [["a", crdtDelta.gcounter(1)]] }), "the restored value is tracked");
});

test("changes to a value are refused outside a handler, like changes to the map", () => {
  const m = filled({ a: 1 });
  const host = hosted(m);
  host.writable = false;
  assert.throws(() => m.get("a")!.increment(), /read-only/);
  assert.throws(() => m.getOrCreate("new"), /read-only/);
  assert.equal(m.get("a")!.value, 1);
  assert.equal(m.has("new"), false);
});
