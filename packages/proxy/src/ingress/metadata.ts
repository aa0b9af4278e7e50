// Request headers travel to the user function as Cloudstate metadata, and a reply's metadata comes
// back as response headers (PROTOCOL.md §7). Transport headers stay behind.
import * as grpc from "@grpc/grpc-js";
import { create } from "@bufbuild/protobuf";
import { MetadataEntrySchema, MetadataSchema, type Metadata, type MetadataEntry } from "@cloudstate-ts/protocol";

/** Headers that describe the transport, not the call: never forwarded to the user function. */
const TRANSPORT_HEADERS = new Set([
  "content-type",
  "te",
  "grpc-timeout",
  "grpc-encoding",
  "grpc-accept-encoding",
  "grpc-message-type",
  "accept-encoding",
  "content-length",
  "connection",
  "host",
  "user-agent",
]);

export function metadataFromGrpc(md: grpc.Metadata): Metadata | undefined {
  const entries: MetadataEntry[] = [];
  for (const [key, values] of Object.entries(md.toJSON() as Record<string, (string | Buffer)[]>)) {
    if (key.startsWith(":") || TRANSPORT_HEADERS.has(key)) continue;
    for (const value of values) {
      entries.push(
        create(MetadataEntrySchema, {
          key,
          value: typeof value === "string" ? { case: "stringValue", value } : { case: "bytesValue", value },
        }),
      );
    }
  }
  return entries.length > 0 ? create(MetadataSchema, { entries }) : undefined;
}

/** The string (and `-bin` bytes) entries of a reply's metadata, as gRPC response headers. */
export function metadataToGrpc(metadata: Metadata | undefined): grpc.Metadata | undefined {
  if (!metadata || metadata.entries.length === 0) return undefined;
  const md = new grpc.Metadata();
  for (const entry of metadata.entries) {
    const key = entry.key.toLowerCase();
    if (key.startsWith(":") || TRANSPORT_HEADERS.has(key) || key.startsWith("grpc-")) continue;
    try {
      if (entry.value.case === "stringValue" && !key.endsWith("-bin")) md.add(key, entry.value.value);
      else if (entry.value.case === "bytesValue" && key.endsWith("-bin")) md.add(key, Buffer.from(entry.value.value));
    } catch {
      // A header name or value gRPC cannot carry is dropped rather than failing the reply.
    }
  }
  return md;
}
