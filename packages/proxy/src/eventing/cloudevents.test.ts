import assert from "node:assert/strict";
import { test } from "node:test";
import { anyOfData, cloudEventMetadata, dataKind, dataOfAny, structured } from "./cloudevents.js";

const text = (s: string) => new TextEncoder().encode(s);

test("delivered messages carry the binary-mode CloudEvent attributes", () => {
  const md = cloudEventMetadata({ id: "42", source: "shopping-cart", type: "shop.ItemAdded", subject: "cart-1", contentType: "application/protobuf", time: Date.UTC(2026, 0, 2, 3, 4, 5) });
  const entries = Object.fromEntries(md.entries.map((e) => [e.key, e.value.value]));
  assert.deepEqual(entries, {
    "ce-specversion": "1.0",
    "ce-id": "42",
    "ce-source": "shopping-cart",
    "ce-type": "shop.ItemAdded",
    "ce-subject": "cart-1",
    "ce-time": "2026-01-02T03:04:05.000Z",
    "Content-Type": "application/protobuf",
  });
  const bare = cloudEventMetadata({ id: "1", source: "s", type: "t", subject: "", contentType: "text/plain", time: 0 });
  assert.deepEqual(bare.entries.map((e) => e.key), ["ce-specversion", "ce-id", "ce-source", "ce-type", "Content-Type"]);
});

test("payload conventions: protobuf, JSON, text and bytes, and back", () => {
  assert.deepEqual(anyOfData("shop.Item", "application/protobuf", new Uint8Array([8, 1])), { typeUrl: "type.googleapis.com/shop.Item", value: new Uint8Array([8, 1]) });
  const json = anyOfData("shop.Item", "application/json; charset=utf-8", text('{"a":1}'));
  assert.equal(json.typeUrl, "json.cloudstate.io/shop.Item");
  assert.deepEqual([...json.value], [0x0a, 7, ...text('{"a":1}')], "JSON as field 1");
  assert.equal(anyOfData("x", "text/plain", text("hi")).typeUrl, "p.cloudstate.io/string");
  assert.equal(anyOfData("x", "image/png", new Uint8Array([1])).typeUrl, "p.cloudstate.io/bytes");
  const big = new Uint8Array(300).fill(7);
  const wrapped = anyOfData("x", "application/octet-stream", big);
  assert.deepEqual([...wrapped.value.subarray(0, 3)], [0x0a, 0xac, 0x02], "a two-byte length");

  for (const [type, contentType, data] of [
    ["shop.Item", "application/json", text('{"a":1}')],
    ["string", "text/plain; charset=utf-8", text("hello")],
    ["bytes", "application/octet-stream", big],
    ["shop.Item", "application/protobuf", new Uint8Array([8, 1])],
  ] as const) {
    assert.deepEqual(dataOfAny(anyOfData(type, contentType, data)), { type, contentType, data });
  }
  assert.throws(() => dataOfAny({ typeUrl: "p.cloudstate.io/string", value: new Uint8Array([0x0a, 9, 1]) }), /malformed/);
});

test("media types map to data kinds", () => {
  assert.equal(dataKind("application/cloudevents+json"), "json");
  assert.equal(dataKind("Application/X-Protobuf"), "protobuf");
  assert.equal(dataKind("text/csv"), "text");
  assert.equal(dataKind(""), "bytes");
});

test("the structured form keeps JSON as JSON, text as text and the rest as base64", () => {
  const base = { id: "1", source: "s", type: "t", subject: "", time: 0 };
  assert.deepEqual(structured({ ...base, contentType: "application/json" }, text('{"a":[1]}'), 5).data, { a: [1] });
  assert.equal(structured({ ...base, contentType: "application/json" }, text('{"a":[1]}'), 5).offset, "5");
  assert.equal(structured({ ...base, contentType: "text/plain" }, text("hé")).data, "hé");
  const proto = structured({ ...base, contentType: "application/protobuf" }, new Uint8Array([8, 1]));
  assert.equal(proto.data_base64, "CAE=");
  assert.equal(proto.data, undefined);
  assert.equal(proto.subject, undefined);
});
