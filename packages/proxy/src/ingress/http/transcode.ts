// HTTP/JSON ⇄ protobuf for one route (PROTOCOL.md §7). The request message is assembled as proto3
// JSON (body, then query parameters, then path variables, later ones overriding) and parsed once
// with protobuf-es, so every type rule and the "unknown field" check live in one place.
import { fromBinary, fromJson, ScalarType, toBinary, toJson, type DescField, type DescMessage, type JsonObject, type JsonValue, type Registry } from "@bufbuild/protobuf";
import { HttpBodySchema } from "@cloudstate-ts/protocol";
import { Code, ProxyError } from "../../errors.js";
import type { Captures } from "./path-template.js";
import { resolveFieldPath, type HttpRoute } from "./routes.js";

const HTTP_BODY = "google.api.HttpBody";
/** Well-known types whose proto3 JSON is a string, so a path or query value can set them. */
const STRING_JSON_TYPES = new Set(["google.protobuf.Timestamp", "google.protobuf.Duration", "google.protobuf.FieldMask"]);
const WRAPPER_TYPES = new Set(
  ["Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes"].map((t) => `google.protobuf.${t}Value`),
);

export interface HttpRequestParts {
  readonly captures: Captures;
  readonly query: URLSearchParams;
  readonly body: Uint8Array;
  readonly contentType: string | undefined;
}

const invalid = (message: string): never => {
  throw new ProxyError(Code.INVALID_ARGUMENT, message);
};

/** The request message's bytes; INVALID_ARGUMENT naming what is wrong for any bad input. */
export function decodeRequest(route: HttpRoute, parts: HttpRequestParts, registry: Registry): Uint8Array {
  const input = route.method.desc.input;
  let root: JsonValue;
  switch (route.body.kind) {
    case "all":
      root = input.typeName === HTTP_BODY ? rawBody(parts) : parseJsonBody(parts.body, {});
      break;
    case "field": {
      root = {};
      const last = route.body.path[route.body.path.length - 1]!;
      const isRaw = last.fieldKind === "message" && last.message.typeName === HTTP_BODY;
      if (isRaw || parts.body.length > 0) {
        setAt(root, route.body.path, isRaw ? rawBody(parts) : parseJsonBody(parts.body, null), "the body");
      }
      break;
    }
    case "none":
      root = {};
  }

  const assignments: { path: readonly DescField[]; value: JsonValue; what: string }[] = [];
  for (const name of new Set(parts.query.keys())) {
    const what = `query parameter "${name}"`;
    if (route.body.kind === "all") {
      invalid(`${what} is not accepted: ${route.httpMethod} ${route.template.text} takes the whole ${input.typeName} from the JSON body`);
    }
    const path = resolveFieldPath(input, name.split("."), (why) => invalid(`unknown ${what}: ${why}`));
    if (route.body.kind === "field" && overlaps(path, route.body.path)) {
      invalid(`${what} sets a field the JSON body carries (body: "${route.body.path.map((f) => f.name).join(".")}"); put it in the body`);
    }
    assignments.push({ path, value: queryValue(path[path.length - 1]!, parts.query.getAll(name), what), what });
  }
  route.variables.forEach((path, i) => {
    const what = `path variable ${path.map((f) => f.name).join(".")}`;
    assignments.push({ path, value: scalarValue(path[path.length - 1]!, parts.captures[i]!, what), what });
  });
  for (const a of assignments) {
    // Parsed alone first, so a bad value's error names the parameter or variable it came from.
    const alone: JsonObject = {};
    setAt(alone, a.path, a.value, a.what);
    try {
      fromJson(input, alone, { registry });
    } catch (e) {
      invalid(`${a.what}: ${(e as Error).message}`);
    }
  }
  if (assignments.length > 0) {
    if (!isObject(root)) invalid(`the JSON body must be an object, since ${assignments[0]!.what} also sets a field of ${input.typeName}`);
    for (const a of assignments) setAt(root as JsonObject, a.path, a.value, a.what);
  }

  let message;
  try {
    message = fromJson(input, root, { registry });
  } catch (e) {
    return invalid((e as Error).message);
  }
  return toBinary(input, message);
}

/** The body of a successful response: proto3 JSON, or the raw bytes of a google.api.HttpBody. */
export interface EncodedResponse {
  readonly contentType: string;
  readonly body: Uint8Array | string;
  /** Raw HttpBody data rather than a JSON document. */
  readonly raw: boolean;
}

export function encodeResponse(route: HttpRoute, payload: Uint8Array, registry: Registry): EncodedResponse {
  const output = route.method.desc.output;
  try {
    if (output.typeName === HTTP_BODY) return rawResponse(fromBinary(HttpBodySchema, payload));
    const message = fromBinary(output, payload);
    const field = route.responseBody;
    if (field === undefined) return json(toJson(output, message, { registry }));
    if (field.fieldKind === "message" && field.message.typeName === HTTP_BODY) {
      const part = (message as unknown as Record<string, { data: Uint8Array; contentType: string } | undefined>)[field.localName];
      return rawResponse({ contentType: part?.contentType ?? "", data: part?.data ?? new Uint8Array(0) });
    }
    const full = toJson(output, message, { registry }) as JsonObject;
    if (Object.hasOwn(full, field.jsonName)) return json(full[field.jsonName]!);
    // An unset field: its proto3 default ([] for a list, {} for a map, "" or 0 for a scalar, null for a message).
    const defaults = toJson(output, message, { registry, alwaysEmitImplicit: true }) as JsonObject;
    return json(defaults[field.jsonName] ?? null);
  } catch (e) {
    throw new ProxyError(Code.INTERNAL, `cannot write the reply of ${route.service.name}.${route.method.name} as JSON: ${(e as Error).message}`, { cause: e });
  }
}

const json = (value: JsonValue): EncodedResponse => ({ contentType: "application/json", body: JSON.stringify(value), raw: false });
const rawResponse = (b: { contentType: string; data: Uint8Array }): EncodedResponse => ({
  contentType: b.contentType || "application/octet-stream",
  body: b.data,
  raw: true,
});

/** The standard gRPC → HTTP status mapping (google.rpc.Code). */
export function httpStatusOf(code: Code): number {
  switch (code) {
    case Code.OK:
      return 200;
    case Code.INVALID_ARGUMENT:
    case Code.FAILED_PRECONDITION:
    case Code.OUT_OF_RANGE:
      return 400;
    case Code.UNAUTHENTICATED:
      return 401;
    case Code.PERMISSION_DENIED:
      return 403;
    case Code.NOT_FOUND:
      return 404;
    case Code.ALREADY_EXISTS:
    case Code.ABORTED:
      return 409;
    case Code.RESOURCE_EXHAUSTED:
      return 429;
    case Code.CANCELLED:
      return 499;
    case Code.UNIMPLEMENTED:
      return 501;
    case Code.UNAVAILABLE:
      return 503;
    case Code.DEADLINE_EXCEEDED:
      return 504;
    default:
      return 500;
  }
}

/** The JSON error body: the google.rpc.Status shape. */
export function errorJson(err: ProxyError): string {
  return JSON.stringify({ code: err.code, message: err.message, details: [] });
}

function rawBody(parts: HttpRequestParts): JsonObject {
  return { contentType: parts.contentType ?? "", data: Buffer.from(parts.body).toString("base64") };
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

function parseJsonBody(body: Uint8Array, empty: JsonValue): JsonValue {
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    return invalid("the request body is not valid UTF-8");
  }
  if (text.trim() === "") return empty;
  try {
    return JSON.parse(text) as JsonValue;
  } catch (e) {
    return invalid(`the request body is not valid JSON: ${(e as Error).message}`);
  }
}

const isObject = (v: JsonValue | undefined): v is JsonObject => typeof v === "object" && v !== null && !Array.isArray(v);

/** Whether one field path is a prefix of the other. */
function overlaps(a: readonly DescField[], b: readonly DescField[]): boolean {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Sets a value at a field path in a JSON object, replacing whatever the object held there under
 * either the proto name or the JSON name (so `user_id` in a body and `{user_id}` in the path agree).
 */
function setAt(root: JsonObject, path: readonly DescField[], value: JsonValue, what: string): void {
  let obj = root;
  for (let i = 0; i < path.length - 1; i++) {
    const field = path[i]!;
    const existing = take(obj, field);
    if (existing !== undefined && existing !== null && !isObject(existing)) {
      invalid(`${what} sets a field inside ${field.name}, but the body gives ${field.name} as ${JSON.stringify(existing)}, not an object`);
    }
    const next: JsonObject = isObject(existing) ? existing : {};
    obj[field.jsonName] = next;
    obj = next;
  }
  const last = path[path.length - 1]!;
  take(obj, last);
  obj[last.jsonName] = value;
}

function take(obj: JsonObject, field: DescField): JsonValue | undefined {
  let value: JsonValue | undefined;
  for (const key of [field.jsonName, field.name]) {
    if (!Object.hasOwn(obj, key)) continue;
    value ??= obj[key];
    delete obj[key];
  }
  return value;
}

function queryValue(field: DescField, values: string[], what: string): JsonValue {
  if (field.fieldKind === "list" && (field.listKind === "scalar" || field.listKind === "enum")) {
    return values.map((v) => (field.listKind === "scalar" ? scalarJson(field.scalar, v, what) : enumJson(v)));
  }
  if (values.length > 1) invalid(`${what} is given ${values.length} times, but ${field.name} is not a repeated field`);
  return scalarValue(field, values[0]!, what);
}

/** A path or query string as the proto3 JSON value of a singular field. */
function scalarValue(field: DescField, text: string, what: string): JsonValue {
  switch (field.fieldKind) {
    case "scalar":
      return scalarJson(field.scalar, text, what);
    case "enum":
      return enumJson(text);
    case "message":
      if (STRING_JSON_TYPES.has(field.message.typeName)) return text;
      if (WRAPPER_TYPES.has(field.message.typeName)) return wrappedJson(field.message, text, what);
      break;
    default:
  }
  return invalid(`${what}: ${field.name} is a ${field.fieldKind === "list" ? "repeated message" : field.fieldKind} field, which a query parameter cannot set; send it in a JSON body`);
}

function wrappedJson(wrapper: DescMessage, text: string, what: string): JsonValue {
  const value = wrapper.fields[0]!;
  return value.fieldKind === "scalar" ? scalarJson(value.scalar, text, what) : text;
}

function scalarJson(scalar: ScalarType, text: string, what: string): JsonValue {
  if (scalar !== ScalarType.BOOL) {
    // Strings, base64 bytes and numbers (proto3 JSON takes every numeric type as a string) as they are.
    return text;
  }
  if (text === "true" || text === "1") return true;
  if (text === "false" || text === "0") return false;
  return invalid(`${what}: expected true or false, got "${text}"`);
}

const enumJson = (text: string): JsonValue => (/^-?\d+$/.test(text) ? Number(text) : text);
