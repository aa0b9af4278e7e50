// CloudEvents as eventing carries them (PROTOCOL.md §8): binary-mode metadata on every delivered
// message (ce-id, ce-source, ce-specversion, ce-type, ce-subject, Content-Type, ce-time), the Any
// conventions for payloads that are not protobuf, and the JSON (structured) form used over HTTP.
import { create, type Registry, fromJson, toBinary, type JsonValue } from "@bufbuild/protobuf";
import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { MetadataSchema, type Metadata } from "@cloudstate-ts/protocol";

export const SPEC_VERSION = "1.0";

/** The type URL prefixes of PROTOCOL.md §8. */
export const TypeUrls = {
  protobuf: "type.googleapis.com/",
  json: "json.cloudstate.io/",
  string: "p.cloudstate.io/string",
  bytes: "p.cloudstate.io/bytes",
} as const;

export const ContentTypes = {
  protobuf: "application/protobuf",
  json: "application/json",
  text: "text/plain; charset=utf-8",
  bytes: "application/octet-stream",
} as const;

/** What a consumer sees of a message: its CloudEvent attributes and its data. */
export interface CloudEventAttributes {
  readonly id: string;
  readonly source: string;
  readonly type: string;
  /** "" when none. */
  readonly subject: string;
  readonly contentType: string;
  /** ms since the epoch; 0 when unknown. */
  readonly time: number;
}

/**
 * Metadata of a delivery (not a CloudEvent attribute: it is about the consumer, not the message):
 * the consumer's committed offset. No message at or below it is ever delivered again, so a
 * subscriber that remembers what it applied, to recognise redeliveries, may forget all of that.
 */
export const COMMITTED_OFFSET = "cloudstate-committed-offset";

/** The binary-mode metadata of a delivered message, and the consumer's committed offset when given. */
export function cloudEventMetadata(event: CloudEventAttributes, committed?: number): Metadata {
  const entries: [string, string][] = [
    ["ce-specversion", SPEC_VERSION],
    ["ce-id", event.id],
    ["ce-source", event.source],
    ["ce-type", event.type],
  ];
  if (event.subject !== "") entries.push(["ce-subject", event.subject]);
  if (event.time > 0) entries.push(["ce-time", new Date(event.time).toISOString()]);
  entries.push(["Content-Type", event.contentType]);
  if (committed !== undefined) entries.push([COMMITTED_OFFSET, String(committed)]);
  return create(MetadataSchema, { entries: entries.map(([key, value]) => ({ key, value: { case: "stringValue" as const, value } })) });
}

export interface AnyPayload {
  readonly typeUrl: string;
  readonly value: Uint8Array;
}

/** The kind of data a media type carries. */
export function dataKind(contentType: string): "protobuf" | "json" | "text" | "bytes" {
  const type = contentType.split(";")[0]!.trim().toLowerCase();
  if (type === "application/protobuf" || type === "application/x-protobuf" || type === "application/vnd.google.protobuf") return "protobuf";
  if (type === "application/json" || type.endsWith("+json")) return "json";
  if (type.startsWith("text/")) return "text";
  return "bytes";
}

/** A topic message's data as the Any a user function gets (PROTOCOL.md §8 conventions). */
export function anyOfData(type: string, contentType: string, data: Uint8Array): AnyPayload {
  switch (dataKind(contentType)) {
    case "protobuf":
      return { typeUrl: TypeUrls.protobuf + type, value: data };
    case "json":
      return { typeUrl: TypeUrls.json + type, value: field1(data) };
    case "text":
      return { typeUrl: TypeUrls.string, value: field1(data) };
    case "bytes":
      return { typeUrl: TypeUrls.bytes, value: field1(data) };
  }
}

/** A reply (an Any) as topic data: its CloudEvent type, media type and bytes; the inverse of anyOfData. */
export function dataOfAny(any: AnyPayload): { type: string; contentType: string; data: Uint8Array } {
  const { typeUrl, value } = any;
  if (typeUrl.startsWith(TypeUrls.json)) return { type: typeUrl.slice(TypeUrls.json.length), contentType: ContentTypes.json, data: readField1(value, typeUrl) };
  if (typeUrl === TypeUrls.string) return { type: "string", contentType: ContentTypes.text, data: readField1(value, typeUrl) };
  if (typeUrl === TypeUrls.bytes) return { type: "bytes", contentType: ContentTypes.bytes, data: readField1(value, typeUrl) };
  // Any other host part names a protobuf type too (the part before the last "/" carries no meaning).
  return { type: typeUrl.slice(typeUrl.lastIndexOf("/") + 1), contentType: ContentTypes.protobuf, data: value };
}

/**
 * JSON data addressed to a method that takes its type as a message: transcoded to protobuf with
 * the user's descriptors, so outside publishers can send JSON to typed subscribers.
 */
export function protobufFromJson(registry: Registry, typeName: string, json: Uint8Array): Uint8Array {
  const schema = registry.getMessage(typeName);
  if (schema === undefined) throw new Error(`unknown message type ${typeName}`);
  const text = new TextDecoder("utf-8", { fatal: true }).decode(json);
  return toBinary(schema, fromJson(schema, JSON.parse(text) as JsonValue, { registry }));
}

/** `{ bytes value = 1 }`: how the conventions wrap JSON, text and bytes. */
function field1(data: Uint8Array): Uint8Array {
  if (data.length === 0) return new Uint8Array(0);
  return new BinaryWriter().tag(1, WireType.LengthDelimited).bytes(data).finish();
}

/** Field 1 (length-delimited) of a wrapper; other fields are skipped, a malformed one is an error. */
function readField1(value: Uint8Array, typeUrl: string): Uint8Array {
  const reader = new BinaryReader(value);
  let found: Uint8Array = new Uint8Array(0);
  try {
    while (reader.pos < reader.len) {
      const [no, wireType] = reader.tag();
      if (no === 1 && wireType === WireType.LengthDelimited) found = reader.bytes();
      else reader.skip(wireType);
    }
  } catch {
    throw new Error(`malformed ${typeUrl} value`);
  }
  return found;
}

/** The structured (JSON) form of a CloudEvent, as served over SSE and accepted over HTTP. */
export interface StructuredCloudEvent {
  specversion: string;
  id: string;
  source: string;
  type: string;
  subject?: string;
  time?: string;
  datacontenttype: string;
  data?: unknown;
  data_base64?: string;
  /** Extension: where the message sits in its topic. */
  offset?: string;
}

/** JSON data as JSON, text as a string, everything else base64 (CloudEvents JSON format). */
export function structured(event: CloudEventAttributes, data: Uint8Array, offset?: number): StructuredCloudEvent {
  const out: StructuredCloudEvent = {
    specversion: SPEC_VERSION,
    id: event.id,
    source: event.source,
    type: event.type,
    datacontenttype: event.contentType,
  };
  if (event.subject !== "") out.subject = event.subject;
  if (event.time > 0) out.time = new Date(event.time).toISOString();
  if (offset !== undefined) out.offset = String(offset);
  const kind = dataKind(event.contentType);
  const text = kind === "json" || kind === "text" ? decodeUtf8(data) : undefined;
  if (kind === "json" && text !== undefined) {
    try {
      out.data = JSON.parse(text);
      return out;
    } catch {
      // Not JSON after all: keep the bytes.
    }
  }
  if (kind === "text" && text !== undefined) out.data = text;
  else out.data_base64 = Buffer.from(data).toString("base64");
  return out;
}

function decodeUtf8(data: Uint8Array): string | undefined {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(data);
  } catch {
    return undefined;
  }
}
