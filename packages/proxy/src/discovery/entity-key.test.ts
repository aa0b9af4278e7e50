import assert from "node:assert/strict";
import { test } from "node:test";
import { create, ScalarType, toBinary } from "@bufbuild/protobuf";
import { AddLineItemSchema } from "../../../../examples/shopping-cart/src/gen/com/example/shoppingcart/shoppingcart_pb.js";
import { ProxyError, Code } from "../errors.js";
import { keyFieldsOf, readEntityId, type KeyField } from "./entity-key.js";

const key = (name: string, number: number, scalar: ScalarType): KeyField => ({ name, number, scalar });

// Hand-written wire bytes: tag = (field << 3) | wire type.
function varintBytes(v: bigint): number[] {
  const out: number[] = [];
  let x = BigInt.asUintN(64, v);
  do {
    let b = Number(x & 0x7fn);
    x >>= 7n;
    if (x > 0n) b |= 0x80;
    out.push(b);
  } while (x > 0n);
  return out;
}
const str = (field: number, s: string) => {
  const b = Buffer.from(s);
  return [field * 8 + 2, ...varintBytes(BigInt(b.length)), ...b];
};
const vint = (field: number, v: bigint) => [field * 8, ...varintBytes(v)];

test("reads the key field option 1080 from generated descriptors", () => {
  assert.deepEqual(keyFieldsOf(AddLineItemSchema), [{ name: "user_id", number: 1, scalar: ScalarType.STRING }]);
});

test("reads a string key without decoding the other fields", () => {
  const bytes = toBinary(AddLineItemSchema, create(AddLineItemSchema, { userId: "alice", productId: "p", name: "n", quantity: 3 }));
  assert.equal(readEntityId(bytes, keyFieldsOf(AddLineItemSchema), "AddLineItem"), "alice");
});

test("joins several keys with '-' in field-number order and formats integers", () => {
  const keys = [key("a", 1, ScalarType.STRING), key("b", 2, ScalarType.INT64), key("c", 3, ScalarType.BOOL)];
  const bytes = Uint8Array.from([...vint(3, 1n), ...vint(2, -5n), ...str(1, "x")]);
  assert.equal(readEntityId(bytes, keys, "T"), "x--5-true");
});

const integerCases: [ScalarType, number[], string][] = [
  [ScalarType.INT32, vint(1, -1n), "-1"],
  [ScalarType.UINT32, vint(1, 4294967295n), "4294967295"],
  [ScalarType.UINT64, vint(1, 18446744073709551615n), "18446744073709551615"],
  [ScalarType.INT64, vint(1, 9007199254740993n), "9007199254740993"],
  [ScalarType.SINT32, vint(1, 3n), "-2"],
  [ScalarType.SINT64, vint(1, 4n), "2"],
  [ScalarType.FIXED32, [13, 0xff, 0xff, 0xff, 0xff], "4294967295"],
  [ScalarType.SFIXED32, [13, 0xfe, 0xff, 0xff, 0xff], "-2"],
  [ScalarType.FIXED64, [9, 1, 0, 0, 0, 0, 0, 0, 0], "1"],
  [ScalarType.SFIXED64, [9, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], "-1"],
];
for (const [scalar, bytes, expected] of integerCases) {
  test(`formats a ${ScalarType[scalar]} key as ${expected}`, () => {
    assert.equal(readEntityId(Uint8Array.from(bytes), [key("k", 1, scalar)], "T"), expected);
  });
}

test("the last occurrence of a repeated key field wins, as in protobuf", () => {
  const bytes = Uint8Array.from([...str(1, "first"), ...str(1, "second")]);
  assert.equal(readEntityId(bytes, [key("k", 1, ScalarType.STRING)], "T"), "second");
});

test("an absent integer key is its default, an absent string key is an error", () => {
  assert.equal(readEntityId(new Uint8Array(0), [key("n", 1, ScalarType.INT32)], "T"), "0");
  assert.throws(
    () => readEntityId(Uint8Array.from(str(2, "other")), [key("user_id", 1, ScalarType.STRING)], "T"),
    (e: unknown) => e instanceof ProxyError && e.code === Code.INVALID_ARGUMENT && /user_id/.test(e.message),
  );
});

const malformed: [string, number[]][] = [
  ["a truncated length", [0x0a, 0x05, 0x61]],
  ["a truncated varint", [0x08, 0xff]],
  ["field number 0", [0x00, 0x01]],
  ["wire type 7", [0x0f]],
  ["a truncated fixed64", [0x11, 1, 2]],
  ["a truncated fixed32", [0x15, 1]],
  ["an over-long varint", [0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]],
  ["invalid UTF-8 in the key", [0x0a, 0x02, 0xc3, 0x28]],
  ["a string key sent as a varint", [0x08, 0x01]],
];
for (const [what, bytes] of malformed) {
  test(`rejects ${what} as INVALID_ARGUMENT`, () => {
    assert.throws(
      () => readEntityId(Uint8Array.from(bytes), [key("k", 1, ScalarType.STRING)], "T"),
      (e: unknown) => e instanceof ProxyError && e.code === Code.INVALID_ARGUMENT,
    );
  });
}

test("skips groups' neighbours: unknown length-delimited and fixed fields before the key", () => {
  const bytes = Uint8Array.from([...str(5, "ignored"), 0x11, 1, 2, 3, 4, 5, 6, 7, 8, 0x1d, 1, 2, 3, 4, ...str(1, "k1")]);
  assert.equal(readEntityId(bytes, [key("k", 1, ScalarType.STRING)], "T"), "k1");
});
