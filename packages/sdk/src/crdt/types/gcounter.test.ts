import assert from "node:assert/strict";
import { test } from "node:test";
import { ProtocolError } from "../../errors.js";
import { assertDelta, hosted } from "../../testdata/crdt-host.js";
import { crdtDelta } from "../../testing/crdt-delta.js";
import { GCounter } from "./gcounter.js";

test("a new GCounter is 0 and has no delta", () => {
  const c = new GCounter();
  assert.equal(c.value, 0);
  assert.equal(c.pendingDelta(), undefined);
  assert.equal(c.hasDelta, false);
});

test("increments add up in the value and in one delta, which a reset clears", () => {
  const c = new GCounter();
  c.increment().increment(4).increment(5n);
  assert.equal(c.value, 10);
  assertDelta(c.pendingDelta(), crdtDelta.gcounter(10));
  c.resetDelta();
  assert.equal(c.pendingDelta(), undefined);
  c.increment(2);
  assertDelta(c.pendingDelta(), crdtDelta.gcounter(2), "only the change since the reset");
  assertDelta(c.fullState(), crdtDelta.gcounter(12));
});

test("a GCounter refuses to decrease and to take fractions", () => {
  const c = new GCounter();
  assert.throws(() => c.increment(-1), RangeError);
  assert.throws(() => c.increment(1.5), TypeError);
  assert.equal(c.value, 0);
  assert.equal(c.pendingDelta(), undefined);
});

test("deltas from the proxy add to the value without becoming a local delta", () => {
  const c = new GCounter();
  c.applyDelta(crdtDelta.gcounter(7));
  c.applyDelta(crdtDelta.gcounter(2n ** 60n));
  assert.equal(c.bigValue, 2n ** 60n + 7n);
  assert.equal(c.pendingDelta(), undefined);
});

test("a delta of another type is a protocol error", () => {
  assert.throws(() => new GCounter().applyDelta(crdtDelta.pncounter(1)), (e) => e instanceof ProtocolError && /PNCounter delta for a GCounter/.test(e.message));
});

test("a rollback restores the value and drops the delta; changes outside a handler are refused", () => {
  const c = new GCounter();
  const host = hosted(c);
  c.increment(3);
  host.commit();
  c.increment(4);
  host.rollback();
  assert.equal(c.value, 3);
  assert.equal(c.pendingDelta(), undefined);
  host.writable = false;
  assert.throws(() => c.increment(), /read-only/);
  assert.equal(c.value, 3);
});
