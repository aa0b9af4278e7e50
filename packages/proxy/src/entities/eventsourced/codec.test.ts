// The event-sourced stream codec: the hand-read replies must be exactly what protobuf-es reads.
import assert from "node:assert/strict";
import { test } from "node:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { AnySchema, type Any } from "@bufbuild/protobuf/wkt";
import {
  ClientActionSchema,
  EventSourcedStreamInSchema,
  EventSourcedStreamOutSchema,
  MetadataSchema,
  SideEffectSchema,
  type ClientAction,
  type EventSourcedStreamOut,
} from "@cloudstate-ts/protocol";
import { commandFrame, decodeStreamOut, eventSourcedCodec } from "./codec.js";

function rng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = seed;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
type R = () => number;
const pick = <T>(r: R, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
const str = (r: R, max: number) => {
  const alphabet = [...pick(r, ["abc.XYZ/_-09", "äöü€😀中", "\u0000\u00ff\u0800"])];
  let s = "";
  for (let i = Math.floor(r() * (max + 1)); i > 0; i--) s += pick(r, alphabet);
  return s;
};
const bytesOf = (r: R, max: number) => Uint8Array.from({ length: Math.floor(r() * (max + 1)) }, () => Math.floor(r() * 256));
const anyOf = (r: R): Any => create(AnySchema, { typeUrl: r() < 0.1 ? "" : `type.googleapis.com/${str(r, 30)}`, value: bytesOf(r, r() < 0.1 ? 2000 : 40) });
const metadata = (r: R) =>
  create(MetadataSchema, {
    entries: Array.from({ length: Math.floor(r() * 3) }, () => ({
      key: str(r, 8),
      value: r() < 0.5 ? { case: "stringValue" as const, value: str(r, 10) } : { case: "bytesValue" as const, value: bytesOf(r, 10) },
    })),
  });

function clientAction(r: R): ClientAction | undefined {
  const x = r();
  if (x < 0.15) return undefined;
  if (x < 0.75) return create(ClientActionSchema, { action: { case: "reply", value: { payload: r() < 0.9 ? anyOf(r) : undefined, metadata: r() < 0.2 ? metadata(r) : undefined } } });
  if (x < 0.9) return create(ClientActionSchema, { action: { case: "forward", value: { serviceName: str(r, 10), commandName: str(r, 10), payload: anyOf(r), metadata: r() < 0.5 ? metadata(r) : undefined } } });
  return create(ClientActionSchema, { action: { case: "failure", value: { commandId: BigInt(Math.floor(r() * 100)), description: str(r, 20), restart: r() < 0.5 } } });
}

function randomOut(r: R): EventSourcedStreamOut {
  if (r() < 0.1) return create(EventSourcedStreamOutSchema, { message: { case: "failure", value: { commandId: 3n, description: str(r, 20), restart: r() < 0.5 } } });
  if (r() < 0.02) return create(EventSourcedStreamOutSchema, {});
  const commandId = pick(r, [0n, 1n, 127n, 128n, 2n ** 31n, 2n ** 49n - 1n, 2n ** 49n, 2n ** 53n + 3n, 2n ** 63n - 1n, -1n, -(2n ** 63n), BigInt(Math.floor(r() * 1e6))]);
  return create(EventSourcedStreamOutSchema, {
    message: {
      case: "reply",
      value: {
        commandId,
        clientAction: clientAction(r),
        sideEffects: Array.from({ length: r() < 0.8 ? 0 : Math.floor(r() * 3) }, () =>
          create(SideEffectSchema, { serviceName: str(r, 10), commandName: str(r, 10), payload: anyOf(r), synchronous: r() < 0.5 }),
        ),
        events: Array.from({ length: Math.floor(r() * 4) }, () => anyOf(r)),
        snapshot: r() < 0.3 ? anyOf(r) : undefined,
      },
    },
  });
}

const reference = (bytes: Buffer) => fromBinary(EventSourcedStreamOutSchema, bytes);

test("decodeStreamOut reads randomized messages exactly as protobuf-es fromBinary does", () => {
  const r = rng(42);
  for (let i = 0; i < 5_000; i++) {
    const bytes = Buffer.from(toBinary(EventSourcedStreamOutSchema, randomOut(r)));
    assert.deepStrictEqual(decodeStreamOut(bytes), reference(bytes), `case ${i}: ${bytes.toString("hex")}`);
  }
});

test("decodeStreamOut on corrupted bytes: the same result as protobuf-es, or an error where it errs too", () => {
  const r = rng(7);
  for (let i = 0; i < 5_000; i++) {
    const bytes = Buffer.from(toBinary(EventSourcedStreamOutSchema, randomOut(r)));
    if (bytes.length === 0) continue;
    const mutated = r() < 0.3 ? bytes.subarray(0, Math.floor(r() * bytes.length)) : Buffer.from(bytes);
    if (mutated === bytes || mutated.length === bytes.length) for (let k = 1 + Math.floor(r() * 3); k > 0; k--) mutated[Math.floor(r() * mutated.length)] = Math.floor(r() * 256);
    let want: EventSourcedStreamOut | Error;
    try {
      want = reference(mutated);
    } catch (e) {
      want = e as Error;
    }
    if (want instanceof Error) {
      assert.throws(() => decodeStreamOut(mutated), Error, `case ${i}: ${mutated.toString("hex")}`);
    } else {
      assert.deepStrictEqual(decodeStreamOut(mutated), want, `case ${i}: ${mutated.toString("hex")}`);
    }
  }
});

test("decodeStreamOut: unknown and repeated fields, invalid UTF-8 and long varints are read as protobuf-es reads them", () => {
  const any = (typeUrl: string, value: number[]) => [0x0a, typeUrl.length, ...Buffer.from(typeUrl), 0x12, value.length, ...value];
  const wrap = (reply: number[]) => Buffer.from([0x0a, reply.length, ...reply]);
  const cases: number[][] = [
    [0x08, 0x05, 0x30, 0x01], // an unknown varint field 6 in the reply
    [0x08, 0x05, 0x08, 0x07], // command_id twice: the last wins
    [0x2a, 5, ...any("a", [1]), 0x2a, 5, ...any("b", [2])], // snapshot twice: merged
    [0x22, 5, ...any("a", [1]), 0x22, 5, ...any("b", [2])], // two events
    [0x22, 6, 0x0a, 2, 0xc3, 0x28, 0x12, 0], // invalid UTF-8 in a type URL
    [0x22, 4, 0x0a, 1, 0x61, 0x0a, 1, 0x62].slice(0, 2).concat([0x0a, 1, 0x61]), // a short event
    [0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], // command_id -1 in ten bytes
    [0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01], // 2^49
    [0x12, 0x02, 0x0a, 0x00, 0x12, 0x02, 0x0a, 0x00], // client_action twice
    [0x12, 0x04, 0x0a, 0x00, 0x1a, 0x00], // reply and then failure in one client action
    [0x12, 0x06, 0x0a, 0x04, 0x0a, 0x00, 0x0a, 0x00], // a reply's payload twice
    [0x22, 0x03, 0x18, 0x01, 0x00].slice(0, 4), // an event with an unknown field
  ];
  for (const reply of cases) {
    const bytes = wrap(reply);
    let want: EventSourcedStreamOut | Error;
    try {
      want = reference(bytes);
    } catch (e) {
      want = e as Error;
    }
    if (want instanceof Error) assert.throws(() => decodeStreamOut(bytes), Error, bytes.toString("hex"));
    else assert.deepStrictEqual(decodeStreamOut(bytes), want, bytes.toString("hex"));
  }
});

test("the codec: commands as prepared frames, other messages framed from protobuf-es", () => {
  const payload = Buffer.from([1, 2, 3]);
  const command = commandFrame("cart-7", 9n, "AddItem", "type.googleapis.com/x.Y", payload);
  assert.equal(eventSourcedCodec.encode(command), command, "a prepared frame is written as it is");
  assert.deepEqual(
    fromBinary(EventSourcedStreamInSchema, command.subarray(5)),
    create(EventSourcedStreamInSchema, {
      message: { case: "command", value: { entityId: "cart-7", id: 9n, name: "AddItem", payload: { typeUrl: "type.googleapis.com/x.Y", value: payload } } },
    }),
  );
  const init = create(EventSourcedStreamInSchema, { message: { case: "init", value: { serviceName: "s", entityId: "e" } } });
  const framed = eventSourcedCodec.encode(init);
  assert.equal(framed.readUInt32BE(1), framed.length - 5);
  assert.deepEqual(fromBinary(EventSourcedStreamInSchema, framed.subarray(5)), init);
});
