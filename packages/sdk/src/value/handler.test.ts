// The value entity protocol as the proxy drives it, over real gRPC on loopback.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { anyPack, anyUnpack, EmptySchema } from "@bufbuild/protobuf/wkt";
import type { ValueEntityReply } from "@cloudstate-ts/protocol";
import { serve, type UserFunctionServer } from "../index.js";
import { ProxyDriver, replyOf, type ValueEntityStreamDriver } from "../testing/index.js";
import { memoryLogger, SLOW } from "../testdata/counter.js";
import { ChangeSchema, QuerySchema, ValueSchema } from "../testdata/gen/sdktest/counter_pb.js";
import { AddedSchema, CounterStateSchema } from "../testdata/gen/sdktest/domain_pb.js";
import { ValueCounter } from "../testdata/gen/sdktest/value_counter_pb.js";
import { valueCounterEntity } from "../testdata/value-counter.js";

const SERVICE = "sdktest.ValueCounter";
const logger = memoryLogger();
let server: UserFunctionServer;
let proxy: ProxyDriver;

before(async () => {
  server = await serve({ entities: [valueCounterEntity()], port: 0, logger });
  proxy = new ProxyDriver(server.port);
});

after(async () => {
  proxy.close();
  await server.close();
});

function open(entityId: string, stored?: { value: number; changes: number }): ValueEntityStreamDriver {
  const stream = proxy.valueEntity();
  stream.init(SERVICE, entityId, stored && { schema: CounterStateSchema, state: stored });
  return stream;
}

function value(reply: ValueEntityReply): [number, number] {
  const action = reply.clientAction?.action;
  assert.equal(action?.case, "reply", `expected a reply, got ${JSON.stringify(action?.case)}`);
  const v = anyUnpack(action.value.payload!, ValueSchema)!;
  return [v.value, v.changes];
}

/** The state an update stores, as [value, changes]; undefined if the reply has no update. */
function updated(reply: ValueEntityReply): [number, number] | undefined {
  const action = reply.stateAction?.action;
  if (action?.case !== "update") return undefined;
  assert.equal(action.value.value?.typeUrl, "type.googleapis.com/sdktest.domain.CounterState");
  const state = anyUnpack(action.value.value!, CounterStateSchema)!;
  return [state.value, state.changes];
}

function failure(reply: ValueEntityReply) {
  const action = reply.clientAction?.action;
  assert.equal(action?.case, "failure");
  return action.value;
}

async function add(stream: ValueEntityStreamDriver, entityId: string, ...amounts: number[]): Promise<ValueEntityReply> {
  return replyOf(await stream.command(ValueCounter.method.add, { counterId: entityId, amounts }));
}

async function get(stream: ValueEntityStreamDriver, entityId: string): Promise<[number, number]> {
  const reply = replyOf(await stream.command(ValueCounter.method.get, { counterId: entityId }));
  assert.equal(reply.stateAction, undefined, "a read changes nothing");
  return value(reply);
}

describe("state", () => {
  test("an entity with no stored state starts from the initial state, and a read sends no state action", async () => {
    const stream = open("v1");
    const reply = replyOf(await stream.command(ValueCounter.method.get, { counterId: "v1" }));
    assert.equal(reply.commandId, 1n);
    assert.deepEqual(value(reply), [0, 0]);
    assert.equal(reply.stateAction, undefined);
    assert.equal(reply.sideEffects.length, 0);
    const action = reply.clientAction?.action;
    assert.equal(action?.case === "reply" && action.value.payload?.typeUrl, "type.googleapis.com/sdktest.Value");
    stream.end();
    assert.equal((await stream.ended).code, 0);
  });

  test("an entity starts from the stored state init carries", async () => {
    const stream = open("v2", { value: 40, changes: 7 });
    assert.deepEqual(await get(stream, "v2"), [40, 7]);
    assert.deepEqual(updated(await add(stream, "v2", 2)), [42, 8]);
    stream.end();
  });

  test("an update carries the whole new state, and the reply sees it", async () => {
    const stream = open("v3");
    const reply = await add(stream, "v3", 5);
    assert.equal(reply.commandId, 1n);
    assert.deepEqual(updated(reply), [5, 1]);
    assert.deepEqual(value(reply), [5, 1]);
    // The state's bytes are the message's own encoding (what the proxy stores).
    const update = reply.stateAction?.action;
    assert.equal(update?.case, "update");
    assert.deepEqual(new Uint8Array(update.value.value!.value), toBinary(CounterStateSchema, create(CounterStateSchema, { value: 5, changes: 1 })));
    assert.deepEqual(await get(stream, "v3"), [5, 1]);
    stream.end();
  });

  test("several updates, in one command and in several, each build on the last", async () => {
    const stream = open("v4");
    assert.deepEqual(updated(await add(stream, "v4", 1, 2, 3)), [6, 3], "one update per command: the last state set");
    assert.deepEqual(updated(await add(stream, "v4", 4)), [10, 4]);
    assert.deepEqual(updated(await add(stream, "v4", 5)), [15, 5]);
    assert.deepEqual(await get(stream, "v4"), [15, 5]);
    stream.end();
  });

  test("a delete sends a delete action, and the entity is back to its initial state", async () => {
    const stream = open("v5", { value: 9, changes: 3 });
    const reply = replyOf(await stream.command(ValueCounter.method.clear, { counterId: "v5" }));
    assert.equal(reply.stateAction?.action.case, "delete");
    assert.equal(reply.clientAction?.action.case, "reply");
    assert.deepEqual(await get(stream, "v5"), [0, 0]);
    stream.end();
  });

  test("update then delete, in separate commands and in one", async () => {
    const stream = open("v6");
    assert.deepEqual(updated(await add(stream, "v6", 3)), [3, 1]);
    const deleted = replyOf(await stream.command(ValueCounter.method.clear, { counterId: "v6" }));
    assert.equal(deleted.stateAction?.action.case, "delete");
    assert.deepEqual(updated(await add(stream, "v6", 4)), [4, 1], "an update after a delete starts from the initial state");

    // In one command, the last change wins: a delete, and the reply sees the initial state.
    const both = replyOf(await stream.command(ValueCounter.method.addThenClear, { counterId: "v6", amounts: [1, 2] }));
    assert.equal(both.stateAction?.action.case, "delete");
    assert.deepEqual(value(both), [0, 0]);
    assert.deepEqual(await get(stream, "v6"), [0, 0]);
    stream.end();
  });
});

describe("failures", () => {
  test("ctx.fail gives a failure without restart, with no state action nor effects, and the state is unchanged", async () => {
    const stream = open("f1");
    await add(stream, "f1", 5);
    // The handler changes its copy of the state and stores it before it fails at -1.
    const reply = await add(stream, "f1", 1, -1);
    const f = failure(reply);
    assert.equal(f.description, "cannot add -1");
    assert.equal(f.restart, false);
    assert.equal(f.commandId, 2n);
    assert.equal(reply.commandId, 2n);
    assert.equal(reply.stateAction, undefined);
    assert.deepEqual(await get(stream, "f1"), [5, 1], "the entity's state is as before the failed command");
    assert.deepEqual(updated(await add(stream, "f1", 1)), [6, 2], "and the stream goes on");
    stream.end();
  });

  test("a failure drops the command's side effects", async () => {
    const stream = open("f2");
    const reply = replyOf(await stream.command(ValueCounter.method.addAndAudit, { counterId: "f2", amounts: [1, -2] }));
    assert.equal(failure(reply).description, "cannot add -2");
    assert.equal(reply.sideEffects.length, 0);
    assert.equal(reply.stateAction, undefined);
    stream.end();
  });

  test("an exception in a handler gives a failure with restart, and is logged with entity, command and stack", async () => {
    const stream = open("f3");
    await add(stream, "f3", 2);
    const reply = await add(stream, "f3", 1, 13);
    const f = failure(reply);
    assert.equal(f.restart, true);
    assert.equal(reply.stateAction, undefined);
    assert.doesNotMatch(f.description, /unlucky/, "the client gets a short message, not the internals");
    assert.match(f.description, /sdktest\.ValueCounter\.Add/);
    const line = logger.lines.find((l) => l.includes("unlucky 13"));
    assert.ok(line, "the error is logged");
    assert.match(line, /^error: /);
    assert.match(line, /"f3"/);
    assert.match(line, /sdktest\.ValueCounter\.Add/);
    assert.match(line, /at .*value-counter\.ts/, "with the stack");
    assert.deepEqual(await get(stream, "f3"), [2, 1], "the state is unchanged");
    stream.end();
  });

  test("setting a state of another type fails the command with restart", async () => {
    const stream = open("f4");
    const reply = await add(stream, "f4", 99);
    assert.equal(failure(reply).restart, true);
    assert.ok(logger.lines.some((l) => l.includes("setState() takes a sdktest.domain.CounterState message") && l.includes("a sdktest.Change")));
    stream.end();
  });

  test("an unknown command, or a payload of another type, gets a failure and the stream goes on", async () => {
    const stream = open("f5");
    const unknown = failure(replyOf(await stream.rawCommand("Nope", anyPack(QuerySchema, create(QuerySchema, { counterId: "f5" })))));
    assert.match(unknown.description, /Unknown command Nope for sdktest\.ValueCounter/);
    assert.equal(unknown.restart, false);
    const wrong = failure(replyOf(await stream.rawCommand("Get", anyPack(EmptySchema, create(EmptySchema)))));
    assert.match(wrong.description, /expects a type\.googleapis\.com\/sdktest\.Query payload/);
    assert.deepEqual(await get(stream, "f5"), [0, 0]);
    stream.end();
  });
});

describe("effects", () => {
  test("ctx.forward answers with a forward to the method's service and name, with its metadata", async () => {
    const stream = open("e1");
    const reply = replyOf(await stream.command(ValueCounter.method.forwardGet, { counterId: "e1" }));
    const action = reply.clientAction?.action;
    assert.equal(action?.case, "forward");
    assert.equal(action.value.serviceName, "sdktest.ValueCounter");
    assert.equal(action.value.commandName, "Get");
    assert.equal(anyUnpack(action.value.payload!, QuerySchema)!.counterId, "e1");
    assert.deepEqual(
      action.value.metadata?.entries.map((e) => [e.key, e.value.value]),
      [["x-forwarded-by", "ValueCounter"]],
    );
    assert.equal(reply.stateAction, undefined);
    stream.end();
  });

  test("side effects, synchronous and not, go with the reply and its state update", async () => {
    const stream = open("e2");
    const reply = replyOf(await stream.command(ValueCounter.method.addAndAudit, { counterId: "e2", amounts: [4] }));
    assert.equal(reply.clientAction?.action.case, "reply");
    assert.deepEqual(updated(reply), [4, 1]);
    assert.deepEqual(
      reply.sideEffects.map((e) => [e.serviceName, e.commandName, e.payload?.typeUrl, e.synchronous]),
      [
        ["sdktest.Audit", "Record", "type.googleapis.com/sdktest.Change", true],
        ["sdktest.Audit", "Record", "type.googleapis.com/sdktest.Change", false],
      ],
    );
    const first = anyUnpack(reply.sideEffects[0]!.payload!, ChangeSchema)!;
    assert.deepEqual([first.counterId, first.amounts], ["e2", [4]]);
    assert.deepEqual(
      reply.sideEffects[1]!.metadata?.entries.map((e) => [e.key, e.value.value]),
      [["x-audit", "async"]],
    );
    stream.end();
  });
});

describe("protocol violations fail the stream and end it", () => {
  async function expectStreamFailure(stream: ValueEntityStreamDriver, pattern: RegExp, commandId = 0n): Promise<void> {
    const out = await stream.next();
    assert.equal(out?.message.case, "failure", `expected a stream failure, got ${out?.message.case}`);
    assert.match(out.message.value.description, pattern);
    assert.equal(out.message.value.commandId, commandId);
    assert.equal(await stream.next(), undefined, "then the stream ends");
    await stream.ended;
  }

  test("a command before init", async () => {
    const stream = proxy.valueEntity();
    const payload = anyPack(QuerySchema, create(QuerySchema));
    stream.send({ message: { case: "command", value: { entityId: "p1", id: 7n, name: "Get", payload } } });
    await expectStreamFailure(stream, /command before init/, 7n);
    assert.ok(logger.lines.some((l) => l.startsWith("warn: protocol error on a value entity stream: received a command before init")));
  });

  test("a second init", async () => {
    const stream = open("p2");
    await get(stream, "p2");
    stream.init(SERVICE, "p2");
    await expectStreamFailure(stream, /second init/);
  });

  test("an init for a service this user function does not serve", async () => {
    const stream = proxy.valueEntity();
    stream.init("sdktest.Counter", "p3");
    await expectStreamFailure(stream, /no value entity serves sdktest\.Counter \(served: sdktest\.ValueCounter\)/);
  });

  test("a stored state of the wrong type", async () => {
    const stream = proxy.valueEntity();
    stream.init(SERVICE, "p4", { schema: AddedSchema, state: { amount: 1 } });
    await expectStreamFailure(stream, /stored state is a type\.googleapis\.com\/sdktest\.domain\.Added/);
  });

  test("an empty message", async () => {
    const stream = open("p5");
    stream.send({});
    await expectStreamFailure(stream, /empty ValueEntityStreamIn/);
  });
});

test("an init without a state (not even an empty one) starts from the initial state", async () => {
  const stream = proxy.valueEntity();
  stream.send({ message: { case: "init", value: { serviceName: SERVICE, entityId: "i1" } } });
  assert.deepEqual(await get(stream, "i1"), [0, 0]);
  stream.end();
});

test("a stream the proxy cancels is dropped quietly and the server goes on", async () => {
  const stream = open("x1");
  await add(stream, "x1", 1);
  const errors = logger.lines.filter((l) => !l.startsWith("info")).length;
  stream.cancel();
  assert.equal((await stream.ended).code, 1, "CANCELLED");
  const other = open("x2");
  assert.deepEqual(await get(other, "x2"), [0, 0]);
  other.end();
  assert.equal(logger.lines.filter((l) => !l.startsWith("info")).length, errors, "nothing logged");
});

test("close() lets the command in progress reply before it ends the stream", async () => {
  const own = await serve({ entities: [valueCounterEntity()], port: 0, logger: memoryLogger() });
  const driver = new ProxyDriver(own.port);
  const stream = driver.valueEntity();
  stream.init(SERVICE, "s0");
  const pending = stream.command(ValueCounter.method.add, { counterId: "s0", amounts: [SLOW] });
  await new Promise((resolve) => setTimeout(resolve, 50)); // the command is in its handler now
  await own.close();
  assert.deepEqual(updated(replyOf(await pending)), [SLOW, 1]);
  assert.equal((await stream.ended).code, 0);
  driver.close();
});
