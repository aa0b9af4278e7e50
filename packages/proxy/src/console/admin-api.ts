// The console's JSON API (/console/api/…): what the user function serves, an example body and a
// call per method, the entities of each service and their state (journals decoded with the user's
// descriptors), per-second command counts and latencies for the charts, the eventing consumers and
// topics, and the dead letters (decoded for people, dismissed one by one).
import { fromBinary, fromJson, toBinary, toJson, ScalarType, type DescField, type DescMessage, type JsonObject, type JsonValue, type Registry } from "@bufbuild/protobuf";
import { Code, ProxyError } from "../errors.js";
import type { ServiceModel, UserFunctionModel } from "../discovery/service-model.js";
import type { Dispatcher } from "../effects/dispatcher.js";
import type { EntityService } from "../entities/command.js";
import type { ConsumerOffsets, ConsumerPosition, DeadLetter, StoredPayload, Store } from "../store/store.js";
import { dataKind } from "../eventing/cloudevents.js";
import type { Eventing } from "../eventing/eventing.js";

/** An API answer: an HTTP status and a JSON body. */
export interface ApiResult {
  readonly status: number;
  readonly body: unknown;
}

const SECONDS = 60;

/** Commands per second and their latency over the last minute: a ring of per-second buckets. */
export class CallStats {
  private readonly second = new Float64Array(SECONDS);
  private readonly count = new Float64Array(SECONDS);
  private readonly errors = new Float64Array(SECONDS);
  private readonly totalMs = new Float64Array(SECONDS);
  private readonly maxMs = new Float64Array(SECONDS);

  record(ms: number, ok: boolean): void {
    const now = Math.floor(Date.now() / 1000);
    const i = now % SECONDS;
    if (this.second[i] !== now) {
      this.second[i] = now;
      this.count[i] = this.errors[i] = this.totalMs[i] = this.maxMs[i] = 0;
    }
    this.count[i]! += 1;
    if (!ok) this.errors[i]! += 1;
    this.totalMs[i]! += ms;
    if (ms > this.maxMs[i]!) this.maxMs[i] = ms;
  }

  /** The last minute, oldest first, one entry per second (zeros where nothing ran). */
  snapshot(): { t: number; count: number; errors: number; avgMs: number; maxMs: number }[] {
    const now = Math.floor(Date.now() / 1000);
    const out = [];
    for (let t = now - SECONDS + 1; t <= now; t++) {
      const i = t % SECONDS;
      const n = this.second[i] === t ? this.count[i]! : 0;
      out.push({
        t,
        count: n,
        errors: n ? this.errors[i]! : 0,
        avgMs: n ? this.totalMs[i]! / n : 0,
        maxMs: n ? this.maxMs[i]! : 0,
      });
    }
    return out;
  }
}

/** Makes the dispatcher report each unary call to the stats: one timer read and a few array writes per call. */
export function observeCalls(dispatcher: Dispatcher, stats: CallStats): void {
  const call = dispatcher.call.bind(dispatcher);
  dispatcher.call = async (service, method, payload, ctx) => {
    const start = performance.now();
    try {
      const reply = await call(service, method, payload, ctx);
      stats.record(performance.now() - start, true);
      return reply;
    } catch (e) {
      stats.record(performance.now() - start, false);
      throw e;
    }
  };
}

export interface AdminApiOptions {
  readonly model: UserFunctionModel;
  readonly store: Store;
  readonly dispatcher: Dispatcher;
  readonly handlers: ReadonlyMap<string, EntityService>;
  readonly stats: CallStats;
  /** Consumers, topics and dead letters; undefined when the user function uses no eventing. */
  readonly eventing?: Eventing | undefined;
}

export class AdminApi {
  constructor(private readonly o: AdminApiOptions) {}

  /** Routes one API request (path after /console/api). */
  async handle(method: string, path: string, query: URLSearchParams, body: () => Promise<Uint8Array>): Promise<ApiResult> {
    try {
      if (method === "GET" && path === "/services") return ok(this.services());
      if (method === "GET" && path === "/stats") return ok({ seconds: this.o.stats.snapshot() });
      if (method === "POST" && path === "/call") return await this.call(await body());
      if (method === "GET" && path === "/entities") return ok(await this.entities(this.service(query)));
      if (method === "GET" && path === "/entity") {
        const id = query.get("id");
        if (id === null) return bad(400, "the entity id (id=…) is missing");
        return ok(await this.entity(this.service(query), id));
      }
      if (method === "GET" && path === "/eventing") return ok(await this.eventing());
      if (method === "GET" && path === "/dead-letters") return ok(await this.deadLetters(query));
      if (method === "DELETE" && path === "/dead-letters") return await this.dismissDeadLetter(query);
      return bad(404, `no console API ${method} ${path}`);
    } catch (e) {
      if (e instanceof ApiError) return bad(e.status, e.message);
      const err = ProxyError.from(e);
      // A body over the size limit is the caller's to fix (413); anything else is ours (500).
      return { status: err.code === Code.RESOURCE_EXHAUSTED ? 413 : 500, body: { error: { code: err.codeName, message: err.message } } };
    }
  }

  private service(query: URLSearchParams): ServiceModel {
    const name = query.get("service") ?? "";
    const service = this.o.model.services.get(name);
    if (service === undefined) throw new ApiError(404, `no service "${name}"`);
    return service;
  }

  services(): unknown {
    const registry = this.o.model.registry;
    return {
      serviceInfo: this.o.model.serviceInfo,
      services: [...this.o.model.services.values()].map((s) => ({
        name: s.name,
        kind: s.kind,
        entityType: s.entityType,
        persistenceId: s.persistenceId,
        passivationTimeoutMs: s.passivationTimeoutMs,
        methods: [...s.methods.values()].map((m) => ({
          name: m.name,
          input: m.desc.input.typeName,
          output: m.desc.output.typeName,
          clientStreaming: m.clientStreaming,
          serverStreaming: m.serverStreaming,
          keyFields: m.keyFields.map((k) => k.name),
          example: exampleOf(m.desc.input, 0, registry),
        })),
      })),
    };
  }

  private async call(raw: Uint8Array): Promise<ApiResult> {
    let request: { service?: unknown; method?: unknown; body?: unknown };
    try {
      request = JSON.parse(new TextDecoder().decode(raw)) as typeof request;
    } catch (e) {
      return bad(400, `the request is not JSON: ${(e as Error).message}`);
    }
    const service = this.o.model.services.get(String(request.service));
    const method = service?.methods.get(String(request.method));
    if (service === undefined || method === undefined) return bad(404, `no method ${String(request.service)}/${String(request.method)}`);
    if (method.clientStreaming || method.serverStreaming) return bad(400, `${service.name}.${method.name} is streamed; the console calls unary methods only`);
    let payload: Uint8Array;
    try {
      payload = toBinary(method.desc.input, fromJson(method.desc.input, (request.body ?? {}) as JsonValue, { registry: this.o.model.registry }));
    } catch (e) {
      return { status: 400, body: { error: { code: "INVALID_ARGUMENT", message: `not a valid ${method.desc.input.typeName}: ${(e as Error).message}` } } };
    }
    const start = performance.now();
    try {
      const reply = await this.o.dispatcher.call(service, method, payload, {});
      const json = toJson(method.desc.output, fromBinary(method.desc.output, reply.payload), { registry: this.o.model.registry });
      return ok({ reply: json, ms: performance.now() - start });
    } catch (e) {
      const err = ProxyError.from(e);
      return { status: 200, body: { error: { code: err.codeName, message: err.message }, ms: performance.now() - start } };
    }
  }

  private async entities(service: ServiceModel): Promise<unknown> {
    const store = this.o.store;
    const stored =
      service.kind === "eventSourced"
        ? await store.journal.entityIds(service.persistenceId)
        : service.kind === "value"
          ? await store.values.entityIds(service.persistenceId)
          : service.kind === "crdt"
            ? await store.crdts.entityIds(service.persistenceId)
            : [];
    const active = this.o.handlers.get(service.name)?.activeEntityIds?.() ?? [];
    const ids = [...new Set([...stored, ...active])].sort();
    return { service: service.name, kind: service.kind, ids, active: [...active].sort() };
  }

  private async entity(service: ServiceModel, id: string): Promise<unknown> {
    const { store, model } = this.o;
    const registry = model.registry;
    switch (service.kind) {
      case "eventSourced": {
        const [events, recovered] = await Promise.all([
          store.journal.events(service.persistenceId, id),
          store.journal.recover(service.persistenceId, id),
        ]);
        return {
          kind: service.kind,
          id,
          events: events.map((e) => ({ sequence: e.sequence, ...decodePayload(e, registry) })),
          snapshot: recovered.snapshot ? { sequence: recovered.snapshot.sequence, ...decodePayload(recovered.snapshot, registry) } : null,
        };
      }
      case "value": {
        const v = await store.values.get(service.persistenceId, id);
        return { kind: service.kind, id, version: v.version, value: v.value ? decodePayload(v.value, registry) : null };
      }
      case "crdt": {
        const v = await store.crdts.get(service.persistenceId, id);
        return { kind: service.kind, id, version: v.version, state: v.value ? crdtState(v.value) : null };
      }
      default:
        throw new ApiError(400, `${service.name} is an action: it has no entities`);
    }
  }

  /** The consumers (with their committed offset, the source's head and the lag) and the topics. */
  private async eventing(): Promise<unknown> {
    const eventing = this.o.eventing;
    if (eventing === undefined) return { broker: null, consumers: [], topics: [] };
    const { store } = this.o;
    const [reports, infos, positions] = await Promise.all([eventing.report(), eventing.broker.topics(), positionsOf([store.offsets, eventing.broker.offsets])]);
    const consumers = reports.map((c) => {
      // Another proxy may hold the lease: then the stored position is the one that moves.
      const committed = Math.max(c.committed, positions.get(`${c.group}\u0000${c.source}`) ?? 0);
      return {
        service: c.service,
        group: c.group,
        source: c.source,
        active: c.active,
        committed,
        read: c.read,
        head: c.head,
        lag: Math.max(0, c.head - committed),
        inFlight: c.inFlight,
        delivered: c.delivered,
        deadLetters: c.deadLetters,
      };
    });
    const topicInfo = new Map(infos.map((t) => [t.topic, t]));
    const topics = [...eventing.topics].sort().map((topic) => ({ topic, messages: topicInfo.get(topic)?.messages ?? 0, head: topicInfo.get(topic)?.head ?? 0 }));
    return { broker: eventing.broker.description, consumers, topics };
  }

  private async deadLetters(query: URLSearchParams): Promise<unknown> {
    const given = query.get("limit");
    let limit = DEAD_LETTERS_DEFAULT;
    if (given !== null) {
      if (!/^\d+$/.test(given) || Number(given) < 1) throw new ApiError(400, `limit must be a positive integer, not "${given}"`);
      limit = Math.min(Number(given), DEAD_LETTERS_MAX);
    }
    const [count, letters] = await Promise.all([this.o.store.deadLetters.count(), this.o.store.deadLetters.list(limit)]);
    const registry = this.o.model.registry;
    return { count, deadLetters: letters.map((l) => deadLetterJson(l, registry)) };
  }

  private async dismissDeadLetter(query: URLSearchParams): Promise<ApiResult> {
    const given = query.get("id");
    if (given === null) return bad(400, "the dead letter's id (id=…) is missing");
    const id = Number(given);
    if (!/^\d+$/.test(given) || !Number.isSafeInteger(id) || id < 1) return bad(400, `a dead letter's id is a positive integer, not "${given}"`);
    if (!(await this.o.store.deadLetters.remove(id))) return bad(404, `no dead letter ${id}`);
    return ok({ removed: id });
  }
}

const DEAD_LETTERS_DEFAULT = 50;
const DEAD_LETTERS_MAX = 500;

/** The stored positions of every (group, source), from each distinct offsets store. */
async function positionsOf(stores: readonly ConsumerOffsets[]): Promise<Map<string, number>> {
  const lists: ConsumerPosition[][] = await Promise.all([...new Set(stores)].map((s) => s.list()));
  return new Map(lists.flat().map((p) => [`${p.group}\u0000${p.source}`, p.offset]));
}

/** How a dead letter's data is shown: JSON as JSON, text as a string, known protobuf as its JSON, else base64. */
export type DeadLetterData = { format: "json" | "text" | "protobuf"; data: JsonValue } | { format: "base64"; data: { base64: string } };

export function deadLetterJson(l: DeadLetter, registry: Registry): unknown {
  const { format, data } = decodeData(l.type, l.contentType, l.data, registry);
  return {
    id: l.id,
    group: l.group,
    source: l.source,
    offset: l.offset,
    messageId: l.messageId,
    type: l.type,
    subject: l.subject,
    contentType: l.contentType,
    attempts: l.attempts,
    error: l.error,
    time: new Date(l.time).toISOString(),
    dataFormat: format,
    data,
  };
}

export function decodeData(type: string, contentType: string, bytes: Uint8Array, registry: Registry): DeadLetterData {
  const kind = dataKind(contentType);
  if (kind === "json" || kind === "text") {
    let text: string | undefined;
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    } catch {
      // Not UTF-8: shown as base64 below.
    }
    if (text !== undefined && kind === "json") {
      try {
        return { format: "json", data: JSON.parse(text) as JsonValue };
      } catch {
        // Not JSON after all: shown as the text it is.
      }
    }
    if (text !== undefined) return { format: "text", data: text };
  } else if (kind === "protobuf") {
    const desc = registry.getMessage(type);
    if (desc !== undefined) {
      try {
        return { format: "protobuf", data: toJson(desc, fromBinary(desc, bytes), { registry }) };
      } catch {
        // Not a valid message of that type: shown as base64 below.
      }
    }
  }
  return { format: "base64", data: { base64: Buffer.from(bytes).toString("base64") } };
}

class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const ok = (body: unknown): ApiResult => ({ status: 200, body });
const bad = (status: number, message: string): ApiResult => ({ status, body: { error: { code: status === 404 ? "NOT_FOUND" : "INVALID_ARGUMENT", message } } });

/** A stored Any: its type name and JSON when the descriptors know it, else the raw type URL and bytes. */
export function decodePayload(p: StoredPayload, registry: Registry): { typeUrl: string; type?: string; json?: JsonValue; bytes?: string } {
  const typeName = p.typeUrl.slice(p.typeUrl.lastIndexOf("/") + 1);
  const desc = registry.getMessage(typeName);
  if (desc !== undefined) {
    try {
      return { typeUrl: p.typeUrl, type: desc.typeName, json: toJson(desc, fromBinary(desc, p.bytes), { registry }) };
    } catch {
      // Not decodable with the descriptor: shown raw below.
    }
  }
  return { typeUrl: p.typeUrl, bytes: Buffer.from(p.bytes).toString("base64") };
}

/** The proxy's CRDT state is its own JSON (cloudstate-ts/crdt-state/v1): shown as is. */
function crdtState(p: StoredPayload): { typeUrl: string; json?: JsonValue; bytes?: string } {
  try {
    return { typeUrl: p.typeUrl, json: JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(p.bytes)) as JsonValue };
  } catch {
    return { typeUrl: p.typeUrl, bytes: Buffer.from(p.bytes).toString("base64") };
  }
}

/** An example proto3 JSON body: each field's default, messages expanded one level deep. */
export function exampleOf(message: DescMessage, depth: number, registry: Registry): JsonObject {
  const out: JsonObject = {};
  for (const field of message.fields) {
    const value = exampleField(field, depth, registry);
    if (value !== undefined) out[field.jsonName] = value;
  }
  return out;
}

function exampleField(field: DescField, depth: number, registry: Registry): JsonValue | undefined {
  switch (field.fieldKind) {
    case "scalar":
      return scalarExample(field.scalar);
    case "enum":
      return field.enum.values[0]?.name ?? 0;
    case "list":
      return [];
    case "map":
      return {};
    case "message": {
      const type = field.message;
      if (type.typeName === "google.protobuf.Empty") return {};
      if (type.typeName.startsWith("google.protobuf.")) return null; // well-known JSON shapes: left unset
      return depth < 1 ? exampleOf(type, depth + 1, registry) : {};
    }
  }
}

function scalarExample(t: ScalarType): JsonValue {
  switch (t) {
    case ScalarType.STRING:
    case ScalarType.BYTES:
      return "";
    case ScalarType.BOOL:
      return false;
    case ScalarType.INT64:
    case ScalarType.UINT64:
    case ScalarType.SINT64:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return "0";
    default:
      return 0;
  }
}
