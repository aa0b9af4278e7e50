// Topics over HTTP, so that systems outside the user function can join (PROTOCOL.md §8):
//   POST /eventing/topics/{topic}   publish a CloudEvent (binary mode: ce-* headers + body; or
//                                   structured: application/cloudevents+json, -batch+json)
//   GET  /eventing/topics/{topic}   read it: Server-Sent Events with `Accept: text/event-stream`
//                                   (live, resumable with Last-Event-ID), else one JSON page
//   GET  /eventing/topics           the topics with their message counts and heads
// Only the topics the user function's methods consume or publish exist here.
import type * as http from "node:http";
import { fromBinary, toJson, type Registry } from "@bufbuild/protobuf";
import type { TopicMessage, TopicPublish } from "../store/store.js";
import type { Logger } from "../telemetry/logger.js";
import { dataKind, SPEC_VERSION, structured, type StructuredCloudEvent } from "./cloudevents.js";
import type { Eventing } from "./eventing.js";
import type { EventingPlan } from "./subscriptions.js";
import type { RouteTable } from "../ingress/http/routes.js";
import { DiscoveryError } from "../discovery/service-model.js";
import { Code, ProxyError } from "../errors.js";
import { drained, readBody } from "../ingress/http/http-handler.js";
import { bearerTokenMatches, sendJson } from "../ingress/http/headers.js";

export const EVENTING_PREFIX = "/eventing/";

/**
 * When the topic endpoints are served, a google.api.http route under /eventing/ would never be
 * reached: a DiscoveryError that says so, rather than a route that silently does not work.
 */
export function checkRoutesClear(routes: RouteTable, plan: EventingPlan): void {
  if (plan.topics.size === 0) return;
  for (const route of routes.routes) {
    if (route.template.text.startsWith(EVENTING_PREFIX) || route.template.text === "/eventing") {
      throw new DiscoveryError(
        `${route.service.name}.${route.method.name}: its HTTP route ${route.httpMethod} ${route.template.text} is under ${EVENTING_PREFIX}, where the proxy serves the topics of this user function; choose another path`,
      );
    }
  }
}

export interface EventingEndpointsOptions {
  readonly eventing: Eventing;
  readonly registry: Registry;
  readonly maxBodyBytes: number;
  readonly token?: string | undefined;
  readonly log: Logger;
  /** How often an SSE reader with nothing new checks again (it is also woken by commits). */
  readonly pollIntervalMs: number;
}

class BadRequest extends Error {
  constructor(
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

const PAGE = 100;
const HEARTBEAT_MS = 15_000;

export class EventingEndpoints {
  private readonly streams = new Set<http.ServerResponse>();
  private closed = false;

  constructor(private readonly o: EventingEndpointsOptions) {}

  static owns(path: string): boolean {
    return path.startsWith(EVENTING_PREFIX);
  }

  /** Ends the open SSE streams (shutdown): readers reconnect elsewhere with Last-Event-ID. */
  close(): void {
    this.closed = true;
    for (const res of this.streams) res.end();
    this.streams.clear();
  }

  handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? "/", "http://eventing");
    if (!bearerTokenMatches(req, this.o.token)) {
      sendJson(res, 401, error("UNAUTHENTICATED", "the eventing endpoints need Authorization: Bearer <token>"), { "www-authenticate": "Bearer" });
      return;
    }
    const run = async () => {
      if (url.pathname === "/eventing/topics" && req.method === "GET") {
        const known = this.o.eventing.topics;
        const infos = new Map((await this.o.eventing.broker.topics()).map((t) => [t.topic, t]));
        sendJson(res, 200, { topics: [...known].sort().map((topic) => ({ topic, messages: infos.get(topic)?.messages ?? 0, head: String(infos.get(topic)?.head ?? 0) })) });
        return;
      }
      const m = /^\/eventing\/topics\/([^/]+)$/.exec(url.pathname);
      if (m === null) throw new BadRequest(`no eventing endpoint ${url.pathname} (POST or GET /eventing/topics/{topic}, GET /eventing/topics)`, 404);
      const topic = decodeURIComponent(m[1]!);
      if (!this.o.eventing.topics.has(topic)) {
        const known = [...this.o.eventing.topics].sort().join(", ") || "none";
        throw new BadRequest(`unknown topic "${topic}": no method consumes or publishes it (topics: ${known})`, 404);
      }
      if (req.method === "POST") return this.publish(topic, req, res);
      if (req.method === "GET") return this.read(topic, url, req, res);
      throw new BadRequest(`${req.method} is not allowed on a topic: POST publishes, GET reads`, 405);
    };
    run().catch((e: unknown) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      if (e instanceof BadRequest) sendJson(res, e.status, error(e.status === 404 ? "NOT_FOUND" : e.status === 413 ? "RESOURCE_EXHAUSTED" : "INVALID_ARGUMENT", e.message));
      else {
        this.o.log.warn({ err: (e as Error).message }, "eventing endpoint failed");
        sendJson(res, 503, error("UNAVAILABLE", `could not reach the topic log: ${(e as Error).message}`));
      }
    });
  }

  private async publish(topic: string, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const body = await readBody(req, this.o.maxBodyBytes).catch((e: unknown) => {
      throw e instanceof ProxyError && e.code === Code.RESOURCE_EXHAUSTED ? new BadRequest(e.message, 413) : e;
    });
    const contentType = (req.headers["content-type"] ?? "application/octet-stream").toLowerCase();
    const media = contentType.split(";")[0]!.trim();
    let messages: TopicPublish[];
    if (media === "application/cloudevents+json") {
      messages = [this.fromStructured(topic, parseJson(body))];
    } else if (media === "application/cloudevents-batch+json") {
      const batch = parseJson(body);
      if (!Array.isArray(batch) || batch.length === 0) throw new BadRequest("a CloudEvents batch is a non-empty JSON array of events");
      messages = batch.map((e) => this.fromStructured(topic, e));
    } else {
      messages = [this.fromBinary(topic, req.headers, contentType, body)];
    }
    const offsets = await this.o.eventing.publish(messages);
    sendJson(res, 200, messages.length === 1 && media !== "application/cloudevents-batch+json" ? { topic, offset: String(offsets[0]) } : { topic, offsets: offsets.map(String) });
  }

  /** Binary mode: the attributes in ce-* headers, the data as the body with its Content-Type. */
  private fromBinary(topic: string, headers: http.IncomingHttpHeaders, contentType: string, data: Uint8Array): TopicPublish {
    const header = (name: string) => {
      const v = headers[name];
      return Array.isArray(v) ? v[0] : v;
    };
    return this.checked(topic, {
      specversion: header("ce-specversion"),
      id: header("ce-id"),
      source: header("ce-source"),
      type: header("ce-type"),
      subject: header("ce-subject"),
      time: header("ce-time"),
      contentType,
      data,
      where: "header ce-",
    });
  }

  /** Structured mode: one JSON object with the attributes and `data` (JSON) or `data_base64`. */
  private fromStructured(topic: string, event: unknown): TopicPublish {
    if (typeof event !== "object" || event === null || Array.isArray(event)) throw new BadRequest("a CloudEvent in structured mode is a JSON object");
    const e = event as Record<string, unknown>;
    const str = (k: string) => {
      const v = e[k];
      if (v !== undefined && typeof v !== "string") throw new BadRequest(`CloudEvent attribute ${k} must be a string`);
      return v;
    };
    const contentType = str("datacontenttype") ?? "application/json";
    let data: Uint8Array;
    if (e.data_base64 !== undefined) {
      if (typeof e.data_base64 !== "string" || !/^[A-Za-z0-9+/]*={0,2}$/.test(e.data_base64)) throw new BadRequest("data_base64 must be base64 text");
      data = Buffer.from(e.data_base64, "base64");
    } else if (e.data === undefined) {
      data = new Uint8Array(0);
    } else if (dataKind(contentType) === "json") {
      data = Buffer.from(JSON.stringify(e.data));
    } else if (typeof e.data === "string") {
      data = Buffer.from(e.data);
    } else {
      throw new BadRequest(`data of content type ${contentType} must be a string (or use data_base64)`);
    }
    return this.checked(topic, {
      specversion: str("specversion"),
      id: str("id"),
      source: str("source"),
      type: str("type"),
      subject: str("subject"),
      time: str("time"),
      contentType,
      data,
      where: "attribute ",
    });
  }

  private checked(
    topic: string,
    a: { specversion?: string | undefined; id?: string | undefined; source?: string | undefined; type?: string | undefined; subject?: string | undefined; time?: string | undefined; contentType: string; data: Uint8Array; where: string },
  ): TopicPublish {
    for (const name of ["specversion", "id", "source", "type"] as const) {
      if (!a[name]) throw new BadRequest(`missing CloudEvent ${a.where}${name} (required: specversion, id, source, type)`);
    }
    if (a.specversion !== SPEC_VERSION) throw new BadRequest(`unsupported CloudEvents specversion "${a.specversion}" (supported: ${SPEC_VERSION})`);
    for (const [name, value] of Object.entries({ id: a.id, source: a.source, type: a.type, subject: a.subject ?? "", contentType: a.contentType })) {
      if (value!.includes("\0")) throw new BadRequest(`CloudEvent ${name} contains a NUL character`);
    }
    let time = Date.now();
    if (a.time !== undefined) {
      time = Date.parse(a.time);
      if (!/^\d{4}-\d\d-\d\dT/.test(a.time) || Number.isNaN(time)) throw new BadRequest(`CloudEvent time "${a.time}" is not an RFC 3339 timestamp`);
    }
    // Data that cannot be what it says it is would only fail every subscriber later.
    const kind = dataKind(a.contentType);
    if (kind === "json") parseJson(a.data);
    if (kind === "protobuf") {
      const schema = this.o.registry.getMessage(a.type!);
      if (schema === undefined) throw new BadRequest(`ce-type "${a.type}" is not a message type of the user function; protobuf data needs its full message name as type`);
      try {
        fromBinary(schema, a.data);
      } catch (e) {
        throw new BadRequest(`the data is not a valid ${a.type}: ${(e as Error).message}`);
      }
    }
    return { topic, id: a.id!, source: a.source!, type: a.type!, subject: a.subject ?? "", contentType: a.contentType, time, data: a.data };
  }

  private async read(topic: string, url: URL, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const last = req.headers["last-event-id"];
    const afterText = url.searchParams.get("after") ?? (typeof last === "string" ? last : undefined) ?? "0";
    if (!/^\d{1,15}$/.test(afterText)) throw new BadRequest(`after / Last-Event-ID must be an offset (a whole number), got "${afterText}"`);
    let after = Number(afterText);
    const { broker } = this.o.eventing;
    const dataFormat = url.searchParams.get("data") ?? "raw";
    if (dataFormat !== "raw" && dataFormat !== "json") throw new BadRequest(`data must be raw or json, got "${dataFormat}"`);
    // data=json: protobuf data of the user function's types as JSON, for readers without the .proto.
    const render = (m: TopicMessage) => (dataFormat === "json" ? this.asJson(m) : structured(m, m.data, m.offset));
    const sse = (req.headers.accept ?? "").includes("text/event-stream");
    if (!sse) {
      const limitText = url.searchParams.get("limit") ?? String(PAGE);
      if (!/^\d{1,4}$/.test(limitText) || Number(limitText) < 1 || Number(limitText) > 1000) throw new BadRequest("limit must be between 1 and 1000");
      const messages = await broker.read(topic, after, Number(limitText));
      const next = messages.length > 0 ? messages[messages.length - 1]!.offset : after;
      sendJson(res, 200, { topic, events: messages.map(render), next: String(next) });
      return;
    }
    if (this.closed) throw new BadRequest("the proxy is shutting down", 503);
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
    res.write(": streaming topic " + topic + "\n\n");
    this.streams.add(res);
    let wake: (() => void) | undefined;
    const unwatch = broker.watch(() => wake?.());
    let open = true;
    const heartbeat = setInterval(() => res.write(": keep-alive\n\n"), HEARTBEAT_MS);
    const finish = () => {
      open = false;
      wake?.();
    };
    res.on("close", finish);
    try {
      while (open && !this.closed) {
        const messages = await broker.read(topic, after, PAGE);
        for (const m of messages) {
          // A slow reader holds the stream back instead of piling the topic up in memory.
          if (!res.write(`id: ${m.offset}\ndata: ${JSON.stringify(render(m))}\n\n`)) await drained(res);
          after = m.offset;
        }
        if (messages.length === PAGE) continue;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, this.o.pollIntervalMs);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        wake = undefined;
      }
    } finally {
      clearInterval(heartbeat);
      unwatch();
      this.streams.delete(res);
      res.end();
    }
  }

  /** The structured event, with protobuf data of a known type as JSON (else as stored). */
  private asJson(m: TopicMessage): StructuredCloudEvent {
    const schema = dataKind(m.contentType) === "protobuf" ? this.o.registry.getMessage(m.type) : undefined;
    if (schema === undefined) return structured(m, m.data, m.offset);
    try {
      const data = toJson(schema, fromBinary(schema, m.data), { registry: this.o.registry });
      const { data_base64: _, ...event } = structured(m, m.data, m.offset);
      return { ...event, datacontenttype: "application/json", data };
    } catch {
      return structured(m, m.data, m.offset);
    }
  }
}

function parseJson(body: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body));
  } catch (e) {
    throw new BadRequest(`the body is not valid JSON: ${(e as Error).message}`);
  }
}

function error(code: string, message: string) {
  return { error: { code, message } };
}

