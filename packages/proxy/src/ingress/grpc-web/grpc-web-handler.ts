// gRPC-web and the Connect protocol over HTTP/1.1, for browsers (docs/how-to/call-from-a-browser.md).
// POST /<package.Service>/<Method>. Binary messages pass through as bytes (invariant 4); only Connect's
// JSON codec parses and writes messages, with the user's registry. Requests this handler does not
// recognise (and CORS-allowed actual requests, after their headers are set) go on to the HTTP/JSON
// handler.
//
//   gRPC-web:        application/grpc-web[+proto], application/grpc-web-text[+proto] (base64 bodies)
//                    request: one 5-byte-prefixed frame; response: frames, then a trailer frame (0x80),
//                    or a trailers-only response (grpc-status in the headers) for an early error.
//   Connect unary:   application/proto, or application/json with connect-protocol-version: 1
//                    errors as {"code": "not_found", "message": …} with the Connect HTTP status.
//   Connect stream:  application/connect+proto|json; enveloped messages, then an end-stream frame (0x02).
import type * as http from "node:http";
import { create, fromBinary, fromJsonString, toBinary, toJsonString, type Registry } from "@bufbuild/protobuf";
import { MetadataEntrySchema, MetadataSchema, type Metadata, type MetadataEntry } from "@cloudstate-ts/protocol";
import { Code, ProxyError } from "../../errors.js";
import type { Dispatcher } from "../../effects/dispatcher.js";
import type { MethodModel, ServiceModel } from "../../discovery/service-model.js";
import type { CommandOutcome, EntityService } from "../../entities/command.js";
import type { Logger } from "../../telemetry/logger.js";
import type { HttpRequestHandler } from "../ingress.js";
import { drained, readBody } from "../http/http-handler.js";
import { replyHeaders } from "../http/headers.js";
import { serverStreamOutcomes } from "../streamed.js";
import { Cors } from "./cors.js";

export interface BrowserHandlerOptions {
  readonly services: Iterable<ServiceModel>;
  readonly registry: Registry;
  readonly dispatcher: Dispatcher;
  readonly handlers: ReadonlyMap<string, EntityService>;
  readonly maxMessageBytes: number;
  /** Allowed CORS origins ("*" for any); empty: no CORS. */
  readonly corsOrigins: readonly string[];
  readonly log: Logger;
  /** Everything that is not gRPC-web or Connect: the HTTP/JSON handler. */
  readonly fallback: HttpRequestHandler;
}

export type BrowserProtocol =
  | { readonly kind: "grpc-web"; readonly text: boolean; readonly contentType: string }
  | { readonly kind: "connect-unary" | "connect-stream"; readonly json: boolean; readonly contentType: string };

/** The protocol of a request from its content type, or undefined when it is none of these. */
export function browserProtocolOf(req: http.IncomingMessage): BrowserProtocol | undefined {
  const type = (req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
  switch (type) {
    case "application/grpc-web":
    case "application/grpc-web+proto":
      return { kind: "grpc-web", text: false, contentType: type };
    case "application/grpc-web-text":
    case "application/grpc-web-text+proto":
      return { kind: "grpc-web", text: true, contentType: type };
    case "application/proto":
      return { kind: "connect-unary", json: false, contentType: type };
    case "application/json":
      // Without the header, JSON is HTTP/JSON transcoding (whose default routes take the same paths).
      return req.headers["connect-protocol-version"] !== undefined ? { kind: "connect-unary", json: true, contentType: type } : undefined;
    case "application/connect+proto":
      return { kind: "connect-stream", json: false, contentType: type };
    case "application/connect+json":
      return { kind: "connect-stream", json: true, contentType: type };
    default:
      return undefined;
  }
}

const TRAILER_FLAG = 0x80;
const COMPRESSED_FLAG = 0x01;
const END_STREAM_FLAG = 0x02;

export class BrowserHandler implements HttpRequestHandler {
  private readonly methods = new Map<string, { service: ServiceModel; method: MethodModel }>();
  private readonly cors: Cors;
  private inFlight = 0;
  private draining = false;
  private onIdle: (() => void) | undefined;

  constructor(private readonly o: BrowserHandlerOptions) {
    for (const service of o.services) for (const method of service.methods.values()) this.methods.set(method.path, { service, method });
    this.cors = new Cors(o.corsOrigins);
  }

  readonly handle = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    if (this.cors.handle(req, res)) return;
    const protocol = browserProtocolOf(req);
    if (protocol === undefined) {
      this.o.fallback.handle(req, res);
      return;
    }
    this.inFlight++;
    res.once("close", () => {
      if (--this.inFlight === 0) this.onIdle?.();
    });
    if (this.draining) {
      this.fail(req, res, protocol, new ProxyError(Code.UNAVAILABLE, "the proxy is shutting down"));
      return;
    }
    this.serve(req, res, protocol).catch((error: unknown) => this.fail(req, res, protocol, error));
  };

  async drain(): Promise<void> {
    this.draining = true;
    const own = this.inFlight === 0 ? Promise.resolve() : new Promise<void>((resolve) => (this.onIdle = resolve));
    await Promise.all([own, this.o.fallback.drain()]);
  }

  private async serve(req: http.IncomingMessage, res: http.ServerResponse, protocol: BrowserProtocol): Promise<void> {
    const path = (req.url ?? "/").split("?")[0]!;
    if ((req.method ?? "").toUpperCase() !== "POST") {
      throw new ProxyError(Code.UNIMPLEMENTED, `${protocol.contentType} calls must be POST requests, not ${req.method}`);
    }
    const target = this.methods.get(path);
    if (target === undefined) throw new ProxyError(Code.UNIMPLEMENTED, `unknown method ${path}`);
    const { service, method } = target;
    const name = `${service.name}.${method.name}`;
    if (method.clientStreaming) {
      throw new ProxyError(Code.UNIMPLEMENTED, `${name} is a client-streaming method, which browsers cannot call; call it with gRPC over HTTP/2`);
    }
    if (protocol.kind === "connect-unary" && method.serverStreaming) {
      throw new ProxyError(Code.UNIMPLEMENTED, `${name} is a server-streaming method: call it with the Connect streaming protocol (application/connect+proto or +json)`);
    }
    const encoding = req.headers["grpc-encoding"] ?? req.headers["connect-content-encoding"] ?? req.headers["content-encoding"];
    if (encoding !== undefined && encoding !== "identity") {
      throw new ProxyError(Code.UNIMPLEMENTED, `compressed requests (${encoding}) are not supported; send them uncompressed`);
    }

    const aborter = new AbortController();
    res.once("close", () => {
      if (!res.writableFinished) aborter.abort();
    });
    const timeoutMs = timeoutOf(req);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      if (timeoutMs === undefined) return;
      timer = setTimeout(() => {
        reject(new ProxyError(Code.DEADLINE_EXCEEDED, `the call did not finish within its ${timeoutMs} ms deadline`));
        aborter.abort();
      }, timeoutMs);
    });
    deadline.catch(() => undefined);
    try {
      const limit = protocol.kind === "grpc-web" && protocol.text ? Math.ceil(((this.o.maxMessageBytes + 5) * 4) / 3) + 4 : this.o.maxMessageBytes + 5;
      let body: Uint8Array = await Promise.race([readBody(req, limit), deadline]);
      if (protocol.kind === "grpc-web" && protocol.text) body = Buffer.from(Buffer.from(body).toString("latin1"), "base64");
      const message = protocol.kind === "connect-unary" ? body : singleFrame(body);
      const payload = protocol.kind !== "grpc-web" && protocol.json ? this.fromJson(method, message) : message;
      // Event-sourced commands carry no metadata (PROTOCOL.md §5), as on the gRPC path.
      const metadata = service.kind === "eventSourced" ? undefined : metadataFromBrowser(req);
      const ctx = { metadata, signal: aborter.signal };

      if (method.serverStreaming) {
        const outcomes = serverStreamOutcomes(this.o.handlers.get(service.name), service, method, payload, metadata, aborter.signal);
        await Promise.race([this.stream(res, protocol, service, method, outcomes, ctx), deadline]);
        return;
      }
      const reply = await Promise.race([this.o.dispatcher.call(service, method, payload, ctx), deadline]);
      const headers = { ...responseHeaders(reply.metadata), "content-type": protocol.contentType };
      if (protocol.kind === "connect-unary") {
        const out = protocol.json ? this.toJson(method, reply.payload) : reply.payload;
        this.head(res, 200, headers);
        res.end(out);
      } else if (protocol.kind === "connect-stream") {
        const out = protocol.json ? this.toJson(method, reply.payload) : reply.payload;
        this.head(res, 200, headers);
        res.end(Buffer.concat([frame(0, out), endStream(undefined)]));
      } else {
        this.head(res, 200, headers);
        const out = Buffer.concat([frame(0, reply.payload), trailers(Code.OK, "")]);
        res.end(protocol.kind === "grpc-web" && protocol.text ? out.toString("base64") : out);
      }
    } finally {
      clearTimeout(timer);
    }
  }

  /** Relays a server stream as grpc-services.ts does: each outcome settled (effects first), then written. */
  private async stream(
    res: http.ServerResponse,
    protocol: BrowserProtocol,
    service: ServiceModel,
    method: MethodModel,
    outcomes: AsyncIterable<CommandOutcome>,
    ctx: { metadata: Metadata | undefined; signal: AbortSignal },
  ): Promise<void> {
    let started = false;
    const start = (metadata: Metadata | undefined) => {
      started = true;
      this.head(res, 200, { ...responseHeaders(metadata), "content-type": protocol.contentType, "cache-control": "no-cache" });
    };
    const write = (chunk: Buffer): boolean =>
      res.write(protocol.kind === "grpc-web" && protocol.text ? chunk.toString("base64") : chunk);
    try {
      for await (const outcome of outcomes) {
        const reply = await this.o.dispatcher.settle(outcome, service, method, ctx);
        if (reply === undefined || res.destroyed) continue;
        if (!started) start(reply.metadata);
        const out = protocol.kind !== "grpc-web" && protocol.json ? this.toJson(method, reply.payload) : reply.payload;
        if (!write(frame(0, out))) await drained(res);
      }
      if (res.destroyed) return;
      if (!started) start(undefined);
      write(protocol.kind === "grpc-web" ? trailers(Code.OK, "") : endStream(undefined));
      res.end();
    } catch (error) {
      if (res.destroyed) return;
      if (!started) throw error;
      const err = this.logged(error);
      write(protocol.kind === "grpc-web" ? trailers(err.code, err.message) : endStream(err));
      res.end();
    }
  }

  private fromJson(method: MethodModel, bytes: Uint8Array): Uint8Array {
    const input = method.desc.input;
    try {
      return toBinary(input, fromJsonString(input, Buffer.from(bytes).toString("utf8"), { registry: this.o.registry }));
    } catch (e) {
      throw new ProxyError(Code.INVALID_ARGUMENT, `cannot read the request as ${input.typeName} JSON: ${(e as Error).message}`);
    }
  }

  private toJson(method: MethodModel, payload: Uint8Array): Buffer {
    const output = method.desc.output;
    try {
      return Buffer.from(toJsonString(output, fromBinary(output, payload), { registry: this.o.registry }), "utf8");
    } catch (e) {
      throw new ProxyError(Code.INTERNAL, `cannot write the reply of ${method.path} as JSON: ${(e as Error).message}`, { cause: e });
    }
  }

  /** An error before any response: in the protocol's own shape. */
  private fail(req: http.IncomingMessage, res: http.ServerResponse, protocol: BrowserProtocol, error: unknown): void {
    if (res.destroyed || res.writableEnded) return;
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const err = this.logged(error);
    const headers: http.OutgoingHttpHeaders = {};
    // A body not read to its end (too large, or refused early) cannot be drained: close the connection.
    if (!req.complete) headers.connection = "close";
    switch (protocol.kind) {
      case "grpc-web":
        // Trailers-only: the status in the headers, no body.
        this.head(res, 200, { ...headers, "content-type": protocol.contentType, "grpc-status": String(err.code), "grpc-message": percentEncode(err.message) });
        res.end();
        return;
      case "connect-unary":
        this.head(res, connectHttpStatus(err.code), { ...headers, "content-type": "application/json" });
        res.end(JSON.stringify(connectError(err)));
        return;
      case "connect-stream":
        this.head(res, 200, { ...headers, "content-type": protocol.contentType });
        res.end(endStream(err));
    }
  }

  private logged(error: unknown): ProxyError {
    const err = ProxyError.from(error);
    if (err.code === Code.INTERNAL) this.o.log.error({ err: err.message }, "browser call failed");
    return err;
  }

  private head(res: http.ServerResponse, status: number, headers: http.OutgoingHttpHeaders): void {
    if (this.draining) headers.connection = "close";
    res.writeHead(status, headers);
  }
}

/** One length-prefixed uncompressed message: the whole body of a unary or server-streaming request. */
export function singleFrame(body: Uint8Array): Uint8Array {
  if (body.length < 5) throw new ProxyError(Code.INVALID_ARGUMENT, "the request body is not a length-prefixed message (fewer than 5 bytes)");
  const flags = body[0]!;
  const length = Buffer.from(body.buffer, body.byteOffset, body.byteLength).readUInt32BE(1);
  if (flags & COMPRESSED_FLAG) throw new ProxyError(Code.UNIMPLEMENTED, "compressed messages are not supported; send them uncompressed");
  if (flags !== 0) throw new ProxyError(Code.INVALID_ARGUMENT, `unexpected frame flags 0x${flags.toString(16)} in the request`);
  if (5 + length > body.length) throw new ProxyError(Code.INVALID_ARGUMENT, `the request message is truncated: ${body.length - 5} of ${length} bytes`);
  if (5 + length < body.length) throw new ProxyError(Code.UNIMPLEMENTED, "expected exactly one request message; client streaming is not supported here");
  return body.subarray(5, 5 + length);
}

export function frame(flags: number, payload: Uint8Array): Buffer {
  const head = Buffer.alloc(5);
  head[0] = flags;
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

/** A gRPC-web trailer frame. */
export function trailers(code: number, message: string): Buffer {
  return frame(TRAILER_FLAG, Buffer.from(`grpc-status:${code}\r\ngrpc-message:${percentEncode(message)}\r\n`, "latin1"));
}

/** A Connect end-of-stream frame, with the error if the call failed. */
function endStream(err: ProxyError | undefined): Buffer {
  return frame(END_STREAM_FLAG, Buffer.from(JSON.stringify(err ? { error: connectError(err) } : {}), "utf8"));
}

/** grpc-message: percent-encoded UTF-8, leaving printable ASCII except "%" as is. */
export function percentEncode(message: string): string {
  let out = "";
  for (const byte of Buffer.from(message, "utf8")) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/** Connect's code names: the gRPC names in snake case, "canceled" with one l. */
export function connectCode(code: number): string {
  if (code === Code.CANCELLED) return "canceled";
  return (Code[code] ?? "unknown").toLowerCase();
}

function connectError(err: ProxyError): { code: string; message: string } {
  return { code: connectCode(err.code), message: err.message };
}

const CONNECT_HTTP_STATUS: Partial<Record<number, number>> = {
  [Code.CANCELLED]: 499,
  [Code.UNKNOWN]: 500,
  [Code.INVALID_ARGUMENT]: 400,
  [Code.DEADLINE_EXCEEDED]: 504,
  [Code.NOT_FOUND]: 404,
  [Code.ALREADY_EXISTS]: 409,
  [Code.PERMISSION_DENIED]: 403,
  [Code.RESOURCE_EXHAUSTED]: 429,
  [Code.FAILED_PRECONDITION]: 400,
  [Code.ABORTED]: 409,
  [Code.OUT_OF_RANGE]: 400,
  [Code.UNIMPLEMENTED]: 501,
  [Code.INTERNAL]: 500,
  [Code.UNAVAILABLE]: 503,
  [Code.DATA_LOSS]: 500,
  [Code.UNAUTHENTICATED]: 401,
};

/** The HTTP status of a Connect unary error (connectrpc.com/docs/protocol#error-codes). */
export function connectHttpStatus(code: number): number {
  return CONNECT_HTTP_STATUS[code] ?? 500;
}

const GRPC_TIMEOUT_UNITS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 };

/** The call's deadline in ms, from grpc-timeout or connect-timeout-ms. */
function timeoutOf(req: http.IncomingMessage): number | undefined {
  const grpc = /^(\d{1,8})([HMSmun])$/.exec(String(req.headers["grpc-timeout"] ?? ""));
  if (grpc) return Math.max(1, Math.ceil(Number(grpc[1]) * GRPC_TIMEOUT_UNITS[grpc[2]!]!));
  const connect = /^\d{1,10}$/.exec((req.headers["connect-timeout-ms"] as string | undefined) ?? "");
  if (connect) return Math.max(1, Number(connect[0]));
  return undefined;
}

/** Headers of the HTTP exchange or of the browser protocols, not of the call: never forwarded. */
const NOT_METADATA = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "host",
  "content-length",
  "content-type",
  "content-encoding",
  "accept-encoding",
  "user-agent",
  "x-grpc-web",
  "x-user-agent",
]);

/** Request headers as Cloudstate metadata; `-bin` headers (base64) as bytes, as gRPC carries them. */
export function metadataFromBrowser(req: http.IncomingMessage): Metadata | undefined {
  const entries: MetadataEntry[] = [];
  for (const [key, values] of Object.entries(req.headersDistinct)) {
    if (values === undefined || NOT_METADATA.has(key) || key.startsWith("grpc-") || key.startsWith("connect-")) continue;
    for (const value of values) {
      entries.push(
        create(MetadataEntrySchema, {
          key,
          value: key.endsWith("-bin") ? { case: "bytesValue", value: Buffer.from(value, "base64") } : { case: "stringValue", value },
        }),
      );
    }
  }
  return entries.length > 0 ? create(MetadataSchema, { entries }) : undefined;
}

/** A reply's metadata as response headers: strings, and `-bin` bytes base64-encoded. */
function responseHeaders(metadata: Metadata | undefined): Record<string, string[]> {
  const headers = replyHeaders(metadata);
  for (const entry of metadata?.entries ?? []) {
    const key = entry.key.toLowerCase();
    if (entry.value.case === "bytesValue" && key.endsWith("-bin") && /^[!#$%&'*+\-.^_`|~0-9a-z]+$/.test(key)) {
      (headers[key] ??= []).push(Buffer.from(entry.value.value).toString("base64"));
    }
  }
  for (const key of Object.keys(headers)) {
    if (key.startsWith("grpc-") || key.startsWith("connect-") || key.startsWith("access-control-") || key === "content-encoding") delete headers[key];
  }
  return headers;
}
