import assert from "node:assert/strict";
import { test } from "node:test";
import { assertDelta, hosted } from "../../testdata/crdt-host.js";
import { ValueSchema } from "../../testdata/gen/sdktest/counter_pb.js";
import { crdtDelta } from "../../testing/crdt-delta.js";
import { GSet } from "./gset.js";

test("a new GSet is empty and has no delta", () => {
  const s = new GSet("string");
  assert.equal(s.size, 0);
  assert.deepEqual([...s], []);
  assert.equal(s.pendingDelta(), undefined);
});

test("added elements are in the set once, and in the delta once", () => {
  const s = new GSet("string");
  s.add("a").add("b").add("a");
  assert.deepEqual([...s], ["a", "b"]);
  assert.equal(s.has("a"), true);
  assert.equal(s.has("c"), false);
  assertDelta(s.pendingDelta(), crdtDelta.gset("string", ["a", "b"]));
  s.resetDelta();
  s.add("b");
  assert.equal(s.pendingDelta(), undefined, "adding an element already in changes nothing");
  s.add("c");
  assertDelta(s.pendingDelta(), crdtDelta.gset("string", ["c"]));
  assertDelta(s.fullState(), crdtDelta.gset("string", ["a", "b", "c"]));
});

test("message elements compare by value", () => {
  const s = new GSet(ValueSchema);
  s.add({ value: 1 }).add({ value: 1 }).add({ value: 2, changes: 1 });
  assert.equal(s.size, 2);
  assert.equal(s.has({ value: 2, changes: 1 }), true);
  assert.deepEqual([...s].map((v) => v.value), [1, 2]);
});

test("deltas from the proxy add elements without a local delta", () => {
  const s = new GSet("int32");
  s.applyDelta(crdtDelta.gset("int32", [1, 2]));
  s.applyDelta(crdtDelta.gset("int32", [2, 3]));
  assert.deepEqual([...s], [1, 2, 3]);
  assert.equal(s.pendingDelta(), undefined);
});

test("a rollback removes what was added", () => {
  const s = new GSet("string");
  const host = hosted(s);
  s.add("a");
  host.commit();
  s.add("b").add("c");
  host.rollback();
  assert.deepEqual([...s], ["a"]);
  assert.equal(s.pendingDelta(), undefined);
});
