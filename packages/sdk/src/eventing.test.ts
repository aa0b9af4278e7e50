// Eventing as the proxy drives it (PROTOCOL.md §8), over real gRPC on loopback: the subscribers'
// eventing options reach the proxy at discovery; deliveries carry CloudEvent metadata and, for
// methods that take google.protobuf.Any, the payload as is; Any replies go back as they are; a
// value or event-sourced subscriber may answer with no reply (nothing to publish).
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createFileRegistry, fromBinary, getOption, type DescMethod } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema, type Any } from "@bufbuild/protobuf/wkt";
import { eventing, type ActionResponse, type ClientAction, type EntitySpec } from "@cloudstate-ts/protocol";
import { metadataProto, type MetadataInit } from "./context.js";
import { bytesAny, eventData, jsonAny, protobufAny, serve, textAny, type UserFunctionServer } from "./index.js";
import { crdtMessageOf, ProxyDriver, replyOf } from "./testing/index.js";
import { memoryLogger } from "./testdata/counter.js";
import { anyCounterEntity, eventSubscriber, journalEntity, tallyEntity } from "./testdata/eventing.js";
import { AddedSchema } from "./testdata/gen/sdktest/domain_pb.js";
import { AnyCounter, EventSubscriber, Journal, SummarySchema, Tally } from "./testdata/gen/sdktest/eventing_pb.js";

const logger = memoryLogger();
let server: UserFunctionServer;
let proxy: ProxyDriver;

before(async () => {
  server = await serve({ entities: [eventSubscriber(), tallyEntity(), journalEntity(), anyCounterEntity()], port: 0, logger });
  proxy = new ProxyDriver(server.port);
});

after(async () => {
  proxy.close();
  await server.close();
});

/** CloudEvent metadata as the proxy sends it with a delivery. */
function ce(id: string, source: string, type: string, more: Record<string, string> = {}): MetadataInit {
  return { "ce-id": id, "ce-source": source, "ce-specversion": "1.0", "ce-type": type, ...more };
}

/** The reply payload of a client action (an assertion error if there is none). */
function payloadOf(action: ClientAction | undefined): Any {
  const a = action?.action;
  assert.equal(a?.case, "reply", `expected a reply, got ${a?.case === "failure" ? `failure: ${a.value.description}` : String(a?.case)}`);
  return a.value.payload!;
}

function actionPayload(response: ActionResponse): Any {
  const r = response.response;
  assert.equal(r.case, "reply", `expected a reply, got ${r.case === "failure" ? `failure: ${r.value.description}` : String(r.case)}`);
  return r.value.payload!;
}

describe("discovery", () => {
  let spec: EntitySpec;
  let methods: Map<string, DescMethod>;
  before(async () => {
    spec = await proxy.discover();
    // As the proxy reads it: a registry built from the descriptor set alone (every import must be there).
    const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, spec.proto));
    methods = new Map();
    for (const name of ["sdktest.EventSubscriber", "sdktest.Tally", "sdktest.Journal", "sdktest.AnyCounter"]) {
      const service = registry.getService(name);
      assert.ok(service, `${name} is in the descriptor set`);
      for (const m of service.methods) methods.set(`${name}.${m.name}`, m);
    }
  });

  test("the (cloudstate.eventing) options arrive intact: option 1081 on each subscriber method", () => {
    const option = (name: string) => {
      const method = methods.get(name)!;
      assert.ok(method.proto.options?.$unknown?.some((u) => u.no === 1081), `${name} carries field 1081`);
      return getOption(method, eventing);
    };
    const onAdded = option("sdktest.EventSubscriber.OnAdded");
    assert.deepEqual([onAdded.in?.source, onAdded.out?.destination], [
      { case: "eventLog", value: "counter" },
      { case: "topic", value: "counter-summaries" },
    ]);
    const onAnything = option("sdktest.EventSubscriber.OnAnything");
    assert.deepEqual([onAnything.in?.consumerGroup, onAnything.in?.source, onAnything.out?.destination], [
      "sdktest-group",
      { case: "topic", value: "inbox" },
      { case: "topic", value: "outbox" },
    ]);
    const observe = option("sdktest.Tally.Observe");
    assert.deepEqual([observe.in?.source, observe.out?.destination], [
      { case: "topic", value: "observations" },
      { case: "topic", value: "tallies" },
    ]);
    assert.deepEqual(option("sdktest.Journal.Record").in?.source, { case: "eventLog", value: "counter" });
    assert.deepEqual(option("sdktest.Tally.ObserveAny").in?.source, { case: "topic", value: "raw-observations" });
    assert.equal(methods.get("sdktest.Tally.Get")!.proto.options, undefined, "a method without options has none");
  });

  test("the Any methods' types resolve to google.protobuf.Any, and eventing.proto is in the set", () => {
    const onAnything = methods.get("sdktest.EventSubscriber.OnAnything")!;
    assert.deepEqual([onAnything.input.typeName, onAnything.output.typeName], ["google.protobuf.Any", "google.protobuf.Any"]);
    const files = fromBinary(FileDescriptorSetSchema, spec.proto).file.map((f) => f.name);
    for (const name of ["cloudstate/eventing.proto", "google/protobuf/any.proto", "sdktest/eventing.proto"]) assert.ok(files.includes(name), name);
  });
});

describe("actions", () => {
  const deliver = (payload: Any, metadata?: MetadataInit) =>
    proxy.handleUnary({ serviceName: "sdktest.EventSubscriber", name: "OnAnything", payload, metadata: metadataProto(metadata) });

  test("a method that takes Any gets each payload as is, and its Any reply goes back as is", async () => {
    const text = actionPayload(await deliver(textAny("hi"), ce("1", "inbox", "string")));
    assert.equal(text.typeUrl, "p.cloudstate.io/string");
    assert.deepEqual(eventData(text), { kind: "text", value: "HI" });

    const bytes = actionPayload(await deliver(bytesAny(Uint8Array.of(1, 2, 3))));
    assert.equal(bytes.typeUrl, "p.cloudstate.io/bytes");
    assert.deepEqual(eventData(bytes), { kind: "bytes", value: Uint8Array.of(3, 2, 1) });

    const proto = actionPayload(await deliver(protobufAny(AddedSchema, { amount: 3 })));
    assert.equal(proto.typeUrl, "type.googleapis.com/sdktest.domain.Added", "not re-wrapped as google.protobuf.Any");
    const added = eventData(proto, [AddedSchema]);
    assert.equal(added.kind === "protobuf" && added.message?.amount, 6);

    const meta = ce("7", "inbox", "com.example.Thing", { "ce-subject": "s1", "Content-Type": "application/json", "ce-time": "2024-05-06T07:08:09Z" });
    const json = actionPayload(await deliver(jsonAny("com.example.Thing", { a: [1] }), meta));
    assert.equal(json.typeUrl, "json.cloudstate.io/sdktest.Echo");
    assert.deepEqual(eventData(json), {
      kind: "json",
      typeName: "sdktest.Echo",
      value: { type: "com.example.Thing", value: { a: [1] }, event: "7 inbox s1 com.example.Thing application/json 2024-05-06T07:08:09.000Z" },
    });
  });

  test("no reply sends nothing (nothing to publish)", async () => {
    const response = await deliver(protobufAny(SummarySchema, { text: "a type the handler does not know" }), ce("2", "inbox", "sdktest.Summary"));
    assert.equal(response.response.case, undefined);
  });

  test("a client's call to a method that takes Any (the request packed as google.protobuf.Any) gets the same Any", async () => {
    const response = await proxy.actionUnary(EventSubscriber.method.onAnything, textAny("direct"));
    assert.deepEqual(eventData(actionPayload(response)), { kind: "text", value: "DIRECT" });
  });

  test("a typed subscriber: ctx.cloudEvent from the delivery's metadata, undefined for a client's call", async () => {
    const meta = ce("17", "counter", "sdktest.domain.Added", { "ce-subject": "acct-1", "Content-Type": "application/protobuf" });
    const delivered = await proxy.actionUnary(EventSubscriber.method.onAdded, { amount: 2 }, { metadata: meta });
    assert.equal(fromBinary(SummarySchema, actionPayload(delivered).value).text, "+2 [17 counter acct-1 sdktest.domain.Added application/protobuf -]");
    const direct = await proxy.actionUnary(EventSubscriber.method.onAdded, { amount: 2 });
    assert.equal(fromBinary(SummarySchema, actionPayload(direct).value).text, "+2 [direct]");
  });

  test("a typed method still rejects a payload of another type", async () => {
    const response = await proxy.handleUnary({ serviceName: "sdktest.EventSubscriber", name: "OnAdded", payload: textAny("x") });
    assert.equal(response.response.case, "failure");
    assert.match(response.response.value.description, /OnAdded expects a type\.googleapis\.com\/sdktest\.domain\.Added payload, got p\.cloudstate\.io\/string/);
  });
});

describe("value entities", () => {
  test("Any in and out, CloudEvent metadata, and no reply that still stores the state and runs its effects", async () => {
    const stream = proxy.valueEntity();
    stream.init("sdktest.Tally", "t1");

    const first = replyOf(await stream.rawCommand("ObserveAny", jsonAny("sdktest.Obs", { amount: 4 }), { metadata: ce("1", "obs", "sdktest.Obs") }));
    const firstPayload = payloadOf(first.clientAction);
    assert.equal(firstPayload.typeUrl, "json.cloudstate.io/sdktest.Total");
    assert.deepEqual(eventData(firstPayload), { kind: "json", typeName: "sdktest.Total", value: { total: 4 } });
    assert.equal(first.stateAction?.action.case, "update");

    // A client's call: the Any arrives wrapped, the handler sees the same Any.
    const second = replyOf(await stream.command(Tally.method.observeAny, jsonAny("sdktest.Obs", { amount: 1 })));
    assert.deepEqual(eventData(payloadOf(second.clientAction)), { kind: "json", typeName: "sdktest.Total", value: { total: 5 } });

    const ignored = replyOf(await stream.rawCommand("ObserveAny", textAny("noise")));
    assert.deepEqual([ignored.clientAction, ignored.stateAction, ignored.sideEffects.length], [undefined, undefined, 0]);

    const meta = ce("9", "observations", "sdktest.Observation", { "ce-subject": "t1" });
    const silent = replyOf(await stream.command(Tally.method.observe, { tallyId: "t1", amount: 0 }, { metadata: meta }));
    assert.equal(silent.clientAction, undefined, "no reply: no client action");
    assert.equal(silent.stateAction?.action.case, "update", "the state change still persists");
    assert.deepEqual(silent.sideEffects.map((e) => `${e.serviceName}.${e.commandName}`), ["sdktest.Audit.Record"], "the side effect still runs");

    const observed = replyOf(await stream.command(Tally.method.observe, { tallyId: "t1", amount: 2 }, { metadata: meta }));
    assert.equal(fromBinary(SummarySchema, payloadOf(observed.clientAction).value).text, "7 [9 observations t1 sdktest.Observation - -]");
    stream.end();
    await stream.ended;
  });
});

describe("event-sourced entities", () => {
  test("Any in and out, CloudEvent metadata on commands, and no reply that still runs its effects", async () => {
    const stream = proxy.eventSourced();
    stream.init("sdktest.Journal", "j1");

    const meta = ce("3", "counter", "sdktest.domain.Added", { "ce-subject": "source-entity" });
    const recorded = replyOf(await stream.rawCommand("Record", protobufAny(AddedSchema, { amount: 3 }), { metadata: meta }));
    assert.deepEqual(eventData(payloadOf(recorded.clientAction)), { kind: "json", typeName: "sdktest.Recorded", value: { value: 3, subject: "source-entity" } });
    assert.deepEqual(recorded.events.map((e) => fromBinary(AddedSchema, e.value).amount), [3]);

    const direct = replyOf(await stream.command(Journal.method.record, jsonAny("sdktest.Amount", { amount: 2 })));
    assert.deepEqual(eventData(payloadOf(direct.clientAction)), { kind: "json", typeName: "sdktest.Recorded", value: { value: 5, subject: null } });

    const skipped = replyOf(await stream.rawCommand("Record", textAny("skip"), { metadata: meta }));
    assert.deepEqual([skipped.clientAction, skipped.events.length], [undefined, 0]);
    assert.deepEqual(skipped.sideEffects.map((e) => e.commandName), ["Record"]);

    const refused = replyOf(await stream.rawCommand("Record", bytesAny(Uint8Array.of(1))));
    assert.equal(refused.clientAction?.action.case, "failure");
    assert.equal(refused.clientAction.action.value.description, "cannot record bytes");
    stream.end();
    await stream.ended;
  });
});

describe("CRDT entities", () => {
  test("a method that takes and gives Any, delivered or called", async () => {
    const stream = proxy.crdt();
    stream.init("sdktest.AnyCounter", "c1");
    const delivered = crdtMessageOf(await stream.rawCommand("Count", jsonAny("sdktest.Obs", { amount: 2 }), { metadata: ce("5", "counts", "sdktest.Obs") }), "reply");
    assert.deepEqual(eventData(payloadOf(delivered.clientAction)), { kind: "json", typeName: "sdktest.Total", value: { value: 2, event: "5 counts - sdktest.Obs - -" } });
    const called = crdtMessageOf(await stream.command(AnyCounter.method.count, jsonAny("sdktest.Obs", { amount: 3 })), "reply");
    assert.deepEqual(eventData(payloadOf(called.clientAction)), { kind: "json", typeName: "sdktest.Total", value: { value: 5, event: "direct" } });
    stream.end();
    await stream.ended;
  });
});
