import assert from "node:assert/strict";
import { test } from "node:test";
import { CrdtClock } from "@cloudstate-ts/protocol";
import { ProtocolError } from "../../errors.js";
import { assertDelta, hosted } from "../../testdata/crdt-host.js";
import { ValueSchema } from "../../testdata/gen/sdktest/counter_pb.js";
import { crdtDelta } from "../../testing/crdt-delta.js";
import { LWWRegister } from "./lww-register.js";

test("a new register holds its initial value and has no delta", () => {
  const r = new LWWRegister("string", "first");
  assert.equal(r.value, "first");
  assert.equal(r.pendingDelta(), undefined);
});

test("set sends the value with the default clock", () => {
  const r = new LWWRegister("string", "");
  r.set("a");
  r.set("b");
  assert.equal(r.value, "b");
  assertDelta(r.pendingDelta(), crdtDelta.lwwregister("string", "b"), "the last write");
  r.resetDelta();
  r.set("b");
  assert.equal(r.pendingDelta(), undefined, "the same value with the same clock changes nothing");
});

test("the clock and custom clock value go with the value", () => {
  const r = new LWWRegister(ValueSchema, {});
  r.set({ value: 1 }, CrdtClock.REVERSE);
  assertDelta(r.pendingDelta(), crdtDelta.lwwregister(ValueSchema, { value: 1 }, CrdtClock.REVERSE));
  r.set({ value: 2 }, CrdtClock.CUSTOM, 42);
  assertDelta(r.pendingDelta(), crdtDelta.lwwregister(ValueSchema, { value: 2 }, CrdtClock.CUSTOM, 42));
  r.resetDelta();
  r.set({ value: 2 }, CrdtClock.CUSTOM_AUTO_INCREMENT, 43n);
  assertDelta(r.pendingDelta(), crdtDelta.lwwregister(ValueSchema, { value: 2 }, CrdtClock.CUSTOM_AUTO_INCREMENT, 43));
  assertDelta(r.fullState(), crdtDelta.lwwregister(ValueSchema, { value: 2 }, CrdtClock.CUSTOM_AUTO_INCREMENT, 43));
  assert.throws(() => r.set({}, 9 as CrdtClock), /unknown clock/);
  assert.throws(() => r.set({}, CrdtClock.CUSTOM, 1.5), TypeError);
});

test("the proxy's value replaces ours", () => {
  const r = new LWWRegister("int64", 0n);
  r.applyDelta(crdtDelta.lwwregister("int64", 7n, CrdtClock.CUSTOM, 3));
  assert.equal(r.value, 7n);
  assert.equal(r.pendingDelta(), undefined);
  assert.throws(() => r.applyDelta(crdtDelta.lwwregister("string", "x")), ProtocolError);
});

test("a rollback restores the value and the clock", () => {
  const r = new LWWRegister("string", "a");
  const host = hosted(r);
  r.set("b", CrdtClock.CUSTOM, 5);
  host.commit();
  r.set("c");
  host.rollback();
  assert.equal(r.value, "b");
  r.set("b", CrdtClock.CUSTOM, 5);
  assert.equal(r.pendingDelta(), undefined, "the clock was restored too");
});
