// google.protobuf.Any as the protocol uses it: "type.googleapis.com/<full name>" + the message bytes;
// and the Cloudstate conventions for payloads that are not protobuf messages (eventing, PROTOCOL.md §8):
// JSON, text and bytes, each carried in field 1 of a one-field message.
import {
  create,
  fromBinary,
  isMessage,
  toBinary,
  type DescMessage,
  type Message,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import { AnySchema, type Any } from "@bufbuild/protobuf/wkt";
import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";

const prefix = "type.googleapis.com/";
const JSON_PREFIX = "json.cloudstate.io/";
const PRIMITIVE_PREFIX = "p.cloudstate.io/";
const TEXT_URL = `${PRIMITIVE_PREFIX}string`;
const BYTES_URL = `${PRIMITIVE_PREFIX}bytes`;

export function typeUrl(schema: DescMessage): string {
  return prefix + schema.typeName;
}

/** The full message name in a type URL (whatever the host part). */
export function typeNameOf(url: string): string {
  return url.slice(url.lastIndexOf("/") + 1);
}

/** Packs a message of `schema`; `url` lets hot paths pass a precomputed type URL. */
export function pack(schema: DescMessage, message: Message, url = typeUrl(schema)): Any {
  return create(AnySchema, { typeUrl: url, value: toBinary(schema, message) });
}

/** @internal Whether `schema` is google.protobuf.Any: such methods take and give payloads as they are. */
export function isAnySchema(schema: DescMessage): boolean {
  return schema.typeName === AnySchema.typeName;
}

/** @internal Whether a type URL names a protobuf message (not one of the JSON, text or bytes conventions). */
export function isProtobufUrl(url: string): boolean {
  return !url.startsWith(JSON_PREFIX) && !url.startsWith(PRIMITIVE_PREFIX);
}

/** @internal The media type of a payload by its convention, as a CloudEvent's Content-Type. */
export function contentTypeOf(url: string): string {
  if (url.startsWith(JSON_PREFIX)) return "application/json";
  if (url === TEXT_URL) return "text/plain; charset=utf-8";
  if (url.startsWith(PRIMITIVE_PREFIX)) return "application/octet-stream";
  return "application/protobuf";
}

/**
 * @internal A reply payload as the handler gave it: the message of the method's output type, or for
 * a method whose output is google.protobuf.Any, the Any itself (it is sent as is).
 */
export function unpackReply(output: DescMessage, payload: Any): Message {
  return isAnySchema(output) ? payload : fromBinary(output, payload.value);
}

/**
 * A payload decoded by the Cloudstate conventions (what `eventData` returns): a protobuf message
 * (decoded when its schema is known), JSON, text or bytes.
 */
export type EventData<M extends Message = Message> =
  | {
      readonly kind: "protobuf";
      /** The message's full name, e.g. "com.example.ItemAdded". */
      readonly typeName: string;
      /** The message, when one of the given schemas is its type. */
      readonly message?: M;
      /** The encoded message. */
      readonly bytes: Uint8Array;
    }
  | {
      readonly kind: "json";
      /** The type named in the URL (`json.cloudstate.io/<typeName>`). */
      readonly typeName: string;
      /** The parsed JSON. */
      readonly value: unknown;
    }
  | { readonly kind: "text"; readonly value: string }
  | { readonly kind: "bytes"; readonly value: Uint8Array };

/**
 * Reads a payload by the Cloudstate conventions, for handlers of methods that take
 * google.protobuf.Any (eventing subscribers get whatever the source carries): `json.cloudstate.io/<type>`
 * is JSON, `p.cloudstate.io/string` text, `p.cloudstate.io/bytes` bytes, and any other type URL a
 * protobuf message, decoded if `schemas` has its type. Throws a TypeError on a payload that breaks
 * its convention (JSON that does not parse, a malformed field 1, an unknown `p.cloudstate.io` type).
 */
export function eventData<const Schemas extends readonly DescMessage[] = []>(
  any: Any,
  schemas?: Schemas,
): EventData<MessageShape<Schemas[number]>> {
  const url = any.typeUrl;
  if (url.startsWith(JSON_PREFIX)) {
    const typeName = url.slice(JSON_PREFIX.length);
    const text = field1(any.value, url, "string") as string;
    try {
      return { kind: "json", typeName, value: JSON.parse(text) as unknown };
    } catch (e) {
      throw new TypeError(`the ${url} payload is not valid JSON (${(e as Error).message}): ${abbreviate(text)}`);
    }
  }
  if (url === TEXT_URL) return { kind: "text", value: field1(any.value, url, "string") as string };
  if (url === BYTES_URL) return { kind: "bytes", value: field1(any.value, url, "bytes") as Uint8Array };
  if (url.startsWith(PRIMITIVE_PREFIX)) {
    throw new TypeError(`${url} is not a payload convention the SDK reads (it reads ${TEXT_URL} and ${BYTES_URL})`);
  }
  if (!url) throw new TypeError("the payload has no type URL");
  const typeName = typeNameOf(url);
  const schema = schemas?.find((s) => s.typeName === typeName);
  if (!schema) return { kind: "protobuf", typeName, bytes: any.value };
  let message: Message;
  try {
    message = fromBinary(schema, any.value);
  } catch (e) {
    throw new TypeError(`the ${url} payload does not decode as a ${typeName}: ${(e as Error).message}`);
  }
  return { kind: "protobuf", typeName, message: message as MessageShape<Schemas[number]>, bytes: any.value };
}

/**
 * A protobuf message as a payload (`type.googleapis.com/<full name>`): for the reply of a method
 * whose output is google.protobuf.Any, e.g. an event to publish.
 */
export function protobufAny<S extends DescMessage>(schema: S, message: MessageInitShape<S>): Any {
  if (isMessage(message) && message.$typeName !== schema.typeName) {
    throw new TypeError(`protobufAny(${schema.typeName}) was given a ${message.$typeName}`);
  }
  return pack(schema, create(schema, message));
}

/**
 * A JSON payload (`json.cloudstate.io/<typeName>`, the JSON text in field 1): how a CloudEvent with
 * JSON data travels. Throws a TypeError if `value` has no JSON form (undefined, a function, a bigint, a cycle).
 */
export function jsonAny(typeName: string, value: unknown): Any {
  if (typeof typeName !== "string" || !typeName) throw new TypeError("jsonAny() needs a type name, e.g. jsonAny(\"com.example.ItemAdded\", {...})");
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (e) {
    throw new TypeError(`jsonAny(${typeName}): the value has no JSON form: ${(e as Error).message}`);
  }
  if (text === undefined) throw new TypeError(`jsonAny(${typeName}): the value has no JSON form (${typeof value})`);
  return create(AnySchema, { typeUrl: JSON_PREFIX + typeName, value: encodeField1(text) });
}

/** A text payload (`p.cloudstate.io/string`, the text in field 1): a CloudEvent with text data. */
export function textAny(text: string): Any {
  if (typeof text !== "string") throw new TypeError(`textAny() takes a string, got ${typeof text}`);
  return create(AnySchema, { typeUrl: TEXT_URL, value: encodeField1(text) });
}

/** A bytes payload (`p.cloudstate.io/bytes`, the bytes in field 1): a CloudEvent with binary data. */
export function bytesAny(bytes: Uint8Array): Any {
  if (!(bytes instanceof Uint8Array)) throw new TypeError("bytesAny() takes a Uint8Array");
  return create(AnySchema, { typeUrl: BYTES_URL, value: encodeField1(bytes) });
}

function encodeField1(value: string | Uint8Array): Uint8Array {
  const writer = new BinaryWriter().tag(1, WireType.LengthDelimited);
  return (typeof value === "string" ? writer.string(value) : writer.bytes(value)).finish();
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Field 1 of a one-field message (the last occurrence wins, other fields are skipped, as protobuf
 * decoding does); absent, it is "" or no bytes. Throws a TypeError naming `url` if the bytes are malformed.
 */
function field1(bytes: Uint8Array, url: string, kind: "string" | "bytes"): string | Uint8Array {
  let found: Uint8Array | undefined;
  try {
    const reader = new BinaryReader(bytes);
    while (reader.pos < reader.len) {
      const [no, wireType] = reader.tag();
      if (no !== 1) {
        reader.skip(wireType);
        continue;
      }
      if (wireType !== WireType.LengthDelimited) {
        throw new TypeError(`field 1 has wire type ${WireType[wireType] ?? wireType}, expected LengthDelimited (a ${kind})`);
      }
      found = reader.bytes();
    }
  } catch (e) {
    throw new TypeError(`the ${url} payload is malformed: ${(e as Error).message}`);
  }
  // A copy, as a plain Uint8Array: not a view of the payload (which gRPC may give as a Buffer).
  if (kind === "bytes") return found ? Uint8Array.from(found) : new Uint8Array(0);
  try {
    return found ? strictUtf8.decode(found) : "";
  } catch {
    throw new TypeError(`the ${url} payload is malformed: field 1 is not valid UTF-8`);
  }
}

function abbreviate(text: string): string {
  return JSON.stringify(text.length > 60 ? `${text.slice(0, 60)}…` : text);
}
