// Direction (b), eventing (PROTOCOL.md §8): a client emits events with EventSourcedEventingSource and
// checks that the proxy delivers them from the event log to EventingTckModel.ConsumeEvent — in journal
// order per entity, with their CloudEvent metadata (seen by the model's probe) —, that a forward step
// reaches EventingTwo (read back by a client call), and, over the proxy's eventing HTTP endpoints
// (POST / GET /eventing/topics/<topic>), that the subscriber's replies are published to its out topic
// and that a JSON CloudEvent posted to a topic is answered with JSON. The HTTP endpoints are our
// proxy's: with TCK_PROXY set, the tests that use them are skipped when that proxy does not serve them.
import assert from "node:assert/strict";
import { after, before, describe, test, type TestContext } from "node:test";
import { fromBinary } from "@bufbuild/protobuf";
import { EventingTckModel, EventingTwo, EventSourcedEventingSource, ResponseSchema } from "../gen/cloudstate/tck/model/eventing_pb.js";
import { EVENTING_PERSISTENCE_IDS, EVENTING_STEP, EVENTING_TOPICS, JSON_ANSWER_TYPE, type ModelCall } from "../model/index.js";
import { eventually } from "./expectations.js";
import { EXTERNAL_PROXY, startProxyUnderTest, type ProxyUnderTest } from "./proxy-under-test.js";

/** How long a consumed event may take to show its effects. */
const WITHIN_MS = 10_000;

/** A CloudEvent as the topic endpoints serve it (structured mode, with the topic offset). */
interface TopicEvent {
  id: string;
  source: string;
  type: string;
  subject?: string;
  datacontenttype: string;
  data?: unknown;
  data_base64?: string;
  offset: string;
}

/** Reads a topic page by page from `GET /eventing/topics/<topic>`, keeping every event read so far. */
class TopicReader {
  readonly events: TopicEvent[] = [];
  private after = "0";

  constructor(
    private readonly base: string,
    readonly topic: string,
  ) {}

  /** Reads what was published since the last read. */
  async poll(): Promise<TopicEvent[]> {
    for (;;) {
      const url = `${this.base}/eventing/topics/${encodeURIComponent(this.topic)}?after=${this.after}&limit=1000`;
      const response = await fetch(url, { signal: AbortSignal.timeout(5_000) });
      const text = await response.text();
      assert.equal(response.status, 200, `eventing: GET ${url} answers HTTP 200 (got ${response.status}: ${text})`);
      const page = JSON.parse(text) as { events: TopicEvent[] };
      if (page.events.length === 0) return this.events;
      this.events.push(...page.events);
      this.after = page.events[page.events.length - 1]!.offset;
    }
  }
}

const metadataOf = (call: ModelCall, key: string) => {
  const value = call.metadata.find(([k]) => k.toLowerCase() === key.toLowerCase())?.[1];
  return typeof value === "string" ? value : value === undefined ? undefined : new TextDecoder().decode(value);
};

describe("direction (b) — eventing through the proxy", () => {
  let p: ProxyUnderTest;
  let base: string;
  /** Why the tests that use the topic endpoints are skipped (another proxy without them); undefined: they run. */
  let noTopicEndpoints: string | undefined;

  before(async () => {
    p = await startProxyUnderTest();
    base = `http://${p.address}`;
    if (EXTERNAL_PROXY) {
      // Only another proxy may lack them: with ours, a missing endpoint is a failure, not a skip.
      const answer = await fetch(`${base}/eventing/topics`, { signal: AbortSignal.timeout(5_000) }).then(
        (r) => (r.ok && (r.headers.get("content-type") ?? "").includes("json") ? undefined : `HTTP ${r.status}`),
        (e: Error) => e.message,
      );
      if (answer !== undefined) {
        noTopicEndpoints = `the proxy at ${EXTERNAL_PROXY} does not serve our eventing HTTP endpoints (GET /eventing/topics: ${answer}), through which this test publishes to and reads topics`;
      }
    }
  });
  after(() => p.close());

  const emit = (id: string, ...values: string[]) => p.client.unary(EventSourcedEventingSource.method.emit, { id, values });
  const recorded = async (id: string) => (await p.client.unary(EventingTwo.method.record, { id })).message;
  /** False (and the test skipped) when the topic endpoints are not there. */
  const topicEndpoints = (t: TestContext) => {
    if (noTopicEndpoints === undefined) return true;
    t.skip(noTopicEndpoints);
    return false;
  };

  test("eventing: event-log events reach the subscriber in journal order per entity, each with its CloudEvent metadata", async () => {
    const [a, b] = [p.id("order-a"), p.id("order-b")];
    const value = (entity: string, n: number) => EVENTING_STEP.reply(`${entity}/${n}`);
    await emit(a, value(a, 1), value(a, 2));
    await emit(b, value(b, 1));
    await emit(a, value(a, 3));
    await emit(b, value(b, 2), value(b, 3));
    const consumed = (entity: string) => {
      const calls = p.probe.calls.filter((c) => c.service === EventingTckModel.typeName && c.method === "ConsumeEvent" && c.id?.startsWith(`reply:${entity}/`));
      // At least once: a redelivery (the same ce-id) is not a new event.
      const first = new Map<string, ModelCall>();
      for (const call of calls) if (!first.has(metadataOf(call, "ce-id") ?? "")) first.set(metadataOf(call, "ce-id") ?? "", call);
      return [...first.values()];
    };
    for (const entity of [a, b]) {
      const expected = [1, 2, 3].map((n) => value(entity, n));
      await eventually(
        `eventing: the three events of ${entity} reach ConsumeEvent`,
        () => assert.deepEqual(consumed(entity).map((c) => c.id), expected, "eventing: the events of one entity, in journal order"),
        WITHIN_MS,
      );
      const offsets: number[] = [];
      for (const call of consumed(entity)) {
        const what = `eventing: the CloudEvent metadata of event ${call.id}`;
        assert.equal(metadataOf(call, "ce-specversion"), "1.0", `${what}: ce-specversion`);
        assert.equal(metadataOf(call, "ce-source"), EVENTING_PERSISTENCE_IDS.source, `${what}: ce-source is the event log's persistence id`);
        assert.equal(metadataOf(call, "ce-type"), "cloudstate.tck.model.eventing.EventingEvent", `${what}: ce-type is the event's type`);
        assert.equal(metadataOf(call, "ce-subject"), entity, `${what}: ce-subject is the entity id`);
        assert.ok(metadataOf(call, "Content-Type"), `${what}: Content-Type is set`);
        const id = metadataOf(call, "ce-id") ?? "";
        assert.match(id, /^\d+$/, `${what}: ce-id is the event's offset`);
        offsets.push(Number(id));
      }
      assert.deepEqual(offsets, [...offsets].sort((x, y) => x - y), `eventing: the offsets (ce-id) of ${entity}'s events grow along its journal`);
    }
  });

  test("eventing: a forward step reaches EventingTwo, with the consumed event's subject", async () => {
    const [source, target] = [p.id("forward-source"), p.id("forward-target")];
    await emit(source, EVENTING_STEP.forward(target));
    await eventually("eventing: EventingTwo records the forwarded event", async () => assert.equal(await recorded(target), source, "eventing: EventingTwo's values"), WITHIN_MS);
  });

  test("eventing: the subscriber's replies are published to its out topic in journal order; a no reply publishes nothing", async (t) => {
    if (!topicEndpoints(t)) return;
    const entity = p.id("published");
    const out = new TopicReader(base, EVENTING_TOPICS.out);
    await emit(entity, EVENTING_STEP.reply(`${entity}/1`), EVENTING_STEP.noReply, EVENTING_STEP.reply(`${entity}/2`));
    await emit(entity, EVENTING_STEP.noReply, EVENTING_STEP.reply(`${entity}/3`));
    const published = async () => {
      const events = (await out.poll()).filter((e) => e.subject === entity);
      return events.map((e) => {
        assert.equal(e.type, ResponseSchema.typeName, `eventing: the published event's type (offset ${e.offset})`);
        assert.match(e.datacontenttype, /protobuf/, `eventing: the published event's data content type (offset ${e.offset})`);
        assert.ok(e.data_base64 !== undefined, `eventing: protobuf data is served as data_base64 (offset ${e.offset})`);
        return fromBinary(ResponseSchema, Buffer.from(e.data_base64, "base64")).message;
      });
    };
    const expected = [1, 2, 3].map((n) => `${entity}/${n}`);
    await eventually(
      `eventing: the replies reach topic ${EVENTING_TOPICS.out}`,
      async () => assert.deepEqual(await published(), expected, "eventing: one message per reply (none for a no reply), with the entity as subject, in journal order"),
      WITHIN_MS,
    );
  });

  test("eventing: a JSON CloudEvent posted to a topic reaches the method taking Any, and its JSON answer is published", async (t) => {
    if (!topicEndpoints(t)) return;
    const [id, type] = [p.id("json-event"), "com.example.tck.Greeting"];
    const body = { greeting: "hello", from: id };
    const posted = await fetch(`${base}/eventing/topics/${EVENTING_TOPICS.json}`, {
      method: "POST",
      headers: { "ce-specversion": "1.0", "ce-id": id, "ce-source": "tck", "ce-type": type, "content-type": "application/json" },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(5_000),
    });
    assert.equal(posted.status, 200, `eventing: POST /eventing/topics/${EVENTING_TOPICS.json} answers HTTP 200 (got ${posted.status}: ${await posted.text()})`);
    const out = new TopicReader(base, EVENTING_TOPICS.jsonOut);
    const answer = async () => {
      const events = (await out.poll()).filter((e) => (e.data as { id?: unknown } | undefined)?.id === id);
      assert.equal(events.length, 1, `eventing: one JSON answer to the event ${id} in topic ${EVENTING_TOPICS.jsonOut}`);
      return events[0]!;
    };
    await eventually(`eventing: the JSON answer reaches topic ${EVENTING_TOPICS.jsonOut}`, answer, WITHIN_MS);
    const event = await answer();
    assert.equal(event.type, JSON_ANSWER_TYPE, "eventing: the answer's type (from json.cloudstate.io/<type>)");
    assert.match(event.datacontenttype, /json/, "eventing: the answer's data content type is JSON");
    assert.deepEqual(event.data, { type, id, received: body }, "eventing: the JSON answer, inline as data");
  });
});
