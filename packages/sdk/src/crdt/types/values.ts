// What the elements of sets, the keys of maps and the values of registers are, and how they travel
// as google.protobuf.Any: a protobuf message as "type.googleapis.com/<full name>", a primitive as
// "p.cloudstate.io/<name>" with the value in field 1 (the payload conventions of the other Cloudstate
// SDKs, so replicas served by them read ours). Two values are the same element when their Anys are
// byte for byte the same, as they are for the proxy.
import { create, fromBinary, isMessage, toBinary, type DescMessage, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import { AnySchema, type Any } from "@bufbuild/protobuf/wkt";
import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { typeNameOf, typeUrl } from "../../any.js";
import { ProtocolError } from "../../errors.js";

/** The primitive value types, by the name that picks them. */
export interface Primitives {
  string: string;
  bytes: Uint8Array;
  bool: boolean;
  int32: number;
  int64: bigint;
  double: number;
}

/** A primitive value type by name: "string", "bytes", "bool", "int32", "int64" or "double". */
export type PrimitiveType = keyof Primitives;

/** The type of a CRDT's elements, keys or values: a generated message schema, or a primitive by name. */
export type ValueType = DescMessage | PrimitiveType;

/** The values of a `ValueType`: `string` for "string", the message type for a schema. */
export type ValueOf<T extends ValueType> = T extends PrimitiveType ? Primitives[T] : T extends DescMessage ? MessageShape<T> : never;

/** What an operation takes for a `ValueType`: as `ValueOf`, and for messages also their init shape. */
export type ValueInit<T extends ValueType> = T extends PrimitiveType ? Primitives[T] : T extends DescMessage ? MessageInitShape<T> : never;

/** @internal A value with its wire form, and the string that identifies it in maps and sets. */
export interface Encoded {
  readonly value: unknown;
  readonly any: Any;
  readonly key: string;
}

/** @internal Encodes and decodes the values of one `ValueType`. */
export interface Codec {
  /** The type in messages, e.g. "string" or "com.example.User". */
  readonly name: string;
  /** Encodes a value the user gives; throws a TypeError for a value of another type. */
  encode(value: unknown): Encoded;
  /** Decodes a value from the proxy; throws a ProtocolError for an Any of another type. */
  decode(any: Any): Encoded;
}

/** @internal The codec of a value type (one per type, cached). */
export function codecOf(type: ValueType): Codec {
  if (typeof type === "string") {
    const codec = primitives[type];
    if (!codec) throw new TypeError(`unknown value type "${String(type)}": use a message schema or one of ${Object.keys(primitives).join(", ")}`);
    return codec;
  }
  let codec = messageCodecs.get(type);
  if (!codec) {
    codec = messageCodec(type);
    messageCodecs.set(type, codec);
  }
  return codec;
}

/** Short text for a value in error messages. */
export function describeValue(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "bigint") return `${value}n`;
  if (value instanceof Uint8Array) return `bytes(${value.length})`;
  if (isMessage(value)) return `a ${value.$typeName}`;
  if (typeof value === "object" && value !== null) return `an object (${value.constructor?.name ?? "no prototype"})`;
  return String(value);
}

function identity(any: Any): string {
  const bytes = any.value;
  return `${any.typeUrl}\n${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("latin1")}`;
}

function encoded(value: unknown, typeUrl: string, bytes: Uint8Array): Encoded {
  const any = create(AnySchema, { typeUrl, value: bytes });
  return { value, any, key: identity(any) };
}

const messageCodecs = new WeakMap<DescMessage, Codec>();

function messageCodec(schema: DescMessage): Codec {
  const url = typeUrl(schema);
  return {
    name: schema.typeName,
    encode(value) {
      if (isMessage(value) && value.$typeName !== schema.typeName) {
        throw new TypeError(`expected a ${schema.typeName}, got a ${value.$typeName}`);
      }
      if (typeof value !== "object" || value === null) throw new TypeError(`expected a ${schema.typeName}, got ${describeValue(value)}`);
      // create() returns a message of the schema as is, and builds one from an init shape.
      const message = create(schema, value as MessageInitShape<DescMessage>);
      return encoded(message, url, toBinary(schema, message));
    },
    decode(any) {
      if (typeNameOf(any.typeUrl) !== schema.typeName) throw new ProtocolError(`expected a ${url} value, got ${any.typeUrl || "an empty Any"}`);
      // Keep the proxy's Any: the identity of an element is its bytes as the proxy has them.
      return { value: fromBinary(schema, any.value), any, key: identity(any) };
    },
  };
}

/** A primitive "p.cloudstate.io/<name>": its value is field 1, written even when it is the default. */
function primitiveCodec<T>(
  name: PrimitiveType,
  check: (value: unknown) => T,
  write: (writer: BinaryWriter, value: T) => void,
  read: (reader: BinaryReader, wireType: WireType) => T | undefined,
  zero: T,
): Codec {
  const url = `p.cloudstate.io/${name}`;
  return {
    name,
    encode(raw) {
      const value = check(raw);
      const writer = new BinaryWriter();
      write(writer, value);
      return encoded(value, url, writer.finish());
    },
    decode(any) {
      if (any.typeUrl !== url) throw new ProtocolError(`expected a ${url} value, got ${any.typeUrl || "an empty Any"}`);
      const reader = new BinaryReader(any.value);
      let value = zero;
      try {
        while (reader.pos < reader.len) {
          const [field, wireType] = reader.tag();
          const got = field === 1 ? read(reader, wireType) : undefined;
          if (got === undefined) reader.skip(wireType, field);
          else value = got;
        }
      } catch (e) {
        throw new ProtocolError(`cannot decode a ${url} value: ${(e as Error).message}`);
      }
      return { value, any, key: identity(any) };
    },
  };
}

function typeError(expected: string, value: unknown): TypeError {
  return new TypeError(`expected ${expected}, got ${describeValue(value)}`);
}

const primitives: Record<PrimitiveType, Codec> = {
  string: primitiveCodec(
    "string",
    (v) => (typeof v === "string" ? v : throwError(typeError("a string", v))),
    (w, v) => w.tag(1, WireType.LengthDelimited).string(v),
    (r, t) => (t === WireType.LengthDelimited ? r.string() : undefined),
    "",
  ),
  bytes: primitiveCodec(
    "bytes",
    (v) => (v instanceof Uint8Array ? v : throwError(typeError("a Uint8Array", v))),
    (w, v) => w.tag(1, WireType.LengthDelimited).bytes(v),
    (r, t) => (t === WireType.LengthDelimited ? r.bytes() : undefined),
    new Uint8Array(0),
  ),
  bool: primitiveCodec(
    "bool",
    (v) => (typeof v === "boolean" ? v : throwError(typeError("a boolean", v))),
    (w, v) => w.tag(1, WireType.Varint).bool(v),
    (r, t) => (t === WireType.Varint ? r.bool() : undefined),
    false,
  ),
  int32: primitiveCodec(
    "int32",
    (v) => (typeof v === "number" && Number.isInteger(v) && v >= -(2 ** 31) && v < 2 ** 31 ? v : throwError(typeError("an int32", v))),
    (w, v) => w.tag(1, WireType.Varint).int32(v),
    (r, t) => (t === WireType.Varint ? r.int32() : undefined),
    0,
  ),
  int64: primitiveCodec(
    "int64",
    (v) => {
      const big = typeof v === "bigint" ? v : typeof v === "number" && Number.isSafeInteger(v) ? BigInt(v) : throwError(typeError("an int64 (bigint)", v));
      if (BigInt.asIntN(64, big) !== big) throw typeError("an int64 (bigint)", v);
      return big;
    },
    (w, v) => w.tag(1, WireType.Varint).int64(v),
    (r, t) => (t === WireType.Varint ? BigInt(r.int64()) : undefined),
    0n,
  ),
  double: primitiveCodec(
    "double",
    (v) => (typeof v === "number" ? v : throwError(typeError("a number", v))),
    (w, v) => w.tag(1, WireType.Bit64).double(v),
    (r, t) => (t === WireType.Bit64 ? r.double() : undefined),
    0,
  ),
};

function throwError(e: Error): never {
  throw e;
}
