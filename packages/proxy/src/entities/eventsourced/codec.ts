// The event-sourced protocol stream's wire format on the proxy's side. Commands — one per client
// call — are encoded by hand straight into their gRPC frame (user-function/command-frame.ts); the
// rare init and event messages go through protobuf-es. Replies are read by a small decoder for
// their usual shape (command id, a client action, side effects, events, snapshot), which yields
// exactly what protobuf-es's `fromBinary` yields; anything else (a failure, unknown or repeated
// fields) is left to protobuf-es.
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import type { Any } from "@bufbuild/protobuf/wkt";
import {
  ClientActionSchema,
  EventSourcedStreamInSchema,
  EventSourcedStreamOutSchema,
  MetadataSchema,
  SideEffectSchema,
  type ClientAction,
  type EventSourcedReply,
  type EventSourcedStreamIn,
  type EventSourcedStreamOut,
  type Metadata,
  type Reply,
  type SideEffect,
} from "@cloudstate-ts/protocol";
import { encodeCommandFrame } from "../../user-function/command-frame.js";
import { frame, type FrameCodec } from "../../user-function/h2-channel.js";

/** What the entity writes: a protobuf-es message, or a whole frame from `commandFrame`. */
export type EventSourcedOutgoing = EventSourcedStreamIn | Buffer;

export const eventSourcedCodec: FrameCodec<EventSourcedOutgoing, EventSourcedStreamOut> = {
  encode: (message) => (message instanceof Uint8Array ? message : frame(toBinary(EventSourcedStreamInSchema, message))),
  decode: decodeStreamOut,
};

/** `EventSourcedStreamIn{command{entity_id, id, name, payload: Any{typeUrl, payload}}}` as one gRPC frame. */
export function commandFrame(entityId: string, id: bigint, name: string, typeUrl: string, payload: Uint8Array): Buffer {
  return encodeCommandFrame(3, entityId, id, name, typeUrl, payload);
}

/** Decodes an EventSourcedStreamOut exactly as `fromBinary(EventSourcedStreamOutSchema, bytes)` does. */
export function decodeStreamOut(bytes: Buffer): EventSourcedStreamOut {
  let out: EventSourcedStreamOut | undefined;
  try {
    out = tryDecodeReply(bytes);
  } catch {
    // Malformed somewhere: protobuf-es decides how (it is more lenient about nested lengths).
  }
  return out ?? fromBinary(EventSourcedStreamOutSchema, bytes);
}

// --- the usual reply, by hand ---------------------------------------------------------------------
// EventSourcedStreamOut{reply=1 EventSourcedReply}
// EventSourcedReply{command_id=1 int64; client_action=2 ClientAction; side_effects=3 repeated SideEffect;
//                   events=4 repeated Any; snapshot=5 Any}
// ClientAction{oneof action{reply=1 Reply, forward=2, failure=3}}; Reply{payload=1 Any; metadata=2 Metadata}
// Any{type_url=1 string; value=2 bytes}
// Each reader returns undefined when the bytes are not in the shape it knows; the caller then falls
// back to protobuf-es for the whole message.

/** A cursor over one message's bytes; `pos` advances, `end` bounds it. */
class Cursor {
  pos: number;
  constructor(
    readonly buf: Buffer,
    start: number,
    readonly end: number,
  ) {
    this.pos = start;
  }

  /** A varint of up to 32 bits (tags, lengths); -1 when longer or truncated. */
  uint32(): number {
    const buf = this.buf;
    let result = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      if (this.pos >= this.end) return -1;
      const b = buf[this.pos++]!;
      result += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return result <= 0xffff_ffff ? result : -1;
    }
    return -1;
  }

  /** A length-delimited field's end, or -1 when it does not fit. */
  lengthEnd(): number {
    const len = this.uint32();
    if (len < 0 || this.pos + len > this.end) return -1;
    return this.pos + len;
  }
}

/** int64 as protobuf-es reads it (a bigint, negative for the two's complement); undefined if malformed. */
function readInt64(c: Cursor): bigint | undefined {
  const buf = c.buf;
  let lo = 0;
  let shift = 0;
  // The fast path: up to 7 bytes (49 bits) fit a double exactly.
  while (shift < 49) {
    if (c.pos >= c.end) return undefined;
    const b = buf[c.pos++]!;
    lo += (b & 0x7f) * 2 ** shift;
    if (b < 0x80) return BigInt(lo);
    shift += 7;
  }
  let v = BigInt(lo);
  let s = 49n;
  for (let i = 0; i < 3; i++, s += 7n) {
    if (c.pos >= c.end) return undefined;
    const b = buf[c.pos++]!;
    v |= BigInt(b & 0x7f) << s;
    if (b < 0x80) return BigInt.asIntN(64, v);
  }
  return undefined;
}

function readAny(buf: Buffer, start: number, end: number): Any | undefined {
  const c = new Cursor(buf, start, end);
  let typeUrl = "";
  let value: Uint8Array = EMPTY;
  while (c.pos < end) {
    const tag = c.uint32();
    if (tag === 0x0a) {
      const e = c.lengthEnd();
      if (e < 0) return undefined;
      typeUrl = readString(buf, c.pos, e);
      c.pos = e;
    } else if (tag === 0x12) {
      const e = c.lengthEnd();
      if (e < 0) return undefined;
      value = buf.subarray(c.pos, e);
      c.pos = e;
    } else {
      return undefined;
    }
  }
  return { $typeName: "google.protobuf.Any", typeUrl, value };
}

const EMPTY = new Uint8Array(0);
// proto3 strings must be valid UTF-8: protobuf-es throws on anything else, and so do we.
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

function readString(buf: Buffer, start: number, end: number): string {
  for (let i = start; i < end; i++) if (buf[i]! >= 0x80) return strictUtf8.decode(buf.subarray(start, end));
  return buf.toString("latin1", start, end);
}

function readClientAction(buf: Buffer, start: number, end: number): ClientAction | undefined {
  const c = new Cursor(buf, start, end);
  // Only the one-reply shape by hand; a forward or failure is protobuf-es's.
  if (c.uint32() !== 0x0a) return fromBinary(ClientActionSchema, buf.subarray(start, end));
  const replyEnd = c.lengthEnd();
  if (replyEnd < 0 || replyEnd !== end) return fromBinary(ClientActionSchema, buf.subarray(start, end));
  const reply: Reply = { $typeName: "cloudstate.Reply" };
  let seen = 0;
  while (c.pos < replyEnd) {
    const tag = c.uint32();
    const e = c.lengthEnd();
    if (e < 0) return undefined;
    if (tag === 0x0a && !(seen & 1)) {
      const payload = readAny(buf, c.pos, e);
      if (payload === undefined) return undefined;
      reply.payload = payload;
      seen |= 1;
    } else if (tag === 0x12 && !(seen & 2)) {
      reply.metadata = fromBinary(MetadataSchema, buf.subarray(c.pos, e)) as Metadata;
      seen |= 2;
    } else {
      return undefined;
    }
    c.pos = e;
  }
  return { $typeName: "cloudstate.ClientAction", action: { case: "reply", value: reply } };
}

function tryDecodeReply(buf: Buffer): EventSourcedStreamOut | undefined {
  const top = new Cursor(buf, 0, buf.length);
  if (top.uint32() !== 0x0a) return undefined;
  const end = top.lengthEnd();
  if (end !== buf.length) return undefined; // a failure, an empty message, a second field: protobuf-es
  const c = new Cursor(buf, top.pos, end);
  const reply: EventSourcedReply = { $typeName: "cloudstate.eventsourced.EventSourcedReply", commandId: 0n, sideEffects: [], events: [] };
  let seen = 0;
  while (c.pos < end) {
    const tag = c.uint32();
    switch (tag) {
      case 0x08: {
        const id = readInt64(c);
        if (id === undefined) return undefined;
        reply.commandId = id;
        break;
      }
      case 0x12: {
        const e = c.lengthEnd();
        if (e < 0 || seen & 1) return undefined;
        const action = readClientAction(buf, c.pos, e);
        if (action === undefined) return undefined;
        reply.clientAction = action;
        seen |= 1;
        c.pos = e;
        break;
      }
      case 0x1a: {
        const e = c.lengthEnd();
        if (e < 0) return undefined;
        reply.sideEffects.push(fromBinary(SideEffectSchema, buf.subarray(c.pos, e)) as SideEffect);
        c.pos = e;
        break;
      }
      case 0x22: {
        const e = c.lengthEnd();
        if (e < 0) return undefined;
        const event = readAny(buf, c.pos, e);
        if (event === undefined) return undefined;
        reply.events.push(event);
        c.pos = e;
        break;
      }
      case 0x2a: {
        const e = c.lengthEnd();
        if (e < 0 || seen & 2) return undefined;
        const snapshot = readAny(buf, c.pos, e);
        if (snapshot === undefined) return undefined;
        reply.snapshot = snapshot;
        seen |= 2;
        c.pos = e;
        break;
      }
      default:
        return undefined;
    }
  }
  return { $typeName: "cloudstate.eventsourced.EventSourcedStreamOut", message: { case: "reply", value: reply } };
}
