// The generated protocol must match PROTOCOL.md's names and field numbers: they are the wire contract
// every existing Cloudstate SDK speaks.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { DescMessage } from "@bufbuild/protobuf";
import {
  ActionCommandSchema,
  CommandSchema,
  CrdtReplySchema,
  CrdtStreamOutSchema,
  EntitySpecSchema,
  EventSourcedReplySchema,
  EventSourcedStreamInSchema,
  file_cloudstate_entity_key,
  file_cloudstate_eventing,
  file_google_api_annotations,
  ProxyInfoSchema,
  ValueEntityReplySchema,
  EntityDiscovery,
  EventSourced,
  ActionProtocol,
} from "./index.js";

function numbers(schema: DescMessage): Record<string, number> {
  return Object.fromEntries(schema.fields.map((f) => [f.name, f.number]));
}

test("messages carry PROTOCOL.md's field numbers", () => {
  assert.equal(CommandSchema.typeName, "cloudstate.Command");
  assert.deepEqual(numbers(CommandSchema), {
    entity_id: 1, id: 2, name: 3, payload: 4, streamed: 5, metadata: 6,
  });
  assert.deepEqual(numbers(EventSourcedReplySchema), {
    command_id: 1, client_action: 2, side_effects: 3, events: 4, snapshot: 5,
  });
  assert.deepEqual(numbers(EventSourcedStreamInSchema), { init: 1, event: 2, command: 3 });
  assert.deepEqual(numbers(ValueEntityReplySchema), {
    command_id: 1, client_action: 2, side_effects: 3, state_action: 4,
  });
  assert.deepEqual(numbers(CrdtReplySchema), {
    command_id: 1, client_action: 2, side_effects: 4, state_action: 5, streamed: 6,
  });
  assert.deepEqual(numbers(CrdtStreamOutSchema), {
    reply: 1, streamed_message: 2, stream_cancelled_response: 3, failure: 4,
  });
  assert.deepEqual(numbers(ActionCommandSchema), { service_name: 2, name: 3, payload: 4, metadata: 5 });
  assert.deepEqual(numbers(EntitySpecSchema), { proto: 1, entities: 2, service_info: 3 });
  assert.deepEqual(numbers(ProxyInfoSchema), {
    protocol_major_version: 1, protocol_minor_version: 2, proxy_name: 3, proxy_version: 4, supported_entity_types: 5,
  });
});

test("services have the protocol's full names and lower-camel method names", () => {
  assert.equal(EntityDiscovery.typeName, "cloudstate.EntityDiscovery");
  assert.deepEqual(EntityDiscovery.methods.map((m) => m.name), ["discover", "reportError"]);
  assert.equal(EventSourced.typeName, "cloudstate.eventsourced.EventSourced");
  assert.equal(EventSourced.method.handle.methodKind, "bidi_streaming");
  assert.deepEqual(ActionProtocol.methods.map((m) => m.name), [
    "handleUnary", "handleStreamedIn", "handleStreamedOut", "handleStreamed",
  ]);
});

test("option extensions have the protocol's numbers", () => {
  assert.equal(file_cloudstate_entity_key.extensions[0]!.number, 1080);
  assert.equal(file_cloudstate_eventing.extensions[0]!.number, 1081);
  assert.equal(file_google_api_annotations.extensions[0]!.number, 72295728);
});
