import assert from "node:assert/strict";
import { test } from "node:test";
import { assertDelta, hosted } from "../../testdata/crdt-host.js";
import { crdtDelta } from "../../testing/crdt-delta.js";
import { PNCounter } from "./pncounter.js";

test("a new PNCounter is 0 and has no delta", () => {
  const c = new PNCounter();
  assert.equal(c.value, 0);
  assert.equal(c.pendingDelta(), undefined);
});

test("increments and decrements net out in the delta", () => {
  const c = new PNCounter();
  c.increment(5).decrement(7).decrement();
  assert.equal(c.value, -3);
  assertDelta(c.pendingDelta(), crdtDelta.pncounter(-3));
  c.resetDelta();
  c.increment(2).decrement(2);
  assert.equal(c.pendingDelta(), undefined, "a change that cancels out sends nothing");
  c.increment(-4);
  assertDelta(c.pendingDelta(), crdtDelta.pncounter(-4));
  assertDelta(c.fullState(), crdtDelta.pncounter(-7));
});

test("deltas from the proxy change the value, not the pending delta", () => {
  const c = new PNCounter();
  c.increment(1);
  c.resetDelta();
  c.applyDelta(crdtDelta.pncounter(-10));
  assert.equal(c.value, -9);
  assert.equal(c.pendingDelta(), undefined);
});

test("a rollback restores the value", () => {
  const c = new PNCounter();
  const host = hosted(c);
  c.decrement(2);
  host.commit();
  c.increment(10).decrement(3);
  host.rollback();
  assert.equal(c.value, -2);
  assert.equal(c.pendingDelta(), undefined);
});
