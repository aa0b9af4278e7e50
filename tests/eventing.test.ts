// Eventing end to end (PROTOCOL.md §8), through a real proxy and a user function written with our
// SDK (its test subscribers, packages/sdk/src/testdata/eventing.ts): event log → action → topic,
// topics in and out over HTTP (binary and structured CloudEvents, SSE), the payload conventions,
// JSON transcoded for typed subscribers, retries and dead letters, idempotent publishing, and the
// endpoints' answers to bad input.
import assert from "node:assert/strict";
import * as http from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { serve, type UserFunctionServer } from "@cloudstate-ts/sdk";
import type { RunningProxy } from "../packages/proxy/src/index.js";
import type { DeadLetter } from "../packages/proxy/src/store/store.js";
import { counterEntity } from "../packages/sdk/src/testdata/counter.js";
import { anyCounterEntity, eventSubscriber, journalEntity, tallyEntity } from "../packages/sdk/src/testdata/eventing.js";
import { Counter } from "../packages/sdk/src/testdata/gen/sdktest/counter_pb.js";
import { AddedSchema } from "../packages/sdk/src/testdata/gen/sdktest/domain_pb.js";
import { EventSubscriber, SummarySchema, Tally } from "../packages/sdk/src/testdata/gen/sdktest/eventing_pb.js";
import { eventually, GrpcClient } from "./support/grpc-client.js";
import { startTestProxy } from "./support/proxy.js";

const quiet = { info() {}, warn() {}, error() {} };
const MAX_ATTEMPTS = 3;

interface CloudEventJson {
  specversion: string;
  id: string;
  source: string;
  type: string;
  subject?: string;
  time?: string;
  datacontenttype: string;
  data?: unknown;
  data_base64?: string;
  offset: string;
}

describe("eventing through the proxy", () => {
  const dir = mkdtempSync(join(tmpdir(), "cloudstate-eventing-"));
  let server: UserFunctionServer;
  let proxy: RunningProxy;
  let client: GrpcClient;
  const base = () => `http://127.0.0.1:${proxy.port}/eventing/topics`;

  before(async () => {
    server = await serve({ entities: [counterEntity(), eventSubscriber(), tallyEntity(), journalEntity(), anyCounterEntity()], port: 0, host: "127.0.0.1", logger: quiet });
    proxy = await startTestProxy(server.port, {
      store: `sqlite:${join(dir, "cloudstate.db")}`,
      metricsPort: 0,
      maxMessageBytes: 64 * 1024,
      eventingMaxAttempts: MAX_ATTEMPTS,
      eventingBackoffMinMs: 10,
      eventingBackoffMaxMs: 40,
      eventingCommitIntervalMs: 20,
      eventingPollIntervalMs: 50,
    });
    client = new GrpcClient(proxy.port);
  });

  after(async () => {
    client?.close();
    await proxy?.stop();
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Publishes in binary mode; resolves with the status and the JSON answer. */
  async function publish(topic: string, body: Uint8Array | string, headers: Record<string, string>): Promise<{ status: number; body: Record<string, unknown> }> {
    const res = await fetch(`${base()}/${topic}`, { method: "POST", headers, body });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }

  let nextId = 0;
  const ce = (type: string, contentType: string, extra: Record<string, string> = {}) => ({
    "ce-specversion": "1.0",
    "ce-id": `msg-${++nextId}`,
    "ce-source": "tests/eventing",
    "ce-type": type,
    "content-type": contentType,
    ...extra,
  });

  async function page(topic: string, after = 0): Promise<CloudEventJson[]> {
    const res = await fetch(`${base()}/${topic}?after=${after}&limit=1000`);
    assert.equal(res.status, 200);
    return ((await res.json()) as { events: CloudEventJson[] }).events;
  }

  /** Waits until the topic holds at least n messages after `after`; resolves with them. */
  async function awaitMessages(topic: string, n: number, after = 0): Promise<CloudEventJson[]> {
    let events: CloudEventJson[] = [];
    await eventually(
      async () => (events = await page(topic, after)).length >= n,
      () => `${n} messages in ${topic} (have ${events.length}: ${JSON.stringify(events.map((e) => e.data ?? e.data_base64))})`,
      15_000,
    );
    return events;
  }

  async function head(topic: string): Promise<number> {
    const res = await fetch(base());
    const { topics } = (await res.json()) as { topics: { topic: string; head: string }[] };
    return Number(topics.find((t) => t.topic === topic)?.head ?? -1);
  }

  async function metric(pattern: RegExp): Promise<number> {
    const text = await (await fetch(`http://127.0.0.1:${proxy.metricsPort}/metrics`)).text();
    return Number(pattern.exec(text)?.[1] ?? 0);
  }

  const summaryOf = (e: CloudEventJson) => fromBinary(SummarySchema, Buffer.from(e.data_base64!, "base64")).text;

  test("every event of an event log reaches the action in journal order, with its CloudEvent; replies go to the out topic", async () => {
    await client.unary(Counter.method.add, { counterId: "c1", amounts: [1, 2, 0, 3] });
    await client.unary(Counter.method.clear, { counterId: "c1" });
    await client.unary(Counter.method.add, { counterId: "c2", amounts: [5] });
    // Added 0 answers nothing (nothing published); Cleared matches no method (skipped).
    const summaries = await awaitMessages("counter-summaries", 4);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal((await page("counter-summaries")).length, 4, "no reply, no message");
    const texts = summaries.map(summaryOf);
    const c1 = texts.filter((t) => t.includes(" counter c1 "));
    assert.deepEqual(c1.map((t) => t.split(" ")[0]), ["+1", "+2", "+3"], "one entity's events in journal order");
    // "+n [<ce-id> <ce-source> <ce-subject> <ce-type> <content-type> <ce-time>]"
    const ids = c1.map((t) => Number(/^\+\d+ \[(\d+) /.exec(t)![1]));
    assert.ok(ids[0]! < ids[1]! && ids[1]! < ids[2]!, `ce-id is the offset, increasing: ${ids.join(", ")}`);
    assert.match(c1[0]!, /^\+1 \[\d+ counter c1 sdktest\.domain\.Added application\/protobuf \d{4}-\d\d-\d\dT[\d:.]+Z\]$/);
    assert.ok(texts.some((t) => /^\+5 \[\d+ counter c2 /.test(t)));
    const published = summaries[0]!;
    assert.deepEqual(
      [published.specversion, published.type, published.source, published.datacontenttype],
      ["1.0", "sdktest.Summary", "sdktest.EventSubscriber", "application/protobuf"],
    );
    assert.ok(published.subject === "c1" || published.subject === "c2", "the published reply keeps the event's subject");
    await eventually(
      async () => (await metric(/cloudstate_eventing_messages_total\{group="sdktest\.EventSubscriber",source="event-log:counter",outcome="unmatched"\} (\d+)/)) === 1,
      () => "the Cleared event to be counted as unmatched",
    );
  });

  test("an event-sourced subscriber (a second consumer group of the same log) journals what it is given, per subject, in order", async () => {
    // Journal.Record takes Any: entity "c1" of Journal gets the events of counter "c1".
    const amounts = async (id: string) => (await proxy.store.journal.events("journal", id)).map((e) => fromBinary(AddedSchema, e.bytes).amount);
    await eventually(async () => (await amounts("c1")).length === 4 && (await amounts("c2")).length === 1, () => "the Journal entities to record the counters' events");
    assert.deepEqual(await amounts("c1"), [1, 2, 0, 3], "Added events in journal order; the Cleared one answered nothing");
    assert.deepEqual(await amounts("c2"), [5]);
  });

  test("a topic published over HTTP reaches the Any subscriber with the payload conventions, and its answers the out topic", async () => {
    const start = await head("outbox");
    assert.equal((await publish("inbox", JSON.stringify({ a: 1 }), ce("com.example.Thing", "application/json"))).status, 200);
    assert.equal((await publish("inbox", "hello", ce("greeting", "text/plain; charset=utf-8"))).status, 200);
    assert.equal((await publish("inbox", new Uint8Array([1, 2, 3]), ce("blob", "application/octet-stream"))).status, 200);
    const added = toBinary(AddedSchema, create(AddedSchema, { amount: 4 }));
    assert.equal((await publish("inbox", added, ce("sdktest.domain.Added", "application/protobuf"))).status, 200);
    const out = await awaitMessages("outbox", 4, start);
    // Messages without a subject are delivered one at a time, in order.
    const [json, text, bytes, proto] = out;
    assert.equal(json!.datacontenttype, "application/json");
    assert.equal(json!.type, "sdktest.Echo");
    const echo = json!.data as { type: string; value: unknown; event: string };
    assert.equal(echo.type, "com.example.Thing");
    assert.deepEqual(echo.value, { a: 1 });
    assert.match(echo.event, /^msg-\d+ tests\/eventing - com\.example\.Thing application\/json \d{4}-/);
    assert.deepEqual([text!.datacontenttype, text!.data], ["text/plain; charset=utf-8", "HELLO"]);
    assert.deepEqual([bytes!.datacontenttype, [...Buffer.from(bytes!.data_base64!, "base64")]], ["application/octet-stream", [3, 2, 1]]);
    assert.equal(proto!.type, "sdktest.domain.Added");
    assert.equal(fromBinary(AddedSchema, Buffer.from(proto!.data_base64!, "base64")).amount, 8);
  });

  test("JSON for a typed subscriber is transcoded with the user's descriptors; JSON that does not fit is a dead letter at once", async () => {
    const structured = (id: string, data: unknown) =>
      fetch(`${base()}/observations`, {
        method: "POST",
        headers: { "content-type": "application/cloudevents+json" },
        body: JSON.stringify({ specversion: "1.0", id, source: "tests/structured", type: "sdktest.Observation", datacontenttype: "application/json", data }),
      });
    assert.equal((await structured("o1", { tallyId: "t1", amount: 5 })).status, 200);
    assert.equal((await structured("o2", { nope: 1 })).status, 200);
    assert.equal((await structured("o3", { tallyId: "t1", amount: 2 })).status, 200);
    const tallies = await awaitMessages("tallies", 2);
    assert.deepEqual(tallies.map((e) => summaryOf(e).split(" ")[0]), ["5", "7"], "the stream goes on past the bad message");
    assert.match(summaryOf(tallies[0]!), /^5 \[o1 tests\/structured - sdktest\.Observation application\/json/);
    const letters = await proxy.store.deadLetters.list(50);
    const poison = letters.find((l) => l.messageId === "o2");
    assert.ok(poison, "the JSON that does not fit is a dead letter");
    assert.equal(poison.source, "topic:observations");
    assert.match(poison.error, /does not fit sdktest\.Observation/);
    assert.equal(poison.attempts, 1, "no retries: it would never fit");
  });

  test("an entity's subscriber method taking Any is addressed by the message's subject", async () => {
    const json = (amount: number, subject: string) => publish("raw-observations", JSON.stringify({ amount }), ce("sdktest.Observation", "application/json", { "ce-subject": subject }));
    assert.equal((await json(3, "t9")).status, 200);
    assert.equal((await json(4, "t9")).status, 200);
    assert.equal((await json(10, "t10")).status, 200);
    await eventually(async () => (await client.unary(Tally.method.get, { counterId: "t9" })).value === 7, () => "tally t9 to reach 7");
    assert.equal((await client.unary(Tally.method.get, { counterId: "t10" })).value, 10);
    // A message without a subject cannot address an entity: it is set aside, the stream goes on.
    const orphan = ce("sdktest.Observation", "application/json");
    assert.equal((await publish("raw-observations", JSON.stringify({ amount: 1 }), orphan)).status, 200);
    assert.equal((await json(1, "t10")).status, 200);
    await eventually(async () => (await client.unary(Tally.method.get, { counterId: "t10" })).value === 11, () => "tally t10 to reach 11");
    let letter: DeadLetter | undefined;
    await eventually(async () => (letter = (await proxy.store.deadLetters.list(50)).find((l) => l.messageId === orphan["ce-id"])) !== undefined, () => "the dead letter");
    assert.match(letter!.error, /no entity id/);
    assert.equal(letter!.attempts, 1, "no retries: it can never address an entity");
  });

  test("a CRDT subscriber: a GCounter per subject counts what the topic says and publishes its totals", async () => {
    for (const [amount, subject] of [[2, "g1"], [3, "g1"], [10, "g2"], [4, "g1"]] as const) {
      assert.equal((await publish("counts", JSON.stringify({ amount }), ce("sdktest.Amount", "application/json", { "ce-subject": subject }))).status, 200);
    }
    const totals = await awaitMessages("count-totals", 4);
    const bySubject = (s: string) => totals.filter((e) => e.subject === s).map((e) => (e.data as { value: number }).value);
    assert.deepEqual(bySubject("g1"), [2, 5, 9], "one GCounter for g1, its increments in order");
    assert.deepEqual(bySubject("g2"), [10]);
    assert.equal(totals[0]!.type, "sdktest.Total");
  });

  test("a subscriber that keeps failing is retried, then its message becomes a dead letter, and the next message is delivered", async () => {
    const start = await head("outbox");
    const failing = ce("words", "text/plain");
    assert.equal((await publish("inbox", "fail", failing)).status, 200);
    assert.equal((await publish("inbox", "after", ce("words", "text/plain"))).status, 200);
    const out = await awaitMessages("outbox", 1, start);
    assert.equal(out[0]!.data, "AFTER");
    const letter = (await proxy.store.deadLetters.list(50)).find((l) => l.messageId === failing["ce-id"]);
    assert.ok(letter, "the failing message is kept as a dead letter");
    assert.deepEqual(
      [letter.group, letter.source, letter.attempts, letter.error, Buffer.from(letter.data).toString()],
      ["sdktest-group", "topic:inbox", MAX_ATTEMPTS, "told to fail", "fail"],
    );
    const group = `group="sdktest-group",source="topic:inbox"`;
    assert.equal(await metric(new RegExp(`cloudstate_eventing_dead_letters_total\\{${group}\\} (\\d+)`)), 1);
    assert.equal(await metric(new RegExp(`cloudstate_eventing_messages_total\\{${group},outcome="retry"\\} (\\d+)`)), MAX_ATTEMPTS);
  });

  test("a client's call of a method with an out topic publishes its reply before the client gets it", async () => {
    const start = await head("counter-summaries");
    const reply = await client.unary(EventSubscriber.method.onAdded, { amount: 9 });
    assert.equal(reply.text, "+9 [direct]");
    const [published, ...more] = await page("counter-summaries", start);
    assert.deepEqual(more, [], "one message");
    assert.equal(summaryOf(published!), "+9 [direct]");
    assert.match(published!.id, /^[0-9a-f-]{36}$/, "a fresh id for a client's call");
    assert.equal(published!.subject, undefined, "an action has no entity: no subject");
  });

  test("data=json renders protobuf data of the user function's types as JSON", async () => {
    const [raw] = await page("counter-summaries");
    const res = await fetch(`${base()}/counter-summaries?after=0&limit=1&data=json`);
    const [json] = ((await res.json()) as { events: CloudEventJson[] }).events;
    assert.equal(json!.datacontenttype, "application/json");
    assert.equal(json!.data_base64, undefined);
    assert.deepEqual(json!.data, { text: summaryOf(raw!) });
    assert.deepEqual([json!.id, json!.type, json!.offset], [raw!.id, raw!.type, raw!.offset]);
    assert.equal((await fetch(`${base()}/counter-summaries?data=xml`)).status, 400);
  });

  test("publishing the same (source, id) again stores it once", async () => {
    const headers = ce("greeting", "text/plain");
    const first = await publish("inbox", "once", headers);
    const again = await publish("inbox", "once", headers);
    assert.equal(first.status, 200);
    assert.equal(again.body.offset, first.body.offset);
    assert.equal(await head("inbox"), Number(first.body.offset));
  });

  test("bad input gets a clear error and changes nothing", async () => {
    const before = await head("inbox");
    const cases: [string, Promise<{ status: number; body: Record<string, unknown> }>, number, RegExp][] = [
      ["missing ce-id", publish("inbox", "x", { "ce-specversion": "1.0", "ce-source": "s", "ce-type": "t", "content-type": "text/plain" }), 400, /missing CloudEvent header ce-id/],
      ["wrong specversion", publish("inbox", "x", { ...ce("t", "text/plain"), "ce-specversion": "0.3" }), 400, /unsupported CloudEvents specversion "0\.3"/],
      ["unknown topic", publish("nowhere", "x", ce("t", "text/plain")), 404, /unknown topic "nowhere".*inbox/],
      ["JSON that does not parse", publish("inbox", "{oops", ce("t", "application/json")), 400, /not valid JSON/],
      ["protobuf of an unknown type", publish("inbox", new Uint8Array([8, 1]), ce("no.Such", "application/protobuf")), 400, /ce-type "no\.Such" is not a message type/],
      ["protobuf that does not decode", publish("inbox", new Uint8Array([0x0a, 0x05, 1]), ce("sdktest.domain.Added", "application/protobuf")), 400, /not a valid sdktest\.domain\.Added/],
      ["a bad time", publish("inbox", "x", ce("t", "text/plain", { "ce-time": "yesterday" })), 400, /not an RFC 3339 timestamp/],
      ["too large", publish("inbox", new Uint8Array(65 * 1024), ce("t", "application/octet-stream")), 413, /larger than the limit of 65536 bytes/],
      ["an empty batch", publish("inbox", "[]", { "content-type": "application/cloudevents-batch+json" }), 400, /non-empty JSON array/],
    ];
    for (const [what, answer, status, message] of cases) {
      const { status: got, body } = await answer;
      assert.equal(got, status, what);
      assert.match((body.error as { message: string }).message, message, what);
    }
    const res = await fetch(`${base()}/inbox?after=abc`);
    assert.equal(res.status, 400);
    assert.equal((await fetch(`${base()}/inbox`, { method: "PUT", body: "x" })).status, 405);
    assert.equal(await head("inbox"), before, "nothing was stored");
  });

  test("a topic reads as Server-Sent Events: live, and resumable with Last-Event-ID", { timeout: 20_000 }, async () => {
    const existing = await page("outbox");
    assert.ok(existing.length >= 3);
    const all = await sse(`${base()}/outbox`, {}, existing.length);
    assert.deepEqual(all.map((e) => e.id), existing.map((e) => e.offset));
    assert.deepEqual(all.map((e) => (JSON.parse(e.data) as CloudEventJson).id), existing.map((e) => e.id));
    // Resume after the second: the stream starts with the third; then a new message arrives live.
    const resumed = sse(`${base()}/outbox`, { "last-event-id": existing[1]!.offset }, existing.length - 2 + 1);
    await new Promise((r) => setTimeout(r, 100));
    await publish("inbox", "live", ce("words", "text/plain"));
    const got = await resumed;
    assert.deepEqual(got.slice(0, -1).map((e) => e.id), existing.slice(2).map((e) => e.offset));
    assert.equal((JSON.parse(got.at(-1)!.data) as CloudEventJson).data, "LIVE");
  });

  test("topic retention deletes old messages and keeps the head", { timeout: 20_000 }, async () => {
    const short = await startTestProxy(server.port, { store: "memory", topicRetentionMs: 300 });
    try {
      const url = `http://127.0.0.1:${short.port}/eventing/topics`;
      const res = await fetch(`${url}/inbox`, { method: "POST", headers: ce("t", "text/plain"), body: "old" });
      const { offset } = (await res.json()) as { offset: string };
      const count = async () => ((await (await fetch(url)).json()) as { topics: { topic: string; messages: number; head: string }[] }).topics.find((t) => t.topic === "inbox")!;
      assert.equal((await count()).messages, 1);
      // The retention pass runs every second at most.
      await eventually(async () => (await count()).messages === 0, () => "the old message to be deleted", 5_000);
      assert.equal((await count()).head, offset, "the head stays: offsets are never reused");
    } finally {
      await short.stop();
    }
  });

  test("with a token, the eventing endpoints need it", async () => {
    const guarded = await startTestProxy(server.port, { store: "memory", eventingToken: "s3cret" });
    try {
      const url = `http://127.0.0.1:${guarded.port}/eventing/topics/inbox`;
      const denied = await fetch(url, { method: "POST", headers: ce("t", "text/plain"), body: "x" });
      assert.equal(denied.status, 401);
      const allowed = await fetch(url, { method: "POST", headers: { ...ce("t", "text/plain"), authorization: "Bearer s3cret" }, body: "x" });
      assert.equal(allowed.status, 200);
    } finally {
      await guarded.stop();
    }
  });
});

/** Reads `count` SSE events from `url`, then closes the connection. */
function sse(url: string, headers: Record<string, string>, count: number): Promise<{ id: string; data: string }[]> {
  return new Promise((resolve, reject) => {
    const events: { id: string; data: string }[] = [];
    const req = http.get(url, { headers: { accept: "text/event-stream", ...headers } }, (res) => {
      if (res.statusCode !== 200 || !String(res.headers["content-type"]).startsWith("text/event-stream")) {
        reject(new Error(`SSE answered ${res.statusCode} ${res.headers["content-type"]}`));
        return;
      }
      let buffer = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        buffer += chunk;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const id = /^id: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (id !== undefined && data !== undefined) events.push({ id, data });
          if (events.length === count) {
            req.destroy();
            resolve(events);
            return;
          }
        }
      });
    });
    req.on("error", (e) => (events.length === count ? undefined : reject(e)));
    setTimeout(() => {
      req.destroy();
      reject(new Error(`SSE: ${events.length} of ${count} events after 10 s`));
    }, 10_000).unref();
  });
}
