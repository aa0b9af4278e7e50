// Direction (a), eventing: the suite plays the proxy of PROTOCOL.md §8 — it reads the eventing
// options (1081) in the descriptor set the user function sends at discovery, delivers event-log
// events and JSON topic messages to EventingTckModel as the proxy does (an ActionCommand whose
// payload is the event, with the CloudEvent attributes as metadata), and checks each answer: a reply,
// a forward to EventingTwo, no reply, a JSON answer.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { create, createFileRegistry, fromBinary, getOption, toBinary, type DescMethod } from "@bufbuild/protobuf";
import { AnySchema, BytesValueSchema, FileDescriptorSetSchema, StringValueSchema, type Any } from "@bufbuild/protobuf/wkt";
import type { MetadataInit } from "@cloudstate-ts/sdk";
import type { ActionResponse, EntitySpec } from "@cloudstate-ts/sdk/testing";
import { eventing, type Eventing } from "../gen/cloudstate/eventing_pb.js";
import {
  EmitResponseSchema,
  EventingEventSchema,
  EventingTckModel,
  EventingTwo,
  EventSourcedEventingSource,
  RecordRequestSchema,
  ResponseSchema,
} from "../gen/cloudstate/tck/model/eventing_pb.js";
import { EVENTING_PERSISTENCE_IDS, EVENTING_STEP, EVENTING_TOPICS, JSON_ANSWER_TYPE } from "../model/index.js";
import { actionOf, expectForward, expectNoReply, expectReply, unpack } from "./replies.js";
import { startUserFunction, type UserFunctionUnderTest } from "./user-function.js";

const EVENT_TYPE = EventingEventSchema.typeName;
const JSON_PREFIX = "json.cloudstate.io/";

/** The metadata the proxy sends with an event of the event log (binary-mode CloudEvent, PROTOCOL.md §8). */
function eventLogMetadata(offset: number, entityId: string): MetadataInit {
  return {
    "ce-specversion": "1.0",
    "ce-id": String(offset),
    "ce-source": EVENTING_PERSISTENCE_IDS.source,
    "ce-type": EVENT_TYPE,
    "ce-subject": entityId,
    "ce-time": new Date().toISOString(),
    "Content-Type": "application/protobuf",
  };
}

/** A JSON payload as the proxy delivers one: `json.cloudstate.io/<type>`, the JSON text in field 1. */
const jsonPayload = (type: string, json: string): Any =>
  create(AnySchema, { typeUrl: JSON_PREFIX + type, value: toBinary(BytesValueSchema, create(BytesValueSchema, { value: new TextEncoder().encode(json) })) });

describe("direction (a) — eventing", () => {
  let uf: UserFunctionUnderTest;
  let spec: EntitySpec;

  before(async () => {
    uf = await startUserFunction();
    spec = await uf.driver.discover();
  });
  after(() => uf.close());

  /** Delivers an EventingEvent of the event log to ConsumeEvent, as the proxy does. */
  const deliver = (value: string, offset: number, entityId = "source-1"): Promise<ActionResponse> =>
    uf.driver.actionUnary(EventingTckModel.method.consumeEvent, { value }, { metadata: eventLogMetadata(offset, entityId) });

  test("eventing: discovery lists the subscriber's methods with their eventing option (1081) intact", () => {
    const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, spec.proto));
    const service = registry.getService(EventingTckModel.typeName);
    assert.ok(service, `eventing: the descriptor set does not describe ${EventingTckModel.typeName}`);
    const expected: Record<string, { in: [source: "eventLog" | "topic", name: string]; out: string }> = {
      ConsumeEvent: { in: ["eventLog", EVENTING_PERSISTENCE_IDS.source], out: EVENTING_TOPICS.out },
      ConsumeJson: { in: ["topic", EVENTING_TOPICS.json], out: EVENTING_TOPICS.jsonOut },
    };
    for (const [name, want] of Object.entries(expected)) {
      const method: DescMethod | undefined = service.methods.find((m) => m.name === name);
      assert.ok(method, `eventing: ${service.typeName}.${name} is missing from the descriptor set`);
      const option: Eventing = getOption(method, eventing);
      const what: string = `eventing: the (cloudstate.eventing) option of ${service.typeName}.${name}`;
      assert.deepEqual([option.in?.source.case, option.in?.source.value], want.in, `${what}: in`);
      assert.equal(option.out?.destination.case, "topic", `${what}: out is a topic`);
      assert.equal(option.out.destination.value, want.out, `${what}: out.topic`);
    }
    assert.equal(
      spec.entities.find((e) => e.serviceName === EventSourcedEventingSource.typeName)?.persistenceId,
      EVENTING_PERSISTENCE_IDS.source,
      "eventing: the event log ConsumeEvent consumes is the persistence id of EventSourcedEventingSource",
    );
  });

  test("eventing: the event source journals one EventingEvent per emitted value, in order", async () => {
    const stream = uf.driver.eventSourced();
    try {
      stream.init(EventSourcedEventingSource.typeName, "journal");
      const reply = await stream.command(EventSourcedEventingSource.method.emit, { id: "journal", values: [EVENTING_STEP.reply("a"), EVENTING_STEP.noReply] });
      assert.equal(reply?.message.case, "reply", "eventing: Emit answers with a reply");
      const r = reply.message.value;
      const events = r.events.map((e, i) => unpack(e, EventingEventSchema, `eventing: Emit (event ${i + 1})`).value);
      assert.deepEqual(events, ["reply:a", "noreply"], "eventing: one EventingEvent per value, in order");
      assert.equal(expectReply(r.clientAction?.action, EmitResponseSchema, "eventing: Emit").events, 2, "eventing: Emit answers the entity's number of events");
    } finally {
      stream.cancel();
    }
  });

  test("eventing: an event-log event is consumed: a reply step answers with its reply (what the proxy publishes)", async () => {
    const response = await deliver(EVENTING_STEP.reply("hello"), 1);
    assert.equal(expectReply(actionOf(response, "eventing: reply step"), ResponseSchema, "eventing: reply step").message, "hello", "eventing: the reply's message");
    assert.deepEqual(response.sideEffects, [], "eventing: a reply step has no side effects");
  });

  test("eventing: a forward step forwards the consumed event to EventingTwo.Record, with the event's subject", async () => {
    const response = await deliver(EVENTING_STEP.forward("target-1"), 2, "source-entity");
    const payload = expectForward(
      actionOf(response, "eventing: forward step"),
      { service: EventingTwo.typeName, method: "Record", input: RecordRequestSchema },
      "eventing: forward step",
    );
    assert.deepEqual(payload, { id: "target-1", value: "source-entity" }, "eventing: the forward's payload (id from the step, value = ce-subject)");
    assert.deepEqual(response.sideEffects, [], "eventing: a forward step has no side effects");
  });

  test("eventing: a noreply step answers with nothing (nothing to publish)", async () => {
    const response = await deliver(EVENTING_STEP.noReply, 3);
    expectNoReply(actionOf(response, "eventing: noreply step"), "eventing: noreply step");
    assert.deepEqual(response.sideEffects, [], "eventing: a noreply step has no side effects");
  });

  test("eventing: a JSON event (json.cloudstate.io) to the method taking Any is answered with JSON", async () => {
    const type = "com.example.tck.Greeting";
    const response = await uf.driver.handleUnary({
      serviceName: EventingTckModel.typeName,
      name: "ConsumeJson",
      payload: jsonPayload(type, JSON.stringify({ greeting: "hi", n: 1 })),
      metadata: {
        entries: Object.entries({
          "ce-specversion": "1.0",
          "ce-id": "json-1",
          "ce-source": "tck",
          "ce-type": type,
          "Content-Type": "application/json",
        }).map(([key, value]) => ({ key, value: { case: "stringValue" as const, value } })),
      },
    });
    const action = actionOf(response, "eventing: JSON event");
    assert.equal(action.case, "reply", `eventing: JSON event: expected a reply, got ${action.case ?? "no client action"}`);
    const payload = action.value.payload;
    assert.equal(payload?.typeUrl, JSON_PREFIX + JSON_ANSWER_TYPE, "eventing: the answer is JSON (json.cloudstate.io/<type>)");
    const text = fromBinary(StringValueSchema, payload.value).value;
    assert.deepEqual(JSON.parse(text), { type, id: "json-1", received: { greeting: "hi", n: 1 } }, "eventing: the JSON answer (field 1)");
  });

  test("eventing: a payload that is not JSON to the JSON subscriber gets no reply", async () => {
    const response = await uf.driver.handleUnary({
      serviceName: EventingTckModel.typeName,
      name: "ConsumeJson",
      payload: create(AnySchema, { typeUrl: "p.cloudstate.io/string", value: toBinary(StringValueSchema, create(StringValueSchema, { value: "plain text" })) }),
    });
    expectNoReply(actionOf(response, "eventing: text event"), "eventing: text event");
  });
});
