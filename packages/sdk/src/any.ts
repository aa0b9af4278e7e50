// google.protobuf.Any as the protocol uses it: "type.googleapis.com/<full name>" + the message bytes.
import { create, toBinary, type DescMessage, type Message } from "@bufbuild/protobuf";
import { AnySchema, type Any } from "@bufbuild/protobuf/wkt";

const prefix = "type.googleapis.com/";

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
