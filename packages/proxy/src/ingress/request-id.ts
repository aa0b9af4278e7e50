// Each client call's request id: the client's `x-request-id` header when it gives a usable one, else
// a random UUID. It goes to the user function as metadata (for the state models that take metadata),
// back to the client as a response header, and onto the log lines about the call.
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { MetadataEntrySchema, MetadataSchema, type Metadata } from "@cloudstate-ts/protocol";

export const REQUEST_ID_HEADER = "x-request-id";

/** Visible ASCII, at most 128 characters: safe in a header, a log line and a metric-free label. */
const USABLE = /^[\x21-\x7e]{1,128}$/;

export interface RequestId {
  readonly id: string;
  /** The client gave it (so the forwarded request headers already carry it). */
  readonly fromClient: boolean;
}

/** The id from the header's value(s), or a new one. */
export function requestIdOf(header: unknown): RequestId {
  const value = Array.isArray(header) ? header[0] : header;
  if (typeof value === "string" && USABLE.test(value)) return { id: value, fromClient: true };
  return { id: randomUUID(), fromClient: false };
}

/** The metadata for the user function, carrying the request id exactly once. */
export function withRequestId(metadata: Metadata | undefined, rid: RequestId): Metadata {
  if (rid.fromClient && metadata !== undefined) return metadata;
  const entries = (metadata?.entries ?? []).filter((e) => e.key.toLowerCase() !== REQUEST_ID_HEADER);
  entries.push(create(MetadataEntrySchema, { key: REQUEST_ID_HEADER, value: { case: "stringValue", value: rid.id } }));
  return create(MetadataSchema, { entries });
}
