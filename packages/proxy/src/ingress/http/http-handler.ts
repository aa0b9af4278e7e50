// HTTP/1.1 requests that are not health probes: google.api.http transcoding (PROTOCOL.md §7).
// Route → request message → dispatcher (the same path a gRPC call takes) → proto3 JSON reply, or a
// google.rpc.Status-shaped JSON error with the HTTP status of its gRPC code. Server-streaming action
// methods stream as server-sent events (Accept: text/event-stream) or newline-delimited JSON.
import type * as http from "node:http";
import type { Metadata } from "@cloudstate-ts/protocol";
import type { Registry } from "@bufbuild/protobuf";
import { Code, ProxyError } from "../../errors.js";
import type { Dispatcher } from "../../effects/dispatcher.js";
import type { CommandOutcome, EntityService } from "../../entities/command.js";
import { serverStreamOutcomes } from "../streamed.js";
import type { Logger } from "../../telemetry/logger.js";
import { metadataFromHttp, replyHeaders } from "./headers.js";
import { REQUEST_ID_HEADER, requestIdOf, withRequestId, type RequestId } from "../request-id.js";
import { PathDecodeError } from "./path-template.js";
import type { HttpRoute, RouteTable } from "./routes.js";
import { decodeRequest, encodeResponse, errorJson, httpStatusOf } from "./transcode.js";

export interface HttpHandlerOptions {
  readonly routes: RouteTable;
  /** The user's descriptors: message types for JSON, and for `Any` fields inside them. */
  readonly registry: Registry;
  readonly dispatcher: Dispatcher;
  readonly handlers: ReadonlyMap<string, EntityService>;
  /** The largest request body accepted, as for gRPC messages. */
  readonly maxMessageBytes: number;
  readonly log: Logger;
}

/** A body over the size limit: 413, with the RESOURCE_EXHAUSTED code in the JSON. */
class BodyTooLargeError extends ProxyError {
  constructor(limit: number) {
    super(Code.RESOURCE_EXHAUSTED, `the request body is larger than the limit of ${limit} bytes`);
  }
}

const NDJSON = "application/x-ndjson";
const SSE = "text/event-stream";

export class HttpHandler {
  private inFlight = 0;
  private draining = false;
  private onIdle: (() => void) | undefined;

  constructor(private readonly o: HttpHandlerOptions) {}

  /** Serves one request; the response owns the work (a closed response aborts the call). */
  readonly handle = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    this.inFlight++;
    // Set now so that every response, errors included, carries it (writeHead merges it in).
    const requestId = requestIdOf(req.headers[REQUEST_ID_HEADER]);
    res.setHeader(REQUEST_ID_HEADER, requestId.id);
    res.once("close", () => {
      if (--this.inFlight === 0) this.onIdle?.();
    });
    if (this.draining) {
      this.fail(res, new ProxyError(Code.UNAVAILABLE, "the proxy is shutting down"));
      return;
    }
    this.serve(req, res, requestId).catch((error: unknown) => this.fail(res, error, requestId.id));
  };

  /** Refuses new requests and resolves once every open one has finished (or its socket closed). */
  drain(): Promise<void> {
    this.draining = true;
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.onIdle = resolve;
    });
  }

  private async serve(req: http.IncomingMessage, res: http.ServerResponse, requestId: RequestId): Promise<void> {
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const path = q < 0 ? url : url.slice(0, q);
    const query = new URLSearchParams(q < 0 ? "" : url.slice(q + 1));
    const httpMethod = (req.method ?? "GET").toUpperCase();
    if (/^application\/grpc/i.test(req.headers["content-type"] ?? "")) {
      // gRPC over HTTP/1.1 (gRPC-web never gets here: ../grpc-web/) is not JSON: say so rather than fail to parse it.
      throw new ProxyError(Code.UNIMPLEMENTED, `${req.headers["content-type"]} is not served over HTTP/1.1; use gRPC over HTTP/2, gRPC-web, Connect, or JSON`);
    }

    let match;
    try {
      match = this.o.routes.find(httpMethod, path);
    } catch (e) {
      if (e instanceof PathDecodeError) throw new ProxyError(Code.INVALID_ARGUMENT, e.message);
      throw e;
    }
    if (match === undefined) {
      const others = this.o.routes.methodsFor(path);
      const hint = others.length > 0 ? ` (this path takes ${others.join(", ")})` : "";
      throw new ProxyError(Code.NOT_FOUND, `no route for ${httpMethod} ${path}${hint}`);
    }
    const { route, captures } = match;
    const { service, method } = route;
    const name = `${service.name}.${method.name}`;
    if (method.clientStreaming) {
      throw new ProxyError(Code.UNIMPLEMENTED, `${name} is a client-streaming method, which HTTP/JSON cannot call; call it with gRPC`);
    }

    const body = await readBody(req, this.o.maxMessageBytes);
    const payload = decodeRequest(route, { captures, query, body, contentType: req.headers["content-type"] }, this.o.registry);
    const aborter = new AbortController();
    res.once("close", () => {
      if (!res.writableFinished) aborter.abort();
    });
    // Event-sourced commands carry no metadata (PROTOCOL.md §5), as on the gRPC path.
    const metadata = service.kind === "eventSourced" ? undefined : withRequestId(metadataFromHttp(req), requestId);
    const ctx = { metadata, signal: aborter.signal, requestId: requestId.id };

    if (method.serverStreaming) {
      const outcomes = serverStreamOutcomes(this.o.handlers.get(service.name), service, method, payload, ctx.metadata, ctx.signal);
      await this.stream(req, res, route, outcomes, ctx);
      return;
    }
    const reply = await this.o.dispatcher.call(service, method, payload, ctx);
    const encoded = encodeResponse(route, reply.payload, this.o.registry);
    this.head(res, 200, { ...replyHeaders(reply.metadata), "content-type": encoded.contentType });
    res.end(encoded.body);
  }

  /**
   * Relays a server stream as it is produced, the way ../grpc-services.ts does: each outcome is
   * settled (effects first) and its reply written. An error before the first message is an ordinary
   * error response; after it, a last SSE `error` event or NDJSON `{"error": …}` line.
   */
  private async stream(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    route: HttpRoute,
    outcomes: AsyncIterable<CommandOutcome>,
    ctx: { metadata: Metadata | undefined; signal: AbortSignal; requestId: string },
  ): Promise<void> {
    const { service, method } = route;
    const sse = (req.headers.accept ?? "").toLowerCase().includes(SSE);
    let raw = method.desc.output.typeName === "google.api.HttpBody";
    let started = false;
    const start = (metadata: Metadata | undefined, contentType: string) => {
      started = true;
      this.head(res, 200, { ...replyHeaders(metadata), "content-type": contentType, "cache-control": "no-cache" });
    };
    try {
      for await (const outcome of outcomes) {
        const reply = await this.o.dispatcher.settle(outcome, service, method, ctx);
        if (reply === undefined || res.destroyed) continue;
        const encoded = encodeResponse(route, reply.payload, this.o.registry);
        if (!started) {
          raw = encoded.raw;
          start(reply.metadata, raw ? encoded.contentType : sse ? SSE : NDJSON);
        }
        const chunk = encoded.raw ? encoded.body : sse ? `data: ${encoded.body as string}\n\n` : `${encoded.body as string}\n`;
        if (!res.write(chunk)) await drained(res);
      }
      if (!started) start(undefined, raw ? "application/octet-stream" : sse ? SSE : NDJSON);
      res.end();
    } catch (error) {
      if (res.destroyed) return;
      if (!started) throw error;
      const err = this.logged(error, ctx.requestId, route);
      // Raw bytes have no way to say "failed": cut the response so the client sees it incomplete.
      if (raw) res.destroy();
      else res.end(sse ? `event: error\ndata: ${errorJson(err)}\n\n` : `{"error":${errorJson(err)}}\n`);
    }
  }

  private fail(res: http.ServerResponse, error: unknown, requestId?: string): void {
    if (res.destroyed || res.writableEnded) return;
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const err = this.logged(error, requestId);
    const tooLarge = err instanceof BodyTooLargeError;
    const headers: http.OutgoingHttpHeaders = { "content-type": "application/json" };
    // The rest of an oversized body is never read: close the connection rather than drain it.
    if (tooLarge) headers.connection = "close";
    this.head(res, tooLarge ? 413 : httpStatusOf(err.code), headers);
    res.end(errorJson(err));
  }

  private logged(error: unknown, requestId: string | undefined, route?: HttpRoute): ProxyError {
    const err = ProxyError.from(error);
    if (err.code === Code.INTERNAL) {
      const where = route ? `${route.service.name}.${route.method.name}` : undefined;
      this.o.log.error({ where, requestId, err: err.message }, "HTTP call failed");
    }
    return err;
  }

  private head(res: http.ServerResponse, status: number, headers: http.OutgoingHttpHeaders): void {
    if (this.draining) headers.connection = "close";
    res.writeHead(status, headers);
  }
}

/** The whole request body, refused (413) as soon as it passes the limit. */
export function readBody(req: http.IncomingMessage, limit: number): Promise<Uint8Array> {
  const declared = Number(req.headers["content-length"] ?? 0);
  if (declared > limit) return Promise.reject(new BodyTooLargeError(limit));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (error: ProxyError | undefined) => {
      req.off("data", onData).off("end", onEnd).off("error", onError).off("close", onClose);
      if (error) reject(error);
      else resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) finish(new BodyTooLargeError(limit));
      else chunks.push(chunk);
    };
    const onEnd = () => finish(undefined);
    const onError = (e: Error) => finish(new ProxyError(Code.CANCELLED, `reading the request body failed: ${e.message}`));
    const onClose = () => finish(new ProxyError(Code.CANCELLED, "the client closed the request before its body ended"));
    req.on("data", onData).once("end", onEnd).once("error", onError).once("close", onClose);
  });
}

/** Resolves when the response can take more data, or is gone. */
export function drained(res: http.ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off("drain", done).off("close", done);
      resolve();
    };
    res.once("drain", done).once("close", done);
  });
}
