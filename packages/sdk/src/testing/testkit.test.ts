// The in-process testkit runs an entity or an action as the proxy would, without a network.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import { action, bytesAny, CommandFailure, eventData, eventSourced, jsonAny, protobufAny, textAny, valueEntity } from "../index.js";
import { actionsService, type TicksProbe } from "../testdata/actions.js";
import { counterEntity, memoryLogger } from "../testdata/counter.js";
import { eventSubscriber, journalEntity, tallyEntity } from "../testdata/eventing.js";
import { PlanSchema } from "../testdata/gen/sdktest/actions_pb.js";
import { Counter } from "../testdata/gen/sdktest/counter_pb.js";
import { AddedSchema, CounterStateSchema } from "../testdata/gen/sdktest/domain_pb.js";
import { EventSubscriber, Tally } from "../testdata/gen/sdktest/eventing_pb.js";
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

describe("eventing deliveries", () => {
  test("an action: deliver sends CloudEvent metadata with defaults from the message and the method's eventing source", async () => {
    const t = testkit(eventSubscriber());
    const first = await t.deliver("onAdded", { amount: 2 }, { subject: "acct-1" });
    // describeEvent: id source subject type content-type time
    assert.equal(first.reply?.text, "+2 [1 counter acct-1 sdktest.domain.Added application/protobuf -]");
    const second = await t.deliver("onAdded", { amount: 3 });
    assert.equal(second.reply?.text, "+3 [2 counter - sdktest.domain.Added application/protobuf -]", "ids count up; no subject for actions");
    const time = new Date(Date.UTC(2024, 0, 2, 3, 4, 5));
    const given = await t.deliver("onAdded", { amount: 4 }, { id: "17", source: "elsewhere", type: "custom", time, contentType: "application/x-protobuf" });
    assert.equal(given.reply?.text, "+4 [17 elsewhere - custom application/x-protobuf 2024-01-02T03:04:05.000Z]");
    // A call is a client's: no CloudEvent.
    assert.equal((await t.call("onAdded", { amount: 1 })).text, "+1 [direct]");
  });

  test("an action: noReply publishes nothing", async () => {
    const result = await testkit(eventSubscriber()).deliver("onAdded", { amount: 0 });
    assert.deepEqual([result.noReply, result.reply, result.failure], [true, undefined, undefined]);
  });

  test("an action taking Any: the payload goes as is, its type and content type give the defaults, and the Any reply comes back as is", async () => {
    const t = testkit(eventSubscriber());
    const echoed = (await t.deliver("onAnything", jsonAny("com.example.Thing", { n: 1 }))).reply!;
    assert.equal(echoed.typeUrl, "json.cloudstate.io/sdktest.Echo");
    assert.deepEqual(eventData(echoed), {
      kind: "json",
      typeName: "sdktest.Echo",
      value: { type: "com.example.Thing", value: { n: 1 }, event: "1 inbox - com.example.Thing application/json -" },
    });
    assert.deepEqual(eventData((await t.deliver("onAnything", textAny("abc"))).reply!), { kind: "text", value: "ABC" });
    const doubled = eventData((await t.deliver("onAnything", protobufAny(AddedSchema, { amount: 5 }))).reply!, [AddedSchema]);
    assert.equal(doubled.kind === "protobuf" && doubled.message?.amount, 10);
    // A client's call packs the Any; the handler gets the same one.
    assert.deepEqual(eventData(await t.call("onAnything", textAny("def"))), { kind: "text", value: "DEF" });
    await assert.rejects(t.deliver("onAnything", {}), /deliver\("onAnything"\) takes an Any with a type URL/);
  });

  test("a text delivery's CloudEvent says text/plain", async () => {
    const t = testkit(
      action({
        service: EventSubscriber,
        commands: { onAdded: () => ({}), onAnything: (_any, ctx) => textAny(`${ctx.cloudEvent?.type} ${ctx.cloudEvent?.contentType}`) },
      }),
    );
    assert.deepEqual(eventData((await t.deliver("onAnything", textAny("x"))).reply!), { kind: "text", value: "string text/plain; charset=utf-8" });
    assert.deepEqual(eventData((await t.deliver("onAnything", bytesAny(Uint8Array.of(1)))).reply!), { kind: "text", value: "bytes application/octet-stream" });
  });

  test("a value entity: subject = the entity id; noReply still stores the state and runs effects; extra metadata", async () => {
    const t = testkit(tallyEntity(), { entityId: "t1" });
    const observed = await t.deliver("observe", { tallyId: "t1", amount: 2 }, { metadata: { "x-extra": "1" } });
    assert.equal(observed.reply?.text, "2 [1 observations t1 sdktest.Observation application/protobuf -]");
    const silent = await t.deliver("observe", { tallyId: "t1", amount: 0 });
    assert.deepEqual([silent.noReply, silent.reply, silent.stateAction], [true, undefined, "update"]);
    assert.deepEqual(silent.sideEffects.map((e) => e.commandName), ["Record"]);
    assert.deepEqual([t.stored?.value, t.stored?.changes], [2, 2]);
    const total = await t.deliver("observeAny", jsonAny("sdktest.Obs", { amount: 5 }));
    assert.deepEqual(eventData(total.reply!), { kind: "json", typeName: "sdktest.Total", value: { total: 7 } });
    assert.equal((await t.deliver("observe", { tallyId: "t1", amount: 1 }, { subject: "other" })).reply?.text, "8 [4 observations other sdktest.Observation application/protobuf -]");
  });

  test("an event-sourced entity: deliveries carry metadata, Any in and out, noReply", async () => {
    const t = testkit(journalEntity(), { entityId: "j1" });
    const recorded = await t.deliver("record", protobufAny(AddedSchema, { amount: 3 }));
    assert.deepEqual(eventData(recorded.reply!), { kind: "json", typeName: "sdktest.Recorded", value: { value: 3, subject: "j1" } });
    assert.deepEqual(t.events.map((e) => e.$typeName), ["sdktest.domain.Added"]);
    const skipped = await t.deliver("record", textAny("skip"));
    assert.deepEqual([skipped.noReply, skipped.reply, skipped.events.length, skipped.sideEffects.length], [true, undefined, 0, 1]);
    const called = await t.call("record", jsonAny("sdktest.Amount", { amount: 4 }));
    assert.deepEqual(eventData(called), { kind: "json", typeName: "sdktest.Recorded", value: { value: 7, subject: null } });
    await assert.rejects(t.call("record", textAny("skip")), /record sent no reply instead of replying/);
  });

  test("call and send take request metadata for entities too", async () => {
    const counter = eventSourced({
      service: Counter,
      persistenceId: "meta-counter",
      state: CounterStateSchema,
      initial: () => create(CounterStateSchema),
      events: [[AddedSchema, (s) => s]],
      commands: {
        add: () => ({}),
        clear: () => ({}),
        get: (_q, ctx) => ({ value: Number(ctx.metadata.get("x-n") ?? -1) }),
        forwardGet: (q, ctx) => ctx.forward(Counter.method.get, q),
        addAndAudit: () => ({}),
      },
    });
    const es = testkit(counter);
    assert.equal((await es.call("get", {}, { metadata: { "X-N": "4" } })).value, 4);
    assert.equal((await es.send("get", {})).reply?.value, -1);
    const value = testkit(
      valueEntity({
        service: Tally,
        persistenceId: "meta-tally",
        state: CounterStateSchema,
        initial: () => create(CounterStateSchema),
        commands: {
          observe: (_o, ctx) => ({ text: String(ctx.metadata.get("x-n")) }),
          observeAny: (any) => any,
          get: () => ({}),
        },
      }),
    );
    assert.equal((await value.call("observe", {}, { metadata: [["x-n", "5"]] })).text, "5");
    assert.equal((await value.send("observe", {}, { metadata: { "x-n": "6" } })).reply?.text, "6");
  });

  test("an Any reply with no type URL, or a message that is not an Any, is a bug in the handler", async () => {
    const logger = memoryLogger();
    const t = testkit(
      action({
        service: EventSubscriber,
        commands: {
          onAdded: () => ({}),
          onAnything: (any) => (eventData(any).kind === "text" ? {} : (create(AddedSchema) as never)),
        },
      }),
      { logger },
    );
    assert.equal((await t.deliver("onAnything", textAny("x"))).failure?.description.startsWith("Unexpected error in sdktest.EventSubscriber.OnAnything"), true);
    assert.ok(logger.lines.some((l) => l.includes("returned an Any with no type URL")));
    await t.deliver("onAnything", bytesAny(Uint8Array.of(1)));
    assert.ok(logger.lines.some((l) => l.includes("returned a sdktest.domain.Added, expected a google.protobuf.Any")));
  });
});
