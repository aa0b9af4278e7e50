// The in-process testkit runs an entity as the proxy would, without a network.
import assert from "node:assert/strict";
import { test } from "node:test";
import { CommandFailure } from "../index.js";
import { counterEntity, memoryLogger } from "../testdata/counter.js";
import { testkit } from "./index.js";

test("call returns the reply and records the persisted events", async () => {
  const t = testkit(counterEntity(), { entityId: "k1" });
  const reply = await t.call("add", { counterId: "k1", amounts: [2, 3] });
  assert.deepEqual([reply.value, reply.changes], [5, 2]);
  assert.deepEqual(
    t.events.map((e) => e.$typeName),
    ["sdktest.domain.Added", "sdktest.domain.Added"],
  );
  assert.equal(t.sequence, 2);
  assert.equal(t.state.value, 5);
});

test("a failed command rejects with a CommandFailure and persists nothing", async () => {
  const t = testkit(counterEntity());
  await t.call("add", { amounts: [1] });
  await assert.rejects(t.call("add", { amounts: [1, -1] }), (e: unknown) => e instanceof CommandFailure && e.message === "cannot add -1");
  assert.equal(t.events.length, 1);
  assert.equal(t.state.value, 1);
});

test("send reports forwards, side effects and snapshots", async () => {
  const t = testkit(counterEntity());
  const forwarded = await t.send("forwardGet", { counterId: "x" });
  assert.deepEqual([forwarded.forward?.serviceName, forwarded.forward?.commandName], ["sdktest.Counter", "Get"]);
  assert.equal(forwarded.reply, undefined);
  const audited = await t.send("addAndAudit", { amounts: [1, 1, 1] });
  assert.equal(audited.sideEffects.length, 2);
  assert.equal(audited.snapshotted, true, "the third event crosses snapshotEvery = 3");
});

test("restart rebuilds the same state from the snapshot and the later events", async () => {
  const t = testkit(counterEntity());
  assert.equal((await t.send("add", { amounts: [1, 2, 3, 4] })).snapshotted, true, "a snapshot at 4");
  assert.equal((await t.send("add", { amounts: [5] })).snapshotted, false, "event 5 after it");
  const before = await t.call("get", {});
  t.restart();
  const after = await t.call("get", {});
  assert.deepEqual([after.value, after.changes], [before.value, before.changes]);
  assert.deepEqual([after.value, after.changes], [15, 5]);
});

test("a bug in a handler rejects, is logged, and the entity restarts from its journal", async () => {
  const logger = memoryLogger();
  const t = testkit(counterEntity(), { logger });
  await t.call("add", { amounts: [1] });
  const result = await t.send("add", { amounts: [13] });
  assert.equal(result.failure?.restart, true);
  assert.ok(logger.lines.some((l) => l.includes("unlucky 13")));
  assert.equal((await t.call("get", {})).value, 1);
});
