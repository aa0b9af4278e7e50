// The hand-written Command encoder against protobuf-es: the same bytes for the same message.
import assert from "node:assert/strict";
import { test } from "node:test";
import { create, toBinary, type DescMessage } from "@bufbuild/protobuf";
import { CrdtStreamInSchema, EventSourcedStreamInSchema, ValueEntityStreamInSchema } from "@cloudstate-ts/protocol";
import { encodeCommandFrame } from "./command-frame.js";

/** A seeded generator (mulberry32), so a failure can be reproduced. */
function rng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = seed;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ALPHABETS = ["abcXYZ-_/.0123456789", "äöü€😀中文", "\u0000\u007f\u0080\u07ff\u0800\uffff", "\ud800x"];

function randomString(r: () => number, max: number): string {
  const n = Math.floor(r() * (max + 1));
  if (n === 0 || r() < 0.1) return "";
  const alphabet = [...ALPHABETS[Math.floor(r() * ALPHABETS.length)]!];
  let s = "";
  for (let i = 0; i < n; i++) s += alphabet[Math.floor(r() * alphabet.length)];
  return s;
}

function randomId(r: () => number): bigint {
  const picks = [0n, 1n, 127n, 128n, 16_383n, 16_384n, 0x7fff_ffffn, 0x8000_0000n, 0xffff_ffffn, 2n ** 53n + 1n, 2n ** 63n - 1n, -1n, -(2n ** 63n)];
  return r() < 0.5 ? picks[Math.floor(r() * picks.length)]! : BigInt(Math.floor(r() * 2 ** 40));
}

function randomPayload(r: () => number): Uint8Array {
  const sizes = [0, 1, 127, 128, 300, 16_384, 70_000];
  const n = r() < 0.3 ? sizes[Math.floor(r() * sizes.length)]! : Math.floor(r() * 200);
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(r() * 256);
  return b;
}

/** The reference: protobuf-es encodes the message, framed with flag 0 and a big-endian length. */
function reference(schema: DescMessage, command: object): Buffer {
  const bytes = toBinary(schema, create(schema, { message: { case: "command", value: command } } as never));
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(bytes.length, 1);
  return Buffer.concat([prefix, bytes]);
}

const STREAMS: [string, DescMessage, number][] = [
  ["EventSourcedStreamIn", EventSourcedStreamInSchema, 3],
  ["ValueEntityStreamIn", ValueEntityStreamInSchema, 2],
  ["CrdtStreamIn", CrdtStreamInSchema, 4],
];

for (const [name, schema, field] of STREAMS) {
  test(`encodeCommandFrame writes what protobuf-es writes for ${name}.command (randomized)`, () => {
    const r = rng(0xc0ffee + field);
    for (let i = 0; i < 2_000; i++) {
      const entityId = randomString(r, 40);
      const id = randomId(r);
      const commandName = randomString(r, 20);
      const typeUrl = r() < 0.1 ? "" : `type.googleapis.com/${randomString(r, 60)}`;
      const payload = randomPayload(r);
      const got = encodeCommandFrame(field, entityId, id, commandName, typeUrl, payload);
      const want = reference(schema, { entityId, id, name: commandName, payload: { typeUrl, value: payload } });
      assert.ok(got.equals(want), `case ${i}: ${JSON.stringify({ entityId, id: String(id), commandName, typeUrl, payloadBytes: payload.length })}`);
    }
  });
}

test("encodeCommandFrame: the bench's AddItem command, byte for byte", () => {
  const payload = Buffer.from("0a06636172742d3112056170706c651a054170706c652001", "hex");
  const typeUrl = "type.googleapis.com/com.example.shoppingcart.AddLineItem";
  const got = encodeCommandFrame(3, "cart-1", 1n, "AddItem", typeUrl, payload);
  assert.deepEqual(got, reference(EventSourcedStreamInSchema, { entityId: "cart-1", id: 1n, name: "AddItem", payload: { typeUrl, value: payload } }));
  assert.equal(got[0], 0, "not compressed");
  assert.equal(got.readUInt32BE(1), got.length - 5, "the prefix holds the message length");
});
