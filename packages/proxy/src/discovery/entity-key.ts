// Entity keys: which fields of a command message are its key (read from descriptor options), and
// reading their values straight from the wire bytes, so the proxy never decodes the rest of a payload.
import { ScalarType, type DescField, type DescMessage } from "@bufbuild/protobuf";
import { ProxyError, Code } from "../errors.js";

/** `cloudstate.entity_key` (FieldOptions, bool); 50002 is the legacy number some SDKs still emit. */
export const ENTITY_KEY_OPTION = 1080;
export const LEGACY_ENTITY_KEY_OPTION = 50002;

export interface KeyField {
  readonly name: string;
  readonly number: number;
  readonly scalar: ScalarType;
}

/** Whether a field carries `(cloudstate.entity_key) = true`, under either option number. */
export function isEntityKeyField(field: DescField): boolean {
  const unknown = field.proto.options?.$unknown;
  if (!unknown) return false;
  for (const u of unknown) {
    if (u.no !== ENTITY_KEY_OPTION && u.no !== LEGACY_ENTITY_KEY_OPTION) continue;
    // A bool option is a varint; last one wins, as in protobuf.
    if (u.wireType === 0 && u.data.length > 0) return u.data[0] !== 0;
  }
  return false;
}

/** The key fields of a message, in field-number order; throws a readable error for unusable key types. */
export function keyFieldsOf(message: DescMessage): KeyField[] {
  const keys: KeyField[] = [];
  for (const field of message.fields) {
    if (!isEntityKeyField(field)) continue;
    if (field.fieldKind !== "scalar" && field.fieldKind !== "enum") {
      throw new Error(
        `entity key field ${message.typeName}.${field.name} is a ${field.fieldKind} field; an entity key must be a single scalar (string, integer, bool)`,
      );
    }
    const scalar = field.fieldKind === "enum" ? ScalarType.INT32 : field.scalar;
    if (scalar === ScalarType.FLOAT || scalar === ScalarType.DOUBLE) {
      throw new Error(`entity key field ${message.typeName}.${field.name} is a floating-point field; use a string or an integer`);
    }
    keys.push({ name: field.name, number: field.number, scalar });
  }
  return keys.sort((a, b) => a.number - b.number);
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Reads the entity id from a serialized message: the key fields' values joined with "-".
 * Walks only the top-level wire structure, skipping every other field without decoding it; malformed
 * framing is an INVALID_ARGUMENT. A missing (empty) string key is an INVALID_ARGUMENT too: an entity
 * needs an id.
 */
export function readEntityId(bytes: Uint8Array, keys: readonly KeyField[], typeName: string): string {
  if (keys.length === 0) return "";
  const values: (string | undefined)[] = new Array(keys.length);
  let pos = 0;
  const end = bytes.length;
  const fail = (why: string): never => {
    throw new ProxyError(Code.INVALID_ARGUMENT, `malformed ${typeName} message: ${why}`);
  };
  const varint = (): number => {
    // Key values fit in 64 bits; values beyond 2^53 are read exactly through BigInt below.
    let result = 0;
    let shift = 0;
    for (;;) {
      if (pos >= end) fail("truncated varint");
      const b = bytes[pos++]!;
      if (shift < 49) result += (b & 0x7f) * 2 ** shift;
      else return bigVarintFrom(b, result, shift);
      if ((b & 0x80) === 0) return result;
      shift += 7;
      if (shift > 63) fail("varint too long");
    }
  };
  // Slow path for varints above 2^49: rarely hit (large int64 keys), exact with BigInt.
  let big: bigint | undefined;
  const bigVarintFrom = (first: number, low: number, shift: number): number => {
    let value = BigInt(low) + (BigInt(first & 0x7f) << BigInt(shift));
    let b = first;
    while (b & 0x80) {
      if (pos >= end) fail("truncated varint");
      b = bytes[pos++]!;
      shift += 7;
      if (shift > 63) fail("varint too long");
      value += BigInt(b & 0x7f) << BigInt(shift);
    }
    big = value & 0xffffffffffffffffn;
    return Number(big);
  };
  while (pos < end) {
    big = undefined;
    const tag = varint();
    const fieldNo = Math.floor(tag / 8);
    const wireType = tag & 7;
    if (fieldNo === 0) fail("field number 0");
    const k = indexOfKey(keys, fieldNo);
    if (k >= 0 && wireType !== wireTypeOf(keys[k]!.scalar)) {
      fail(`entity key field ${keys[k]!.name} has wire type ${wireType}, expected ${wireTypeOf(keys[k]!.scalar)}`);
    }
    switch (wireType) {
      case 0: {
        const v = varint();
        if (k >= 0) values[k] = formatVarint(keys[k]!.scalar, v, big);
        break;
      }
      case 1:
        if (pos + 8 > end) fail("truncated fixed64");
        if (k >= 0) values[k] = formatFixed64(keys[k]!.scalar, bytes, pos);
        pos += 8;
        break;
      case 2: {
        const len = varint();
        if (pos + len > end) fail(`field ${fieldNo} is longer than the message`);
        if (k >= 0) {
          try {
            values[k] = utf8.decode(bytes.subarray(pos, pos + len));
          } catch {
            fail(`entity key field ${keys[k]!.name} is not valid UTF-8`);
          }
        }
        pos += len;
        break;
      }
      case 5:
        if (pos + 4 > end) fail("truncated fixed32");
        if (k >= 0) values[k] = formatFixed32(keys[k]!.scalar, bytes, pos);
        pos += 4;
        break;
      default:
        fail(`unsupported wire type ${wireType} for field ${fieldNo}`);
    }
  }
  let id = "";
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    let v = values[i];
    if (v === undefined) v = defaultValue(key.scalar);
    if (v === "") {
      throw new ProxyError(Code.INVALID_ARGUMENT, `missing entity key: field ${key.name} of ${typeName} must be set`);
    }
    id = i === 0 ? v : `${id}-${v}`;
  }
  return id;
}

function wireTypeOf(scalar: ScalarType): number {
  switch (scalar) {
    case ScalarType.STRING:
    case ScalarType.BYTES:
      return 2;
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
    case ScalarType.DOUBLE:
      return 1;
    case ScalarType.FIXED32:
    case ScalarType.SFIXED32:
    case ScalarType.FLOAT:
      return 5;
    default:
      return 0;
  }
}

function indexOfKey(keys: readonly KeyField[], fieldNo: number): number {
  for (let i = 0; i < keys.length; i++) if (keys[i]!.number === fieldNo) return i;
  return -1;
}

function defaultValue(scalar: ScalarType): string {
  switch (scalar) {
    case ScalarType.STRING:
    case ScalarType.BYTES:
      return "";
    case ScalarType.BOOL:
      return "false";
    default:
      return "0";
  }
}

function formatVarint(scalar: ScalarType, v: number, big: bigint | undefined): string {
  switch (scalar) {
    case ScalarType.BOOL:
      return v !== 0 ? "true" : "false";
    // Negative int32 values are sign-extended to ten bytes, so they arrive on the BigInt path.
    case ScalarType.INT32:
      return big === undefined ? String(v | 0) : String(BigInt.asIntN(32, big));
    case ScalarType.UINT32:
      return big === undefined ? String(v >>> 0) : String(BigInt.asUintN(32, big));
    case ScalarType.SINT32:
    case ScalarType.SINT64: {
      const u = big ?? BigInt(v);
      return String((u >> 1n) ^ -(u & 1n));
    }
    case ScalarType.INT64:
      return String(BigInt.asIntN(64, big ?? BigInt(v)));
    default:
      return String(big ?? v);
  }
}

function formatFixed64(scalar: ScalarType, b: Uint8Array, pos: number): string {
  const view = new DataView(b.buffer, b.byteOffset + pos, 8);
  return String(scalar === ScalarType.SFIXED64 ? view.getBigInt64(0, true) : view.getBigUint64(0, true));
}

function formatFixed32(scalar: ScalarType, b: Uint8Array, pos: number): string {
  const view = new DataView(b.buffer, b.byteOffset + pos, 4);
  return String(scalar === ScalarType.SFIXED32 ? view.getInt32(0, true) : view.getUint32(0, true));
}
