// The console API's eventing view and dead letters, against a real proxy in front of the SDK's test
// subscribers (packages/sdk/src/testdata/eventing.ts): the inbox consumer fails on the text "fail",
// which becomes a dead letter after its retries, is listed decoded, and is dismissed.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { create, createRegistry, toBinary } from "@bufbuild/protobuf";
import { serve, type UserFunctionServer } from "@cloudstate-ts/sdk";
import { counterEntity } from "../../../sdk/src/testdata/counter.js";
import { eventSubscriber } from "../../../sdk/src/testdata/eventing.js";
import { AddedSchema, file_sdktest_domain } from "../../../sdk/src/testdata/gen/sdktest/domain_pb.js";
import { startTestProxy } from "../../../../tests/support/proxy.js";
import type { RunningProxy } from "../index.js";
import type { DeadLetter } from "../store/store.js";
import { AdminApi, deadLetterJson } from "./admin-api.js";

const quiet = { info() {}, warn() {}, error() {} };

interface ConsumerJson {
  service: string;
  group: string;
  source: string;
  active: boolean;
  committed: number;
  head: number;
  lag: number;
  inFlight: number;
  delivered: number;
  deadLetters: number;
}
interface EventingJson {
  broker: string | null;
  consumers: ConsumerJson[];
  topics: { topic: string; messages: number; head: number }[];
}
interface DeadLetterJson {
  id: number;
  group: string;
  source: string;
  offset: number;
  messageId: string;
  type: string;
  subject: string;
  contentType: string;
  attempts: number;
  error: string;
  time: string;
  dataFormat: string;
  data: unknown;
}

async function eventually<T>(get: () => Promise<T>, done: (value: T) => boolean, what: string, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await get();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

describe("the console API's eventing and dead letters", () => {
  let uf: UserFunctionServer;
  let proxy: RunningProxy;
  const api = (path: string, init?: RequestInit) => fetch(`http://127.0.0.1:${proxy.port}/console/api${path}`, init);
  const json = async <T>(path: string): Promise<T> => {
    const res = await api(path);
    assert.equal(res.status, 200, `GET ${path}`);
    return (await res.json()) as T;
  };

  before(async () => {
    uf = await serve({ entities: [counterEntity(), eventSubscriber()], port: 0, host: "127.0.0.1", logger: quiet });
    proxy = await startTestProxy(uf.port, {
      console: true,
      store: "memory",
      eventingMaxAttempts: 2,
      eventingBackoffMinMs: 10,
      eventingBackoffMaxMs: 20,
      eventingCommitIntervalMs: 20,
      eventingPollIntervalMs: 50,
    });
  });

  after(async () => {
    await proxy?.stop();
    await uf?.close();
  });

  async function publish(id: string, text: string): Promise<number> {
    const res = await fetch(`http://127.0.0.1:${proxy.port}/eventing/topics/inbox`, {
      method: "POST",
      headers: { "ce-specversion": "1.0", "ce-id": id, "ce-source": "tests/console", "ce-type": "text", "content-type": "text/plain" },
      body: text,
    });
    assert.equal(res.status, 200);
    return Number(((await res.json()) as { offset: string }).offset);
  }

  test("a failing message becomes a dead letter: the consumer goes past it, the list decodes it, DELETE dismisses it", async () => {
    const before = await json<EventingJson>("/eventing");
    assert.match(before.broker ?? "", /^store \(/);
    assert.deepEqual(
      before.consumers.map((c) => [c.source, c.service, c.group]).sort(),
      [
        ["event-log:counter", "sdktest.EventSubscriber", "sdktest.EventSubscriber"],
        ["topic:inbox", "sdktest.EventSubscriber", "sdktest-group"],
      ],
    );
    assert.deepEqual(before.topics.map((t) => t.topic), ["counter-summaries", "inbox", "outbox"]);

    const failed = await publish("m-1", "fail");
    const hello = await publish("m-2", "hello");
    assert.ok(hello > failed);

    // The event-log consumer too: an Added through the console's own call API.
    const call = await api("/call", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ service: "sdktest.Counter", method: "Add", body: { counterId: "c1", amounts: [4] } }),
    });
    assert.deepEqual(((await call.json()) as { reply: unknown }).reply, { value: 4, changes: 1 });

    const eventing = await eventually(
      () => json<EventingJson>("/eventing"),
      (e) =>
        e.consumers.some((c) => c.source === "topic:inbox" && c.deadLetters === 1 && c.committed >= hello) &&
        e.consumers.some((c) => c.source === "event-log:counter" && c.head >= 1 && c.lag === 0) &&
        (e.topics.find((t) => t.topic === "outbox")?.messages ?? 0) >= 1,
      "the inbox consumer to set the failing message aside and commit past both",
    );
    const inbox = eventing.consumers.find((c) => c.source === "topic:inbox")!;
    assert.equal(inbox.active, true);
    assert.equal(inbox.head, hello);
    assert.equal(inbox.lag, 0);
    assert.equal(inbox.delivered, 1);
    assert.equal(inbox.inFlight, 0);
    assert.deepEqual(eventing.topics.find((t) => t.topic === "inbox"), { topic: "inbox", messages: 2, head: hello });
    const counter = eventing.consumers.find((c) => c.source === "event-log:counter")!;
    assert.equal(counter.committed, counter.head);
    assert.equal(counter.delivered, 1);

    const list = await json<{ count: number; deadLetters: DeadLetterJson[] }>("/dead-letters");
    assert.equal(list.count, 1);
    assert.equal(list.deadLetters.length, 1);
    const letter = list.deadLetters[0]!;
    assert.deepEqual(
      { ...letter, id: 0, time: "" },
      {
        id: 0,
        group: "sdktest-group",
        source: "topic:inbox",
        offset: failed,
        messageId: "m-1",
        type: "text",
        subject: "",
        contentType: "text/plain",
        attempts: 2,
        error: "told to fail",
        time: "",
        dataFormat: "text",
        data: "fail",
      },
    );
    assert.ok(Math.abs(Date.parse(letter.time) - Date.now()) < 60_000, `an ISO time: ${letter.time}`);
    assert.ok(letter.id > 0);

    // Dismissed once; a second time there is none; ids that are not ids are refused.
    const removed = await api(`/dead-letters?id=${letter.id}`, { method: "DELETE" });
    assert.equal(removed.status, 200);
    assert.deepEqual(await removed.json(), { removed: letter.id });
    assert.deepEqual(await json("/dead-letters"), { count: 0, deadLetters: [] });
    const again = await api(`/dead-letters?id=${letter.id}`, { method: "DELETE" });
    assert.equal(again.status, 404);
    assert.equal(((await again.json()) as { error: { code: string } }).error.code, "NOT_FOUND");
    for (const id of ["abc", "0", "-1", "1.5", ""]) {
      const res = await api(`/dead-letters?id=${encodeURIComponent(id)}`, { method: "DELETE" });
      assert.equal(res.status, 400, `id=${id}`);
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, "INVALID_ARGUMENT");
    }
    assert.equal((await api("/dead-letters", { method: "DELETE" })).status, 400, "no id");
    assert.equal((await api("/dead-letters?limit=0")).status, 400);
    assert.equal((await api("/dead-letters?limit=many")).status, 400);
    assert.equal((await api("/dead-letters?limit=100000")).status, 200, "a large limit is capped, not refused");
  });
});

test("without eventing, /eventing says so with empty lists", async () => {
  const api = new AdminApi({ eventing: undefined } as never);
  const r = await api.handle("GET", "/eventing", new URLSearchParams(), () => Promise.resolve(new Uint8Array()));
  assert.deepEqual(r, { status: 200, body: { broker: null, consumers: [], topics: [] } });
});

test("a dead letter's data is decoded for people: JSON, text, known protobuf as JSON, anything else base64", () => {
  const registry = createRegistry(file_sdktest_domain);
  const letter = (type: string, contentType: string, data: Uint8Array | string): DeadLetter => ({
    id: 1,
    group: "g",
    source: "topic:t",
    offset: 7,
    messageId: "m",
    type,
    subject: "",
    contentType,
    data: typeof data === "string" ? Buffer.from(data) : data,
    attempts: 3,
    error: "boom",
    time: 0,
  });
  const decoded = (l: DeadLetter) => {
    const j = deadLetterJson(l, registry) as { dataFormat: string; data: unknown; time: string };
    return [j.dataFormat, j.data];
  };
  assert.deepEqual(decoded(letter("x", "application/json", '{"a":[1,2]}')), ["json", { a: [1, 2] }]);
  assert.deepEqual(decoded(letter("x", "application/cloudevents+json", '"s"')), ["json", "s"]);
  assert.deepEqual(decoded(letter("x", "application/json", "not json")), ["text", "not json"]);
  assert.deepEqual(decoded(letter("x", "text/plain; charset=utf-8", "héllo")), ["text", "héllo"]);
  const added = toBinary(AddedSchema, create(AddedSchema, { amount: 5 }));
  assert.deepEqual(decoded(letter("sdktest.domain.Added", "application/protobuf", added)), ["protobuf", { amount: 5 }]);
  assert.deepEqual(decoded(letter("no.such.Type", "application/protobuf", added)), ["base64", { base64: Buffer.from(added).toString("base64") }]);
  assert.deepEqual(decoded(letter("x", "application/octet-stream", new Uint8Array([0, 255]))), ["base64", { base64: "AP8=" }]);
  assert.deepEqual(decoded(letter("x", "text/plain", new Uint8Array([0xff, 0xfe]))), ["base64", { base64: "//4=" }]);
  assert.equal((deadLetterJson(letter("x", "text/plain", ""), registry) as { time: string }).time, "1970-01-01T00:00:00.000Z");
});
