// The in-process testkit runs a CRDT entity as one proxy node would, without a network.
import assert from "node:assert/strict";
import { test } from "node:test";
import { fromBinary, toJson, type MessageInitShape } from "@bufbuild/protobuf";
import { CrdtWriteConsistency } from "@cloudstate-ts/protocol";
import { CommandFailure, GCounter, type Crdt } from "../index.js";
import { memoryLogger } from "../testdata/counter.js";
import { assertDelta } from "../testdata/crdt-host.js";
import { crdtTestEntity } from "../testdata/crdts.js";
import { CrdtStateSchema, TargetRequestSchema, type CrdtActionSchema, type CrdtResponse } from "../testdata/gen/sdktest/crdts_pb.js";
import { crdtDelta, testkit } from "./index.js";

type Action = MessageInitShape<typeof CrdtActionSchema>;
const increment = (n: bigint): Action => ({ action: { case: "update", value: { update: { case: "increment", value: n } } } });
const json = (r: CrdtResponse | undefined) => (r?.state ? toJson(CrdtStateSchema, r.state) : undefined);

test("call returns the reply; send reports the delta, side effects and write consistency; deltas are recorded", async () => {
  const t = testkit(crdtTestEntity("gcounter"), { entityId: "k1" });
  assert.deepEqual(json(await t.call("process", { actions: [increment(2n)] })), { gcounter: "2" });
  const result = await t.send("process", {
    actions: [increment(3n), { action: { case: "effect", value: { id: "audit", synchronous: true } } }],
    writeConsistency: CrdtWriteConsistency.MAJORITY,
  });
  assertDelta(result.delta, crdtDelta.gcounter(3));
  assert.equal(result.writeConsistency, CrdtWriteConsistency.MAJORITY);
  assert.deepEqual(result.sideEffects.map((e) => fromBinary(TargetRequestSchema, e.payload!.value).id), ["audit"]);
  assert.equal(t.deltas.length, 2);
  assert.ok(t.state instanceof GCounter);
  assert.equal((t.state as GCounter).value, 5);
  assert.equal((await t.send("process", {})).delta, undefined, "a read sends nothing");
});

test("a failed command rejects with a CommandFailure and leaves the CRDT as it was", async () => {
  const t = testkit(crdtTestEntity("gcounter"));
  await t.call("process", { actions: [increment(1n)] });
  await assert.rejects(
    t.call("process", { actions: [increment(5n), { action: { case: "fail", value: "no" } }] }),
    (e: unknown) => e instanceof CommandFailure && e.message === "no",
  );
  assert.equal((t.state as GCounter).value, 1);
  assert.equal(t.deltas.length, 1);
});

test("a bug is logged, and the entity restarts from its replicated state", async () => {
  const logger = memoryLogger();
  const t = testkit(crdtTestEntity("orset"), { logger });
  await t.call("process", { actions: [{ action: { case: "update", value: { update: { case: "add", value: "a" } } } }] });
  const before = t.state;
  const result = await t.send("process", { actions: [{ action: { case: "throw", value: "oops" } }] });
  assert.equal(result.failure?.restart, true);
  assert.ok(logger.lines.some((l) => l.includes("oops")));
  assert.notEqual(t.state, before, "a new replica");
  assert.deepEqual(json(await t.call("process", {})), { orset: { elements: ["a"] } });
});

test("a start state, other replicas' changes, and a delete by another replica", async () => {
  const t = testkit(crdtTestEntity("ormap"), { state: crdtDelta.ormap("string", { added: [["gcounter-a", crdtDelta.gcounter(2)]] }) });
  await t.replicate(crdtDelta.ormap("string", { updated: [["gcounter-a", crdtDelta.gcounter(3)]] }));
  assert.deepEqual(json(await t.call("process", {})), { ormap: { entries: [{ key: "gcounter-a", value: { gcounter: "5" } }] } });
  await t.deleteRemotely();
  assert.equal(t.deleted, true);
  await assert.rejects(t.call("process", {}), /was deleted/);
});

test("streamed calls: what they push, how they end, and their cancellation", async () => {
  const t = testkit(crdtTestEntity("gcounter"));
  const watcher = await t.stream("watch", { watch: true, initialReplies: 1 });
  const leaver = await t.stream("watch", { updateOnCancel: { update: { case: "increment", value: 10n } }, effectOnCancel: true });
  const ender = await t.stream("watch", { watch: true, endAfter: 1 });
  assert.equal(watcher.result.streamed, true);
  assert.deepEqual(watcher.replies.map(json), [{ gcounter: "0" }]);
  assert.equal(leaver.replies.length, 0);

  await t.call("process", { actions: [increment(1n)] });
  await t.replicate(crdtDelta.gcounter(2));
  assert.deepEqual(watcher.replies.map(json), [{ gcounter: "0" }, { gcounter: "1" }, { gcounter: "3" }]);
  assert.deepEqual([ender.open, ender.messages.at(-1)?.endStream, ender.replies.length], [false, true, 1]);

  const cancelled = await leaver.cancel();
  assertDelta(cancelled.delta, crdtDelta.gcounter(10));
  assert.deepEqual(cancelled.sideEffects.map((e) => fromBinary(TargetRequestSchema, e.payload!.value).id), ["cancel"]);
  assert.equal(leaver.open, false);
  assert.deepEqual(watcher.replies.map(json).at(-1), { gcounter: "13" }, "the others hear the cancellation's change");
  await assert.rejects(leaver.cancel(), /not open/);
});

test("a streamed call whose onStateChange fails ends with the failure", async () => {
  const t = testkit(crdtTestEntity("flag"));
  const s = await t.stream("watch", { watch: true, failOnChange: "broken" });
  await t.call("process", { actions: [{ action: { case: "update", value: { update: { case: "enable", value: true } } } }] });
  assert.equal(s.open, false);
  assert.deepEqual(s.failure, { description: "broken", restart: false });
});

test("commands not awaited still run one at a time, in order", async () => {
  const t = testkit(crdtTestEntity("gcounter"));
  const slow = t.send("process", { actions: [increment(1n)], delayMs: 50 });
  const fast = t.send("process", { actions: [increment(2n)] });
  const [a, b] = await Promise.all([slow, fast]);
  assertDelta(a.delta, crdtDelta.gcounter(1));
  assertDelta(b.delta, crdtDelta.gcounter(2));
  assert.deepEqual(json(b.reply), { gcounter: "3" });
});

test("restart keeps the replicated state and ends the streamed calls", async () => {
  const t = testkit(crdtTestEntity("vote"));
  const s = await t.stream("watch", { watch: true });
  await t.call("process", { actions: [{ action: { case: "update", value: { update: { case: "vote", value: true } } } }] });
  t.restart();
  assert.equal(s.open, false);
  const state: Crdt = t.state;
  assert.deepEqual(toJson(CrdtStateSchema, (await t.call("process", {})).state!), { vote: { selfVote: true, votesFor: 1, totalVoters: 1 } });
  assert.equal(state.hasDelta, false);
});
