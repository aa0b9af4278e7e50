// The hot message of every entity protocol, encoded by hand: a `cloudstate.Command` inside the
// stream's `…StreamIn` oneof, with the gRPC frame prefix, written into ONE Buffer; the client's
// payload bytes are copied once, straight into it. Byte for byte what protobuf-es `toBinary` writes
// for `{ message: { case: "command", value: { entityId, id, name, payload: Any{typeUrl, value} } } }`
// (fields in number order, proto3 defaults omitted, the Any always present), so the user function
// cannot tell the difference. Metadata and `streamed` are not written: commands that carry them are
// encoded with protobuf-es.
//
// Command{entity_id=1 string; id=2 int64; name=3 string; payload=4 Any}; Any{type_url=1; value=2 bytes}

/** The oneof field number of `command` in EventSourcedStreamIn (3), ValueEntityStreamIn (2), CrdtStreamIn (4). */
export function encodeCommandFrame(
  streamInField: number,
  entityId: string,
  id: bigint,
  name: string,
  typeUrl: string,
  payload: Uint8Array,
): Buffer {
  const entityIdLen = entityId.length === 0 ? 0 : Buffer.byteLength(entityId, "utf8");
  const nameLen = name.length === 0 ? 0 : Buffer.byteLength(name, "utf8");
  const typeUrlLen = typeUrl.length === 0 ? 0 : Buffer.byteLength(typeUrl, "utf8");
  const payloadLen = payload.length;
  const anyLen = (typeUrlLen === 0 ? 0 : 1 + varintSize(typeUrlLen) + typeUrlLen) + (payloadLen === 0 ? 0 : 1 + varintSize(payloadLen) + payloadLen);
  // int64 as protobuf writes it: negative values as their 64-bit two's complement (10 bytes).
  const idSmall = id >= 0n && id <= 0x7fff_ffffn;
  const idNum = idSmall ? Number(id) : 0;
  const idWire = idSmall ? 0n : BigInt.asUintN(64, id);
  const idLen = id === 0n ? 0 : 1 + (idSmall ? varintSize(idNum) : varintSize64(idWire));
  const commandLen =
    (entityIdLen === 0 ? 0 : 1 + varintSize(entityIdLen) + entityIdLen) +
    idLen +
    (nameLen === 0 ? 0 : 1 + varintSize(nameLen) + nameLen) +
    1 +
    varintSize(anyLen) +
    anyLen;
  const messageLen = varintSize((streamInField << 3) | 2) + varintSize(commandLen) + commandLen;
  const buf = Buffer.allocUnsafe(5 + messageLen);
  buf[0] = 0;
  buf.writeUInt32BE(messageLen, 1);
  let o = writeVarint(buf, 5, (streamInField << 3) | 2);
  o = writeVarint(buf, o, commandLen);
  if (entityIdLen !== 0) {
    buf[o++] = 0x0a;
    o = writeVarint(buf, o, entityIdLen);
    o += buf.write(entityId, o, "utf8");
  }
  if (idLen !== 0) {
    buf[o++] = 0x10;
    o = idSmall ? writeVarint(buf, o, idNum) : writeVarint64(buf, o, idWire);
  }
  if (nameLen !== 0) {
    buf[o++] = 0x1a;
    o = writeVarint(buf, o, nameLen);
    o += buf.write(name, o, "utf8");
  }
  buf[o++] = 0x22;
  o = writeVarint(buf, o, anyLen);
  if (typeUrlLen !== 0) {
    buf[o++] = 0x0a;
    o = writeVarint(buf, o, typeUrlLen);
    o += buf.write(typeUrl, o, "utf8");
  }
  if (payloadLen !== 0) {
    buf[o++] = 0x12;
    o = writeVarint(buf, o, payloadLen);
    buf.set(payload, o);
  }
  return buf;
}

/** Bytes of a non-negative 32-bit varint. */
function varintSize(v: number): number {
  return v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x20_0000 ? 3 : v < 0x1000_0000 ? 4 : 5;
}

function varintSize64(v: bigint): number {
  let n = 1;
  while (v >= 0x80n) {
    v >>= 7n;
    n++;
  }
  return n;
}

function writeVarint(buf: Buffer, o: number, v: number): number {
  while (v >= 0x80) {
    buf[o++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  buf[o++] = v;
  return o;
}

function writeVarint64(buf: Buffer, o: number, v: bigint): number {
  while (v >= 0x80n) {
    buf[o++] = Number(v & 0x7fn) | 0x80;
    v >>= 7n;
  }
  buf[o++] = Number(v);
  return o;
}
