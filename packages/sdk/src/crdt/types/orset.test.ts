import assert from "node:assert/strict";
import { test } from "node:test";
import { assertDelta, hosted } from "../../testdata/crdt-host.js";
import { ValueSchema } from "../../testdata/gen/sdktest/counter_pb.js";
import { crdtDelta } from "../../testing/crdt-delta.js";
import { ORSet } from "./orset.js";

function filled(...elements: string[]): ORSet<"string"> {
  const s = new ORSet("string");
  s.applyDelta(crdtDelta.orset("string", { added: elements }));
  return s;
}

test("a new ORSet is empty and has no delta", () => {
  const s = new ORSet("string");
  assert.equal(s.size, 0);
  assert.equal(s.pendingDelta(), undefined);
});

test("adds and removes of elements the proxy has go in added and removed", () => {
  const s = filled("a", "b");
  s.add("c");
  assert.equal(s.delete("a"), true);
  assert.equal(s.delete("zz"), false);
  assert.deepEqual([...s], ["b", "c"]);
  assertDelta(s.pendingDelta(), crdtDelta.orset("string", { removed: ["a"], added: ["c"] }));
  s.resetDelta();
  assert.equal(s.pendingDelta(), undefined);
});

test("an element added and removed within one delta leaves no trace; removed and re-added neither", () => {
  const s = filled("a");
  s.add("x");
  s.delete("x");
  s.delete("a");
  s.add("a");
  assert.deepEqual([...s], ["a"]);
  assert.equal(s.pendingDelta(), undefined);
});

test("clear sends cleared, then only what was added after it", () => {
  const s = filled("a", "b");
  s.add("c");
  s.clear();
  assert.equal(s.size, 0);
  assertDelta(s.pendingDelta(), crdtDelta.orset("string", { cleared: true }));
  s.add("d");
  s.add("e");
  s.delete("e");
  assertDelta(s.pendingDelta(), crdtDelta.orset("string", { cleared: true, added: ["d"] }));
  assertDelta(s.fullState(), crdtDelta.orset("string", { added: ["d"] }));
});

test("clearing an empty set changes nothing", () => {
  const s = new ORSet("string");
  s.clear();
  assert.equal(s.pendingDelta(), undefined);
});

test("deltas from the proxy: clear, then remove, then add", () => {
  const s = filled("a", "b", "c");
  s.applyDelta(crdtDelta.orset("string", { removed: ["b"], added: ["d"] }));
  assert.deepEqual([...s], ["a", "c", "d"]);
  s.applyDelta(crdtDelta.orset("string", { cleared: true, removed: ["zz"], added: ["a"] }));
  assert.deepEqual([...s], ["a"]);
  assert.equal(s.pendingDelta(), undefined);
});

test("a removed element is sent back with the proxy's bytes", () => {
  const s = new ORSet(ValueSchema);
  s.applyDelta(crdtDelta.orset(ValueSchema, { added: [{ value: 1 }] }));
  s.delete({ value: 1 });
  assertDelta(s.pendingDelta(), crdtDelta.orset(ValueSchema, { removed: [{ value: 1 }] }));
});

test("a rollback restores the elements, whatever the mix of adds, removes and clears", () => {
  const s = filled("a", "b");
  const host = hosted(s);
  s.delete("a");
  s.add("c");
  s.clear();
  s.add("d");
  host.rollback();
  assert.deepEqual(new Set(s), new Set(["a", "b"]));
  assert.equal(s.pendingDelta(), undefined);
});
