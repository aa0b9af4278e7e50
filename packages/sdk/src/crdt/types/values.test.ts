import assert from "node:assert/strict";
import { test } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import { ProtocolError } from "../../errors.js";
import { ValueSchema } from "../../testdata/gen/sdktest/counter_pb.js";
import { codecOf } from "./values.js";

test("primitives travel as p.cloudstate.io/<type> with the value in field 1, even the default", () => {
  const cases: [Parameters<typeof codecOf>[0], unknown, Uint8Array][] = [
    ["string", "hé", new BinaryWriter().tag(1, WireType.LengthDelimited).string("hé").finish()],
    ["string", "", Uint8Array.of(0x0a, 0x00)],
    ["bytes", Uint8Array.of(1, 2), Uint8Array.of(0x0a, 0x02, 1, 2)],
    ["bool", true, Uint8Array.of(0x08, 0x01)],
    ["int32", -1, new BinaryWriter().tag(1, WireType.Varint).int32(-1).finish()],
    ["int64", 2n ** 40n, new BinaryWriter().tag(1, WireType.Varint).int64(2n ** 40n).finish()],
    ["double", 0.5, new BinaryWriter().tag(1, WireType.Bit64).double(0.5).finish()],
  ];
  for (const [type, value, bytes] of cases) {
    const codec = codecOf(type);
    const encoded = codec.encode(value);
    assert.equal(encoded.any.typeUrl, `p.cloudstate.io/${String(type)}`);
    assert.deepEqual([...encoded.any.value], [...bytes], `${String(type)} ${String(value)}`);
    assert.deepEqual(codec.decode(encoded.any).value, value);
  }
});

test("a primitive with field 1 missing decodes as the default value", () => {
  assert.equal(codecOf("string").decode(create(AnySchema, { typeUrl: "p.cloudstate.io/string" })).value, "");
  assert.equal(codecOf("int64").decode(create(AnySchema, { typeUrl: "p.cloudstate.io/int64" })).value, 0n);
});

test("messages travel as type.googleapis.com/<full name>, and init shapes are accepted", () => {
  const codec = codecOf(ValueSchema);
  const encoded = codec.encode({ value: 3 });
  assert.equal(encoded.any.typeUrl, "type.googleapis.com/sdktest.Value");
  assert.deepEqual([...encoded.any.value], [...toBinary(ValueSchema, create(ValueSchema, { value: 3 }))]);
  assert.equal(codec.encode(create(ValueSchema, { value: 3 })).key, encoded.key, "the same value is the same element");
  assert.notEqual(codec.encode({ value: 4 }).key, encoded.key);
  assert.equal((codec.decode(encoded.any).value as { value: number }).value, 3);
});

test("a value of the wrong type is a TypeError locally and a protocol error from the proxy", () => {
  assert.throws(() => codecOf("string").encode(3), TypeError);
  assert.throws(() => codecOf("int32").encode(2 ** 31), TypeError);
  assert.throws(() => codecOf(ValueSchema).encode(create(AnySchema)), /expected a sdktest.Value, got a google.protobuf.Any/);
  assert.throws(() => codecOf("string").decode(codecOf("int32").encode(1).any), ProtocolError);
  assert.throws(() => codecOf(ValueSchema).decode(codecOf("string").encode("x").any), ProtocolError);
  assert.throws(() => codecOf("float" as "string"), /unknown value type "float"/);
});
