// Direction (b), value entities: a gRPC client calls the model through the proxy and checks what a
// client can observe — replies, updates and deletes, failures, forwards and side effects reaching
// ValueEntityTwo (read back from its state), state kept across failures and passivation.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { status } from "@grpc/grpc-js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { ValueEntityConfigured, ValueEntityTckModel, ValueEntityTwo, type RequestActionSchema } from "../gen/cloudstate/tck/model/valueentity_pb.js";
import { eventually, rejectsWith, sleep } from "./expectations.js";
import { startProxyUnderTest, type ProxyUnderTest } from "./proxy-under-test.js";

type Action = MessageInitShape<typeof RequestActionSchema>;
const update = (value: string): Action => ({ action: { case: "update", value: { value } } });
const del: Action = { action: { case: "delete", value: {} } };
const forward = (id: string): Action => ({ action: { case: "forward", value: { id } } });
const effect = (id: string, synchronous = false): Action => ({ action: { case: "effect", value: { id, synchronous } } });
const fail = (message: string): Action => ({ action: { case: "fail", value: { message } } });

describe("direction (b) — value entity through the proxy", () => {
  let p: ProxyUnderTest;

  before(async () => {
    p = await startProxyUnderTest();
  });
  after(() => p.close());

  const process = async (id: string, ...actions: Action[]) => (await p.client.unary(ValueEntityTckModel.method.process, { id, actions })).message;
  const two = async (id: string) => (await p.client.unary(ValueEntityTwo.method.call, { id })).message;

  test("value entity: updates and deletes are stored and read back", async () => {
    const id = p.id("updates");
    assert.equal(await process(id), "", "value entity: a new entity's state is empty");
    assert.equal(await process(id, update("one")), "one", "value entity: the reply after an update");
    assert.equal(await process(id), "one", "value entity: the update is kept");
    assert.equal(await process(id, update("two"), update("three")), "three", "value entity: several updates, the last wins");
    assert.equal(await process(id, del), "", "value entity: the reply after a delete");
    assert.equal(await process(id), "", "value entity: the delete is kept");
    assert.equal(await process(id, update("four"), del, update("five")), "five", "value entity: update/delete/update");
    assert.equal(await process(id), "five", "value entity: the last update is kept");
  });

  test("value entity: a failure reaches the client as status UNKNOWN with its message, and stores nothing", async () => {
    const id = p.id("failure");
    await process(id, update("kept"));
    await rejectsWith(process(id, update("lost"), fail("expected failure")), status.UNKNOWN, "expected failure", "value entity: a failure");
    assert.equal(await process(id), "kept", "value entity: the failed command's update is not stored");
    assert.equal(await process(id, update("next")), "next", "value entity: the entity goes on after a failure");
  });

  test("value entity: a forward reaches ValueEntityTwo, whose reply answers the client; the state change is stored", async () => {
    const id = p.id("forward");
    const target = p.id("forward-target");
    assert.equal(await process(id, update("x"), forward(target)), "forward", "value entity: the client gets ValueEntityTwo's reply");
    assert.equal(await two(target), "forward", "value entity: ValueEntityTwo ran the forwarded command");
    assert.equal(await process(id), "x", "value entity: the forwarding command's update is stored");
  });

  test("value entity: a forward with a side effect", async () => {
    const [target, effectTarget] = [p.id("fe-forward"), p.id("fe-effect")];
    assert.equal(await process(p.id("forward-effect"), effect(effectTarget, true), forward(target)), "forward");
    assert.equal(await two(effectTarget), "sync-effect", "value entity: the side effect ran before the forward answered");
  });

  test("value entity: a synchronous side effect has run when the reply arrives", async () => {
    const target = p.id("sync-effect-target");
    assert.equal(await process(p.id("sync-effect"), update("s"), effect(target, true)), "s");
    assert.equal(await two(target), "sync-effect", "value entity: ValueEntityTwo ran the synchronous side effect before the reply");
  });

  test("value entity: an asynchronous side effect runs", async () => {
    const target = p.id("effect-target");
    await process(p.id("effect"), effect(target));
    await eventually("value entity: ValueEntityTwo runs the side effect", async () => assert.equal(await two(target), "effect"));
  });

  test("value entity: a failure drops its side effects", async () => {
    const [sync, async] = [p.id("dropped-sync"), p.id("dropped-async")];
    await rejectsWith(process(p.id("failure-effects"), effect(async), effect(sync, true), fail("dropped")), status.UNKNOWN, "dropped", "value entity: a failing command");
    await sleep(200); // room for an asynchronous effect that should not run
    assert.deepEqual([await two(sync), await two(async)], ["", ""], "value entity: neither side effect of a failed command ran");
  });

  test("value entity: state survives passivation (100 ms timeout of ValueEntityConfigured)", async () => {
    const id = p.id("passivation");
    const call = async (...actions: Action[]) => (await p.client.unary(ValueEntityConfigured.method.call, { id, actions })).message;
    assert.equal(await call(update("kept")), "kept");
    const ours = p.ours;
    if (ours) {
      const active = ours.activeEntities();
      await eventually("value entity: the proxy passivates the configured entity after 100 ms", () => assert.ok(ours.activeEntities() < active), 2_000);
    } else {
      await sleep(500);
    }
    assert.equal(await call(), "kept", "value entity: the passivated entity is initialised with its stored state");
  });
});
