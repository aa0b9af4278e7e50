import assert from "node:assert/strict";
import { test } from "node:test";
import { ProtocolError } from "../../errors.js";
import { assertDelta, hosted } from "../../testdata/crdt-host.js";
import { crdtDelta } from "../../testing/crdt-delta.js";
import { Flag } from "./flag.js";

test("a Flag starts off; enable() switches it on once, with one delta", () => {
  const f = new Flag();
  assert.equal(f.value, false);
  assert.equal(f.pendingDelta(), undefined);
  f.enable().enable();
  assert.equal(f.value, true);
  assertDelta(f.pendingDelta(), crdtDelta.flag(true));
  f.resetDelta();
  f.enable();
  assert.equal(f.pendingDelta(), undefined, "enabling an enabled flag changes nothing");
});

test("a Flag enabled by another replica is enabled here", () => {
  const f = new Flag();
  f.applyDelta(crdtDelta.flag(true));
  assert.equal(f.value, true);
  assert.equal(f.pendingDelta(), undefined);
  assertDelta(f.fullState(), crdtDelta.flag(true));
});

test("a delta that disables an enabled Flag is a protocol error", () => {
  const f = new Flag();
  f.applyDelta(crdtDelta.flag(true));
  assert.throws(() => f.applyDelta(crdtDelta.flag(false)), ProtocolError);
});

test("a rollback switches the flag back off", () => {
  const f = new Flag();
  const host = hosted(f);
  f.enable();
  host.rollback();
  assert.equal(f.value, false);
  assert.equal(f.pendingDelta(), undefined);
});
