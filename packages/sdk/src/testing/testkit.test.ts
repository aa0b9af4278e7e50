// The in-process testkit runs an entity or an action as the proxy would, without a network.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import { CommandFailure } from "../index.js";
import { actionsService, type TicksProbe } from "../testdata/actions.js";
import { counterEntity, memoryLogger } from "../testdata/counter.js";
import { PlanSchema } from "../testdata/gen/sdktest/actions_pb.js";
import { valueCounterEntity } from "../testdata/value-counter.js";
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

describe("value entities", () => {
  test("call returns the reply; send reports the update, and the stored state follows", async () => {
    const t = testkit(valueCounterEntity(), { entityId: "v1" });
    assert.equal(t.stored === undefined, true, "nothing stored at first");
    assert.equal(t.state.value, 0, "the initial state");
    const reply = await t.call("add", { counterId: "v1", amounts: [2, 3] });
    assert.deepEqual([reply.value, reply.changes], [5, 2]);
    assert.deepEqual([t.stored?.value, t.state.value], [5, 5]);
    const read = await t.send("get", { counterId: "v1" });
    assert.equal(read.stateAction, undefined, "a read stores nothing");
    assert.equal((await t.send("add", { amounts: [1] })).stateAction, "update");
  });

  test("a delete removes the stored state and brings back the initial one", async () => {
    const t = testkit(valueCounterEntity(), { state: { value: 7, changes: 1 } });
    assert.deepEqual([t.stored?.value, t.state.value], [7, 7], "starts from the given stored state");
    const result = await t.send("clear", {});
    assert.equal(result.stateAction, "delete");
    assert.equal(t.stored, undefined);
    assert.equal((await t.call("get", {})).value, 0);
  });

  test("a failed command rejects with a CommandFailure and changes nothing", async () => {
    const t = testkit(valueCounterEntity());
    await t.call("add", { amounts: [1] });
    await assert.rejects(t.call("add", { amounts: [1, -1] }), (e: unknown) => e instanceof CommandFailure && e.message === "cannot add -1");
    const result = await t.send("addAndAudit", { amounts: [-5] });
    assert.deepEqual([result.failure?.description, result.stateAction, result.sideEffects.length], ["cannot add -5", undefined, 0]);
    assert.deepEqual([t.stored?.value, t.state.value], [1, 1]);
  });

  test("send reports forwards and side effects", async () => {
    const t = testkit(valueCounterEntity());
    const forwarded = await t.send("forwardGet", { counterId: "x" });
    assert.deepEqual([forwarded.forward?.serviceName, forwarded.forward?.commandName], ["sdktest.ValueCounter", "Get"]);
    assert.equal(forwarded.reply, undefined);
    const audited = await t.send("addAndAudit", { amounts: [1] });
    assert.deepEqual(
      audited.sideEffects.map((e) => [e.commandName, e.synchronous]),
      [["Record", true], ["Record", false]],
    );
    assert.equal(audited.stateAction, "update");
  });

  test("a bug rejects, is logged, and the entity restarts from its stored state", async () => {
    const logger = memoryLogger();
    const t = testkit(valueCounterEntity(), { logger });
    await t.call("add", { amounts: [4] });
    const result = await t.send("add", { amounts: [13] });
    assert.equal(result.failure?.restart, true);
    assert.ok(logger.lines.some((l) => l.includes("unlucky 13")));
    t.restart();
    assert.equal((await t.call("get", {})).value, 4);
  });
});

describe("actions", () => {
  const reply = (text: string) => ({ step: { case: "reply" as const, value: text } });
  const effect = (text: string) => ({ step: { case: "effect" as const, value: text } });
  const fail = (text: string) => ({ step: { case: "fail" as const, value: text } });
  const noReply = { step: { case: "noReply" as const, value: true } };
  const forward = (text: string) => ({ step: { case: "forward" as const, value: text } });

  test("unary: call returns the reply; unary reports no reply, forwards, failures and effects", async () => {
    const t = testkit(actionsService());
    assert.equal((await t.call("unary", { steps: [reply("a")] })).text, "a");
    const none = await t.unary("unary", { steps: [effect("e1"), noReply] });
    assert.deepEqual([none.noReply, none.reply, none.sideEffects.length], [true, undefined, 1]);
    const forwarded = await t.unary("unary", { steps: [forward("b")] });
    assert.equal(forwarded.forward?.commandName, "Unary");
    assert.equal(anyUnpack(forwarded.forward!.payload!, PlanSchema)!.steps[0]!.step.value, "b");
    const failed = await t.unary("unary", { steps: [effect("e1"), fail("no")] });
    assert.deepEqual([failed.failure?.description, failed.sideEffects.length, failed.noReply], ["no", 0, false]);
    await assert.rejects(t.call("unary", { steps: [fail("no")] }), (e: unknown) => e instanceof CommandFailure && e.message === "no");
    await assert.rejects(t.call("unary", { steps: [noReply] }), /unary sent no reply instead of replying/);
  });

  test("the request metadata reaches the handler", async () => {
    const t = testkit(actionsService());
    const got = await t.call("unary", { steps: [{ step: { case: "metadata", value: "x-user" } }] }, { metadata: { "x-user": "erin" } });
    assert.equal(got.text, "erin");
  });

  test("streamed in: the requests from an array or an async iterable", async () => {
    const t = testkit(actionsService());
    const fromArray = await t.streamedIn("streamedIn", [{ steps: [effect("e1")] }, { steps: [reply("a")] }]);
    assert.deepEqual([fromArray.reply?.text, fromArray.sideEffects.length], ["a", 1]);
    async function* requests() {
      yield { steps: [reply("b")] };
    }
    assert.equal((await t.streamedIn("streamedIn", requests())).reply?.text, "b");
    assert.equal((await t.streamedIn("streamedIn", [])).noReply, true);
  });

  test("streamed out and bidi: every response, in order; a failure ends the stream", async () => {
    const t = testkit(actionsService());
    const out = await t.streamedOut("streamedOut", { steps: [reply("a"), effect("e1"), noReply, fail("stop"), reply("never")] });
    assert.deepEqual(
      out.map((r) => [r.reply?.text, r.noReply, r.failure?.description, r.sideEffects.length]),
      [
        ["a", false, undefined, 0],
        [undefined, true, undefined, 1],
        [undefined, false, "stop", 0],
      ],
    );
    const both = await t.streamed("streamed", [{ steps: [reply("a")] }, { steps: [reply("b"), reply("c")] }]);
    assert.deepEqual(
      both.map((r) => r.reply?.text),
      ["a", "b", "c"],
    );
  });

  test("take stops a stream as a client that cancels: the handler's iterator is closed", async () => {
    const probe: TicksProbe = { open: 0, closed: [] };
    const t = testkit(actionsService(probe));
    const ticks = await t.streamedOut("ticks", {}, { take: 3 });
    assert.deepEqual(
      ticks.map((r) => r.reply?.text),
      ["tick 0", "tick 1", "tick 2"],
    );
    assert.equal(probe.open, 0);
    assert.deepEqual(probe.closed, [{ aborted: true }]);
  });
});
