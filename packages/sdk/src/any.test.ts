// The payload conventions of eventing (PROTOCOL.md §8): reading any payload with eventData, and
// building the JSON, text, bytes and protobuf ones.
import assert from "node:assert/strict";
import { test } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { AnySchema, StringValueSchema } from "@bufbuild/protobuf/wkt";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { bytesAny, eventData, jsonAny, protobufAny, textAny } from "./index.js";
import { AddedSchema, CounterStateSchema } from "./testdata/gen/sdktest/domain_pb.js";

const any = (typeUrl: string, value: Uint8Array) => create(AnySchema, { typeUrl, value });
const utf8 = (s: string) => new TextEncoder().encode(s);

test("jsonAny carries the JSON text in field 1 of json.cloudstate.io/<type>, and eventData parses it back", () => {
  const payload = jsonAny("com.example.Thing", { name: "x", n: [1, 2] });
  assert.equal(payload.typeUrl, "json.cloudstate.io/com.example.Thing");
  // The wire form other SDKs and the proxy use: a message whose field 1 is the JSON string.
  assert.deepEqual(payload.value, toBinary(StringValueSchema, create(StringValueSchema, { value: '{"name":"x","n":[1,2]}' })));
  assert.deepEqual(eventData(payload), { kind: "json", typeName: "com.example.Thing", value: { name: "x", n: [1, 2] } });
});

test("textAny and bytesAny use p.cloudstate.io/string and p.cloudstate.io/bytes, field 1", () => {
  const text = textAny("héllo");
  assert.equal(text.typeUrl, "p.cloudstate.io/string");
  assert.deepEqual(text.value, Uint8Array.of(0x0a, 6, ...utf8("héllo")));
  assert.deepEqual(eventData(text), { kind: "text", value: "héllo" });

  const bytes = bytesAny(Uint8Array.of(0, 255, 7));
  assert.equal(bytes.typeUrl, "p.cloudstate.io/bytes");
  assert.deepEqual(bytes.value, Uint8Array.of(0x0a, 3, 0, 255, 7));
  assert.deepEqual(eventData(bytes), { kind: "bytes", value: Uint8Array.of(0, 255, 7) });
});

test("an empty text or bytes payload (field 1 absent, as proto3 encodes it) reads as empty", () => {
  assert.equal(textAny("").value.length > 0, true, "written explicitly");
  assert.deepEqual(eventData(any("p.cloudstate.io/string", new Uint8Array(0))), { kind: "text", value: "" });
  assert.deepEqual(eventData(any("p.cloudstate.io/bytes", new Uint8Array(0))), { kind: "bytes", value: new Uint8Array(0) });
});

test("other fields are skipped and the last field 1 wins, as protobuf decoding does", () => {
  const value = new BinaryWriter().tag(1, WireType.LengthDelimited).string("first").tag(2, WireType.Varint).int32(5).tag(1, WireType.LengthDelimited).string("last").finish();
  assert.deepEqual(eventData(any("p.cloudstate.io/string", value)), { kind: "text", value: "last" });
});

test("a protobuf payload gives its type name and bytes, and the message when a schema matches", () => {
  const payload = protobufAny(AddedSchema, { amount: 3 });
  assert.equal(payload.typeUrl, "type.googleapis.com/sdktest.domain.Added");
  const unknown = eventData(payload);
  assert.equal(unknown.kind, "protobuf");
  assert.equal(unknown.typeName, "sdktest.domain.Added");
  assert.equal(unknown.message, undefined, "no schema given");
  assert.deepEqual(unknown.bytes, payload.value);

  const known = eventData(payload, [CounterStateSchema, AddedSchema]);
  assert.equal(known.kind === "protobuf" && known.message?.$typeName, "sdktest.domain.Added");
  assert.equal(known.kind === "protobuf" && known.message?.$typeName === "sdktest.domain.Added" && known.message.amount, 3);
  // The host part of a type URL carries no meaning.
  assert.equal(eventData(any("example.com/x/sdktest.domain.Added", payload.value), [AddedSchema]).kind, "protobuf");
});

test("JSON that does not parse throws a clear error", () => {
  const bad = any("json.cloudstate.io/T", toBinary(StringValueSchema, create(StringValueSchema, { value: "{not json" })));
  assert.throws(() => eventData(bad), (e: unknown) => e instanceof TypeError && /json\.cloudstate\.io\/T payload is not valid JSON/.test(e.message) && e.message.includes("{not json"));
  assert.throws(() => eventData(any("json.cloudstate.io/T", new Uint8Array(0))), /not valid JSON/, "no field 1: empty text");
});

test("a malformed field 1 throws a clear error", () => {
  assert.throws(() => eventData(any("p.cloudstate.io/string", Uint8Array.of(0x08, 0x01))), /p\.cloudstate\.io\/string payload is malformed: field 1 has wire type Varint/);
  assert.throws(() => eventData(any("p.cloudstate.io/bytes", Uint8Array.of(0x0a, 0x05, 0x61))), /p\.cloudstate\.io\/bytes payload is malformed/, "truncated");
  assert.throws(() => eventData(any("p.cloudstate.io/string", Uint8Array.of(0x0a, 0x02, 0xff, 0xfe))), /field 1 is not valid UTF-8/);
  assert.throws(() => eventData(any("json.cloudstate.io/T", Uint8Array.of(0x0a, 0x02, 0xc3))), /json\.cloudstate\.io\/T payload is malformed/);
});

test("a payload of no convention, or no type URL, throws; a protobuf payload that does not decode throws", () => {
  assert.throws(() => eventData(any("p.cloudstate.io/int32", Uint8Array.of(0x08, 1))), /p\.cloudstate\.io\/int32 is not a payload convention the SDK reads/);
  assert.throws(() => eventData(any("", new Uint8Array(0))), /no type URL/);
  assert.throws(() => eventData(any("type.googleapis.com/sdktest.domain.Added", Uint8Array.of(0x08)), [AddedSchema]), /does not decode as a sdktest\.domain\.Added/);
});

test("the builders reject what has no payload form", () => {
  assert.throws(() => jsonAny("T", undefined), /jsonAny\(T\): the value has no JSON form/);
  assert.throws(() => jsonAny("T", 1n), /jsonAny\(T\): the value has no JSON form/);
  const cycle: { self?: unknown } = {};
  cycle.self = cycle;
  assert.throws(() => jsonAny("T", cycle), /no JSON form/);
  assert.throws(() => jsonAny("", {}), /needs a type name/);
  assert.throws(() => textAny(5 as never), /takes a string/);
  assert.throws(() => bytesAny("x" as never), /takes a Uint8Array/);
  assert.throws(() => protobufAny(AddedSchema, create(CounterStateSchema) as never), /protobufAny\(sdktest\.domain\.Added\) was given a sdktest\.domain\.CounterState/);
});
