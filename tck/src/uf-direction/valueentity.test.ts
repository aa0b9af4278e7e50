// Direction (a), value entities: the suite plays the proxy on ValueEntity.handle streams — init with
// or without a stored state, commands — and checks each reply's state action, client action and
// side effects.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { replyOf, type ValueEntityReply, type ValueEntityStreamDriver } from "@cloudstate-ts/sdk/testing";
import {
  PersistedSchema,
  RequestSchema,
  ResponseSchema,
  ValueEntityConfigured,
  ValueEntityTckModel,
  ValueEntityTwo,
  type RequestActionSchema,
} from "../gen/cloudstate/tck/model/valueentity_pb.js";
import { expectFailure, expectForward, expectReply, sideEffectsOf, unpack } from "./replies.js";
import { startUserFunction, type UserFunctionUnderTest } from "./user-function.js";

type Action = MessageInitShape<typeof RequestActionSchema>;
const update = (value: string): Action => ({ action: { case: "update", value: { value } } });
const del: Action = { action: { case: "delete", value: {} } };
const forward = (id: string): Action => ({ action: { case: "forward", value: { id } } });
const effect = (id: string, synchronous = false): Action => ({ action: { case: "effect", value: { id, synchronous } } });
const fail = (message: string): Action => ({ action: { case: "fail", value: { message } } });

const MODEL = ValueEntityTckModel.typeName;
const TWO = ValueEntityTwo.typeName;
const TWO_CALL = `${TWO}.Call`;
const twoRequest = (id: string, mark: string) => ({ id, actions: [{ update: { value: mark } }] });

describe("direction (a) — value entity", () => {
  let uf: UserFunctionUnderTest;
  const open: ValueEntityStreamDriver[] = [];

  before(async () => {
    uf = await startUserFunction();
  });
  after(async () => {
    for (const stream of open) stream.cancel();
    await uf.close();
  });

  /** A new entity stream, initialised with the stored state (none: no value). */
  function entity(id: string, stored?: string, service = MODEL): ValueEntityStreamDriver {
    const stream = uf.driver.valueEntity();
    open.push(stream);
    stream.init(service, id, stored === undefined ? undefined : { schema: PersistedSchema, state: { value: stored } });
    return stream;
  }

  async function process(stream: ValueEntityStreamDriver, id: string, ...actions: Action[]): Promise<ValueEntityReply> {
    return replyOf(await stream.command(ValueEntityTckModel.method.process, { id, actions }));
  }

  const messageOf = (reply: ValueEntityReply, what: string) => expectReply(reply.clientAction?.action, ResponseSchema, what).message;
  /** "none", "delete", or the updated value. */
  function stateActionOf(reply: ValueEntityReply, what: string): string {
    const action = reply.stateAction?.action;
    if (action?.case === "update") return `update ${unpack(action.value.value, PersistedSchema, `${what} (state update)`).value}`;
    return action?.case ?? "none";
  }

  test("value entity: a new entity (no stored state) starts from the initial, empty state", async () => {
    const reply = await process(entity("initial"), "initial");
    assert.equal(reply.commandId, 1n, "value entity: the reply's command id matches the command's (ids start at 1)");
    assert.equal(messageOf(reply, "initial state"), "", "value entity: the initial state is empty");
    assert.equal(stateActionOf(reply, "initial state"), "none", "value entity: a command that changes nothing sends no state action");
  });

  test("value entity: an update", async () => {
    const reply = await process(entity("update"), "update", update("one"));
    assert.equal(stateActionOf(reply, "an update"), "update one", "value entity: the reply carries the new state");
    assert.equal(messageOf(reply, "an update"), "one", "value entity: the reply sees the updated state");
  });

  test("value entity: a delete", async () => {
    const stream = entity("delete", "stored");
    const reply = await process(stream, "delete", del);
    assert.equal(stateActionOf(reply, "a delete"), "delete", "value entity: the reply asks to delete the state");
    assert.equal(messageOf(reply, "a delete"), "", "value entity: a deleted state reads as the initial one");
    assert.equal(messageOf(await process(stream, "delete"), "after a delete"), "", "value entity: the state stays deleted");
  });

  test("value entity: several updates (in one command, the last wins; across commands, each is sent)", async () => {
    const stream = entity("several");
    assert.equal(stateActionOf(await process(stream, "several", update("a"), update("b")), "two updates"), "update b", "value entity: the last update of a command is its state action");
    const second = await process(stream, "several", update("c"));
    assert.equal(second.commandId, 2n, "value entity: the second command's reply has command id 2");
    assert.equal(stateActionOf(second, "a later update"), "update c");
    assert.equal(messageOf(await process(stream, "several"), "after updates"), "c", "value entity: the state is the last update");
  });

  test("value entity: an update then a delete", async () => {
    const stream = entity("update-delete");
    assert.equal(stateActionOf(await process(stream, "update-delete", update("a"), del), "update + delete"), "delete", "value entity: the delete comes last, so it is the state action");
    assert.equal(stateActionOf(await process(stream, "update-delete", update("b")), "update"), "update b");
    assert.equal(stateActionOf(await process(stream, "update-delete", del), "delete"), "delete");
    assert.equal(messageOf(await process(stream, "update-delete"), "after the delete"), "", "value entity: the state is deleted");
  });

  test("value entity: update, delete, update", async () => {
    const stream = entity("update-delete-update");
    assert.equal(stateActionOf(await process(stream, "update-delete-update", update("a"), del, update("b")), "update/delete/update"), "update b");
    await process(stream, "update-delete-update", update("c"));
    await process(stream, "update-delete-update", del);
    assert.equal(stateActionOf(await process(stream, "update-delete-update", update("d")), "update after a delete"), "update d");
    assert.equal(messageOf(await process(stream, "update-delete-update"), "after update/delete/update"), "d", "value entity: the last update stands");
  });

  test("value entity: rehydration — an entity initialised with a stored state starts from it", async () => {
    const reply = await process(entity("rehydrated", "stored"), "rehydrated");
    assert.equal(messageOf(reply, "rehydration"), "stored", "value entity: the state is the stored one");
    assert.equal(stateActionOf(reply, "rehydration"), "none", "value entity: reading sends no state action");
  });

  test("value entity: a side effect to the second service", async () => {
    const reply = await process(entity("effect"), "effect", update("x"), effect("two-effect"));
    assert.equal(stateActionOf(reply, "a command with a side effect"), "update x");
    assert.deepEqual(sideEffectsOf(reply.sideEffects, RequestSchema, "a side effect"), [[TWO_CALL, twoRequest("two-effect", "effect"), false]]);
  });

  test("value entity: a synchronous side effect", async () => {
    const reply = await process(entity("sync-effect"), "sync-effect", effect("two-sync", true));
    assert.deepEqual(sideEffectsOf(reply.sideEffects, RequestSchema, "a synchronous side effect"), [[TWO_CALL, twoRequest("two-sync", "sync-effect"), true]]);
  });

  test("value entity: several side effects, in order", async () => {
    const reply = await process(entity("effects"), "effects", effect("e1", true), effect("e2"));
    assert.deepEqual(sideEffectsOf(reply.sideEffects, RequestSchema, "several side effects"), [
      [TWO_CALL, twoRequest("e1", "sync-effect"), true],
      [TWO_CALL, twoRequest("e2", "effect"), false],
    ]);
  });

  test("value entity: a forward to the second service", async () => {
    const reply = await process(entity("forward"), "forward", forward("f1"));
    assert.deepEqual(expectForward(reply.clientAction?.action, { service: TWO, method: "Call", input: RequestSchema }, "a forward"), twoRequest("f1", "forward"));
    assert.equal(stateActionOf(reply, "a forward"), "none", "value entity: a forward alone changes no state");
  });

  test("value entity: a forward with a state update", async () => {
    const reply = await process(entity("forward-state"), "forward-state", update("x"), forward("f1"));
    expectForward(reply.clientAction?.action, { service: TWO, method: "Call", input: RequestSchema }, "forward + state");
    assert.equal(stateActionOf(reply, "forward + state"), "update x", "value entity: the forward's reply carries the state update");
  });

  test("value entity: a forward with a side effect", async () => {
    const reply = await process(entity("forward-effect"), "forward-effect", update("x"), effect("e1"), forward("f1"));
    assert.deepEqual(expectForward(reply.clientAction?.action, { service: TWO, method: "Call", input: RequestSchema }, "forward + effect"), twoRequest("f1", "forward"));
    assert.deepEqual(sideEffectsOf(reply.sideEffects, RequestSchema, "forward + effect"), [[TWO_CALL, twoRequest("e1", "effect"), false]]);
    assert.equal(stateActionOf(reply, "forward + effect"), "update x");
  });

  test("value entity: a failure changes no state", async () => {
    const stream = entity("failure", "before");
    const reply = await process(stream, "failure", update("after"), fail("expected failure"));
    expectFailure(reply.clientAction?.action, "expected failure", "a failing command");
    assert.equal(stateActionOf(reply, "a failing command"), "none", "value entity: a failure reply carries no state action");
    assert.equal(messageOf(await process(stream, "failure"), "after a failure"), "before", "value entity: the state is unchanged");
  });

  test("value entity: the stream is usable after a failure", async () => {
    const stream = entity("usable-after-failure");
    expectFailure((await process(stream, "usable-after-failure", fail("first"))).clientAction?.action, "first", "a failing command");
    const reply = await process(stream, "usable-after-failure", update("a"));
    assert.equal(reply.commandId, 2n, "value entity: the next command is answered with its own id");
    assert.equal(stateActionOf(reply, "after a failure"), "update a", "value entity: the next command runs normally");
  });

  test("value entity: a failure drops its side effects", async () => {
    const reply = await process(entity("failure-effects"), "failure-effects", effect("e1"), effect("e2", true), fail("no effects"));
    expectFailure(reply.clientAction?.action, "no effects", "a failing command with side effects");
    assert.deepEqual(reply.sideEffects, [], "value entity: a failure reply carries no side effects");
  });

  test("value entity: failure with the restart path — a new stream, init with the stored state, ids from 1", async () => {
    const first = entity("restart");
    await process(first, "restart", update("kept"));
    expectFailure((await process(first, "restart", update("lost"), fail("restart me"))).clientAction?.action, "restart me", "a failing command");
    first.end();
    const end = await first.ended;
    assert.equal(end.code, 0, `value entity: the user function completes a stream the proxy closes (status ${end.code}: ${end.details})`);
    const second = entity("restart", "kept");
    const reply = await process(second, "restart");
    assert.equal(reply.commandId, 1n, "value entity: ids start at 1 on the new stream");
    assert.equal(messageOf(reply, "after a restart"), "kept", "value entity: the restarted entity has the stored state");
  });

  test("value entity: the second and the configured services run on their own streams", async () => {
    for (const [service, method] of [
      [ValueEntityTwo.typeName, ValueEntityTwo.method.call],
      [ValueEntityConfigured.typeName, ValueEntityConfigured.method.call],
    ] as const) {
      const reply = replyOf(await entity("other", "stored", service).command(method, { id: "other", actions: [update("new")] }));
      assert.equal(stateActionOf(reply, service), "update new", `value entity: ${service}.Call works like Process`);
    }
  });

  test("value entity: the user function completes the stream when the proxy passivates the entity", async () => {
    const stream = entity("passivated", undefined, ValueEntityConfigured.typeName);
    replyOf(await stream.command(ValueEntityConfigured.method.call, { id: "passivated", actions: [update("a")] }));
    stream.end();
    const end = await stream.ended;
    assert.equal(end.code, 0, `value entity: the stream ends cleanly after the proxy half-closes it (status ${end.code}: ${end.details})`);
  });
});
