// The event-sourced protocol as the proxy drives it, over real gRPC on loopback.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { anyPack, anyUnpack, EmptySchema, type Any } from "@bufbuild/protobuf/wkt";
import type { EventSourcedReply } from "@cloudstate-ts/protocol";
import { serve, type UserFunctionServer } from "../index.js";
import { ProxyDriver, replyOf, type EventSourcedStreamDriver } from "../testing/index.js";
import { counterEntity, memoryLogger, SLOW, slowStarted, SNAPSHOT_EVERY } from "../testdata/counter.js";
import { Counter, QuerySchema, ValueSchema, ChangeSchema } from "../testdata/gen/sdktest/counter_pb.js";
import { AddedSchema, ClearedSchema, CounterStateSchema } from "../testdata/gen/sdktest/domain_pb.js";

const SERVICE = "sdktest.Counter";
const logger = memoryLogger();
let server: UserFunctionServer;
let proxy: ProxyDriver;

before(async () => {
  server = await serve({ entities: [counterEntity()], port: 0, logger });
  proxy = new ProxyDriver(server.port);
});

after(async () => {
  proxy.close();
  await server.close();
});

function open(entityId: string): EventSourcedStreamDriver {
  const stream = proxy.eventSourced();
  stream.init(SERVICE, entityId);
  return stream;
}

function amounts(reply: EventSourcedReply): number[] {
  return reply.events.map((e) => anyUnpack(e, AddedSchema)!.amount);
}

function value(reply: EventSourcedReply) {
  const action = reply.clientAction?.action;
  assert.equal(action?.case, "reply", `expected a reply, got ${JSON.stringify(action?.case)}`);
  return anyUnpack(action.value.payload!, ValueSchema)!;
}

function failure(reply: EventSourcedReply) {
  const action = reply.clientAction?.action;
  assert.equal(action?.case, "failure");
  return action.value;
}

describe("commands", () => {
  test("a reply carries the command's id, its events and the reply payload typed by the output", async () => {
    const stream = open("c1");
    const reply = replyOf(await stream.command(Counter.method.add, { counterId: "c1", amounts: [2, 3] }));
    assert.equal(reply.commandId, 1n);
    assert.deepEqual(amounts(reply), [2, 3]);
    assert.ok(reply.events.every((e) => e.typeUrl === "type.googleapis.com/sdktest.domain.Added"));
    const action = reply.clientAction?.action;
    assert.equal(action?.case === "reply" && action.value.payload?.typeUrl, "type.googleapis.com/sdktest.Value");
    // ctx.state already includes the command's own events.
    assert.deepEqual({ ...value(reply) }, { ...create(ValueSchema, { value: 5, changes: 2 }) });
    assert.equal(reply.sideEffects.length, 0);
    assert.equal(reply.snapshot, undefined);

    const next = replyOf(await stream.command(Counter.method.get, { counterId: "c1" }));
    assert.equal(next.commandId, 2n);
    assert.equal(next.events.length, 0);
    assert.equal(value(next).value, 5);
    stream.end();
    assert.equal((await stream.ended).code, 0);
  });

  test("a snapshot of the state after the events comes when the sequence crosses a multiple of snapshotEvery", async () => {
    assert.equal(SNAPSHOT_EVERY, 3);
    const stream = open("c2");
    const snapshots: (number | undefined)[] = [];
    for (const add of [[1], [1], [1], [1, 1, 1, 1], []]) {
      const reply = replyOf(await stream.command(Counter.method.add, { counterId: "c2", amounts: add }));
      snapshots.push(reply.snapshot && anyUnpack(reply.snapshot, CounterStateSchema)!.value);
    }
    // Sequences 1, 2, 3 (snapshot), 7 (crossed 6: snapshot), 7 (no events: none).
    assert.deepEqual(snapshots, [undefined, undefined, 3, 7, undefined]);
    stream.end();
  });

  test("init with a snapshot and later events gives the same state as replaying every event", async () => {
    const replayed = proxy.eventSourced();
    replayed.init(SERVICE, "c3");
    for (let seq = 1; seq <= 5; seq++) replayed.event(seq, AddedSchema, { amount: seq });
    const full = value(replyOf(await replayed.command(Counter.method.get, { counterId: "c3" })));

    const restored = proxy.eventSourced();
    restored.init(SERVICE, "c3", { sequence: 3, schema: CounterStateSchema, state: { value: 6, changes: 3 } });
    restored.event(4, AddedSchema, { amount: 4 });
    restored.event(5, AddedSchema, { amount: 5 });
    const fromSnapshot = value(replyOf(await restored.command(Counter.method.get, { counterId: "c3" })));

    assert.deepEqual({ ...fromSnapshot }, { ...full });
    assert.deepEqual([full.value, full.changes], [15, 5]);
    // The sequence continues from the journal: event 6 crosses a multiple of 3.
    const reply = replyOf(await restored.command(Counter.method.add, { counterId: "c3", amounts: [1] }));
    assert.equal(anyUnpack(reply.snapshot!, CounterStateSchema)!.value, 16);
    replayed.end();
    restored.end();
  });

  test("replay handles every registered event type", async () => {
    const stream = proxy.eventSourced();
    stream.init(SERVICE, "c4");
    stream.event(1, AddedSchema, { amount: 7 });
    stream.event(2, ClearedSchema, {});
    stream.event(3, AddedSchema, { amount: 2 });
    const got = value(replyOf(await stream.command(Counter.method.get, { counterId: "c4" })));
    assert.deepEqual([got.value, got.changes], [2, 3]);
    stream.end();
  });
});

describe("failures", () => {
  test("ctx.fail gives a failure without restart, drops the events and leaves the state unchanged", async () => {
    const stream = open("f1");
    replyOf(await stream.command(Counter.method.add, { counterId: "f1", amounts: [5] }));
    const reply = replyOf(await stream.command(Counter.method.add, { counterId: "f1", amounts: [1, -1] }));
    const f = failure(reply);
    assert.equal(f.description, "cannot add -1");
    assert.equal(f.restart, false);
    assert.equal(f.commandId, 2n);
    assert.equal(reply.commandId, 2n);
    assert.equal(reply.events.length, 0);
    assert.equal(reply.snapshot, undefined);

    const after = value(replyOf(await stream.command(Counter.method.get, { counterId: "f1" })));
    assert.deepEqual([after.value, after.changes], [5, 1]);
    // The failed command's events did not advance the sequence: 1 + 2 events reach 3 and snapshot.
    const next = replyOf(await stream.command(Counter.method.add, { counterId: "f1", amounts: [1, 1] }));
    assert.equal(anyUnpack(next.snapshot!, CounterStateSchema)!.value, 7);
    stream.end();
  });

  test("a failure drops the command's side effects", async () => {
    const stream = open("f2");
    const reply = replyOf(await stream.command(Counter.method.addAndAudit, { counterId: "f2", amounts: [1, -2] }));
    assert.equal(failure(reply).description, "cannot add -2");
    assert.equal(reply.sideEffects.length, 0);
    assert.equal(reply.events.length, 0);
    stream.end();
  });

  test("an exception in a handler gives a failure with restart, and is logged with entity, command and stack", async () => {
    const stream = open("f3");
    const reply = replyOf(await stream.command(Counter.method.add, { counterId: "f3", amounts: [1, 13] }));
    const f = failure(reply);
    assert.equal(f.restart, true);
    assert.equal(reply.events.length, 0);
    assert.doesNotMatch(f.description, /unlucky/, "the client gets a short message, not the internals");
    assert.match(f.description, /sdktest\.Counter\.Add/);
    const line = logger.lines.find((l) => l.includes("unlucky 13"));
    assert.ok(line, "the error is logged");
    assert.match(line, /^error: /);
    assert.match(line, /"f3"/);
    assert.match(line, /sdktest\.Counter\.Add/);
    assert.match(line, /at .*counter\.ts/, "with the stack");
    stream.end();
  });

  test("emitting an event type with no handler fails the command with restart", async () => {
    const stream = open("f4");
    const reply = replyOf(await stream.command(Counter.method.add, { counterId: "f4", amounts: [99] }));
    assert.equal(failure(reply).restart, true);
    assert.ok(logger.lines.some((l) => l.includes("has no handler for it") && l.includes("sdktest.domain.Unhandled")));
    stream.end();
  });

  test("an unknown command gets a failure and the stream goes on", async () => {
    const stream = open("f5");
    const reply = replyOf(await stream.rawCommand("Nope", anyPack(QuerySchema, create(QuerySchema, { counterId: "f5" }))));
    const f = failure(reply);
    assert.match(f.description, /Unknown command Nope/);
    assert.equal(f.restart, false);
    assert.equal(value(replyOf(await stream.command(Counter.method.get, { counterId: "f5" }))).value, 0);
    stream.end();
  });

  test("a command whose payload is not the method's input type gets a failure", async () => {
    const stream = open("f6");
    const payload: Any = anyPack(EmptySchema, create(EmptySchema));
    const f = failure(replyOf(await stream.rawCommand("Get", payload)));
    assert.match(f.description, /expects a type\.googleapis\.com\/sdktest\.Query payload/);
    stream.end();
  });
});

describe("protocol violations fail the stream and end it", () => {
  async function expectStreamFailure(stream: EventSourcedStreamDriver, pattern: RegExp, commandId = 0n): Promise<void> {
    const out = await stream.next();
    assert.equal(out?.message.case, "failure", `expected a stream failure, got ${out?.message.case}`);
    assert.match(out.message.value.description, pattern);
    assert.equal(out.message.value.commandId, commandId);
    assert.equal(await stream.next(), undefined, "then the stream ends");
    await stream.ended;
  }

  test("a command before init", async () => {
    const stream = proxy.eventSourced();
    const payload = anyPack(QuerySchema, create(QuerySchema));
    stream.send({ message: { case: "command", value: { entityId: "p1", id: 7n, name: "Get", payload } } });
    await expectStreamFailure(stream, /command before init/, 7n);
  });

  test("an event before init", async () => {
    const stream = proxy.eventSourced();
    stream.event(1, AddedSchema, { amount: 1 });
    await expectStreamFailure(stream, /event before init/);
  });

  test("a second init", async () => {
    const stream = open("p2");
    replyOf(await stream.command(Counter.method.get, { counterId: "p2" }));
    stream.init(SERVICE, "p2");
    await expectStreamFailure(stream, /second init/);
  });

  test("an init for a service this user function does not serve", async () => {
    const stream = proxy.eventSourced();
    stream.init("sdktest.Nothing", "p3");
    await expectStreamFailure(stream, /no event-sourced entity serves sdktest\.Nothing/);
  });

  test("a snapshot of the wrong type", async () => {
    const stream = proxy.eventSourced();
    stream.init(SERVICE, "p4", { sequence: 1, schema: AddedSchema, state: { amount: 1 } });
    await expectStreamFailure(stream, /snapshot is a type\.googleapis\.com\/sdktest\.domain\.Added/);
  });
});

describe("effects", () => {
  test("ctx.forward answers with a forward to the method's service and name", async () => {
    const stream = open("e1");
    const reply = replyOf(await stream.command(Counter.method.forwardGet, { counterId: "e1" }));
    const action = reply.clientAction?.action;
    assert.equal(action?.case, "forward");
    assert.equal(action.value.serviceName, "sdktest.Counter");
    assert.equal(action.value.commandName, "Get");
    assert.equal(action.value.payload?.typeUrl, "type.googleapis.com/sdktest.Query");
    assert.equal(anyUnpack(action.value.payload!, QuerySchema)!.counterId, "e1");
    stream.end();
  });

  test("ctx.effect adds side effects (synchronous or not) beside the events", async () => {
    const stream = open("e2");
    const reply = replyOf(await stream.command(Counter.method.addAndAudit, { counterId: "e2", amounts: [4] }));
    assert.deepEqual(amounts(reply), [4]);
    assert.equal(reply.clientAction?.action.case, "reply");
    assert.deepEqual(
      reply.sideEffects.map((e) => [e.serviceName, e.commandName, e.payload?.typeUrl, e.synchronous]),
      [
        ["sdktest.Audit", "Record", "type.googleapis.com/sdktest.Change", true],
        ["sdktest.Audit", "Record", "type.googleapis.com/sdktest.Change", false],
      ],
    );
    const first = anyUnpack(reply.sideEffects[0]!.payload!, ChangeSchema)!;
    assert.deepEqual([first.counterId, first.amounts], ["e2", [4]]);
    // The payload bytes are the message's own encoding (what the proxy hands the target).
    assert.deepEqual(new Uint8Array(reply.sideEffects[1]!.payload!.value), toBinary(ChangeSchema, create(ChangeSchema, { counterId: "e2" })));
    stream.end();
  });
});

test("a stream the proxy cancels is dropped quietly and the server goes on", async () => {
  const stream = open("x1");
  replyOf(await stream.command(Counter.method.add, { counterId: "x1", amounts: [1] }));
  const errors = logger.lines.filter((l) => !l.startsWith("info")).length;
  stream.cancel();
  assert.equal((await stream.ended).code, 1, "CANCELLED");
  const other = open("x2");
  assert.equal(value(replyOf(await other.command(Counter.method.get, { counterId: "x2" }))).value, 0);
  other.end();
  assert.equal(logger.lines.filter((l) => !l.startsWith("info")).length, errors, "nothing logged");
});

test("close() lets the command in progress reply before it ends the stream", async () => {
  const own = await serve({ entities: [counterEntity()], port: 0, logger: memoryLogger() });
  const driver = new ProxyDriver(own.port);
  const stream = driver.eventSourced();
  stream.init(SERVICE, "s0");
  const started = slowStarted.count;
  const pending = stream.command(Counter.method.add, { counterId: "s0", amounts: [SLOW] });
  // Wait until the command is inside its handler (polling, so a loaded machine cannot make it flaky).
  for (const deadline = Date.now() + 5000; slowStarted.count === started && Date.now() < deadline; ) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  assert.ok(slowStarted.count > started, "the command reached its handler");
  await own.close();
  assert.deepEqual(amounts(replyOf(await pending)), [SLOW]);
  assert.equal((await stream.ended).code, 0);
  driver.close();
});

test("close() ends the open streams and stops the server", async () => {
  const logger = memoryLogger();
  const own = await serve({ entities: [counterEntity()], port: 0, logger });
  const driver = new ProxyDriver(own.port);
  const stream = driver.eventSourced();
  stream.init(SERVICE, "s1");
  replyOf(await stream.command(Counter.method.add, { counterId: "s1", amounts: [1] }));
  await own.close();
  assert.equal((await stream.ended).code, 0);
  await assert.rejects(driver.discover(), "the server no longer answers");
  driver.close();
});
