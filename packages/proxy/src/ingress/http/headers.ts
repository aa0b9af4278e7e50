// HTTP/1.1 headers ⇄ Cloudstate metadata, as ../metadata.ts does for gRPC (PROTOCOL.md §7): request
// headers travel to the user function, a reply's string metadata comes back as response headers.
// Hop-by-hop and transport headers stay behind in both directions. Also the bearer-token check and
// the JSON answers of the proxy's own HTTP endpoints (console API, eventing).
import { timingSafeEqual } from "node:crypto";
import type * as http from "node:http";
import { create } from "@bufbuild/protobuf";
import { MetadataEntrySchema, MetadataSchema, type Metadata, type MetadataEntry } from "@cloudstate-ts/protocol";

const TRANSPORT_HEADERS = new Set([
  // hop-by-hop (RFC 9110 §7.6.1)
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  // describe the HTTP exchange, not the call (the same ones the gRPC path drops)
  "host",
  "content-length",
  "content-type",
  "accept-encoding",
  "user-agent",
]);

export function metadataFromHttp(req: http.IncomingMessage): Metadata | undefined {
  const entries: MetadataEntry[] = [];
  for (const [key, values] of Object.entries(req.headersDistinct)) {
    if (TRANSPORT_HEADERS.has(key) || values === undefined) continue;
    for (const value of values) {
      entries.push(create(MetadataEntrySchema, { key, value: { case: "stringValue", value } }));
    }
  }
  return entries.length > 0 ? create(MetadataSchema, { entries }) : undefined;
}

/** The reply's string metadata as response headers; names or values HTTP cannot carry are dropped. */
export function replyHeaders(metadata: Metadata | undefined): Record<string, string[]> {
  const headers: Record<string, string[]> = {};
  for (const entry of metadata?.entries ?? []) {
    const key = entry.key.toLowerCase();
    if (entry.value.case !== "stringValue" || TRANSPORT_HEADERS.has(key) || !TOKEN.test(key)) continue;
    const value = entry.value.value;
    if (!FIELD_VALUE.test(value)) continue;
    (headers[key] ??= []).push(value);
  }
  return headers;
}

/** RFC 9110 field-name (token) and field-value characters. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/**
 * Whether the request carries `Authorization: Bearer <token>` (always true without a token), compared
 * in constant time so that the token cannot be guessed byte by byte.
 */
export function bearerTokenMatches(req: http.IncomingMessage, token: string | undefined): boolean {
  if (token === undefined) return true;
  const given = Buffer.from(/^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1] ?? "");
  const expected = Buffer.from(token);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** A JSON answer that no cache keeps (the console's API, the eventing endpoints). */
export function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store", ...headers }).end(JSON.stringify(body));
}
