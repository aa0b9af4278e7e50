// The broker is replaceable: topics through an adapter passed to startProxy (here an in-memory one,
// written against the Broker interface only, as an adapter for NATS JetStream or Kafka would be: it
// stores messages; keys and payload conventions are the proxy's).
// The same user function and the same HTTP endpoints work unchanged, and the proxy's store holds
// no topic message and no topic consumer position.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { serve, type UserFunctionServer } from "@cloudstate-ts/sdk";
import type { Broker, ConsumerOffsets, ConsumerPosition, RunningProxy, TopicInfo, TopicMessage, TopicPublish } from "../packages/proxy/src/index.js";
import { counterEntity } from "../packages/sdk/src/testdata/counter.js";
import { eventSubscriber } from "../packages/sdk/src/testdata/eventing.js";
import { eventually } from "./support/grpc-client.js";
import { startTestProxy } from "./support/proxy.js";

const quiet = { info() {}, warn() {}, error() {} };

/** A broker in memory: per topic an array, offsets from 1; consumer positions in a map. */
class InMemoryBroker implements Broker {
  readonly description = "in-memory test broker";
  readonly logs = new Map<string, TopicMessage[]>();
  private readonly watchers = new Set<() => void>();
  readonly positions = new Map<string, { offset: number; owner: string | undefined }>();

  publish(messages: readonly TopicPublish[]): Promise<number[]> {
    const offsets = messages.map((m) => {
      const log = this.logs.get(m.topic) ?? [];
      this.logs.set(m.topic, log);
      const same = log.find((x) => x.source === m.source && x.id === m.id);
      if (same) return same.offset;
      log.push({ ...m, offset: log.length + 1 });
      return log.length;
    });
    for (const wake of this.watchers) wake();
    return Promise.resolve(offsets);
  }

  read(topic: string, after: number, limit: number): Promise<TopicMessage[]> {
    return Promise.resolve((this.logs.get(topic) ?? []).filter((m) => m.offset > after).slice(0, limit));
  }

  watch(wake: () => void): () => void {
    this.watchers.add(wake);
    return () => this.watchers.delete(wake);
  }

  topics(): Promise<TopicInfo[]> {
    return Promise.resolve([...this.logs].map(([topic, log]) => ({ topic, messages: log.length, head: log.length })));
  }

  trim(): Promise<number> {
    return Promise.resolve(0);
  }

  readonly offsets: ConsumerOffsets = {
    get: (group, source) => Promise.resolve(this.positions.get(`${group} ${source}`)?.offset ?? 0),
    claim: (group, source, owner) => {
      const p = this.positions.get(`${group} ${source}`) ?? { offset: 0, owner: undefined };
      if (p.owner !== undefined && p.owner !== owner) return Promise.resolve(false);
      this.positions.set(`${group} ${source}`, { ...p, owner });
      return Promise.resolve(true);
    },
    release: (group, source) => {
      const p = this.positions.get(`${group} ${source}`);
      if (p) p.owner = undefined;
      return Promise.resolve();
    },
    commit: (group, source, owner, offset) => {
      const p = this.positions.get(`${group} ${source}`);
      if (p?.owner !== owner) return Promise.resolve(false);
      p.offset = Math.max(p.offset, offset);
      return Promise.resolve(true);
    },
    list: () =>
      Promise.resolve(
        [...this.positions].map(([key, p]): ConsumerPosition => ({ group: key.split(" ")[0]!, source: key.split(" ")[1]!, offset: p.offset, owner: p.owner })),
      ),
  };
}

describe("a broker adapter in place of the store's topic logs", () => {
  let server: UserFunctionServer;
  let proxy: RunningProxy;
  const broker = new InMemoryBroker();

  before(async () => {
    server = await serve({ entities: [counterEntity(), eventSubscriber()], port: 0, host: "127.0.0.1", logger: quiet });
    proxy = await startTestProxy(server.port, { eventingCommitIntervalMs: 20, eventingPollIntervalMs: 50 }, { broker });
  });

  after(async () => {
    await proxy?.stop();
    await server?.close();
  });

  test("topics published over HTTP and the subscriber's replies go through the adapter; the store keeps none", async () => {
    const res = await fetch(`http://127.0.0.1:${proxy.port}/eventing/topics/inbox`, {
      method: "POST",
      headers: { "ce-specversion": "1.0", "ce-id": "b-1", "ce-source": "tests", "ce-type": "words", "content-type": "text/plain" },
      body: "via adapter",
    });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { topic: "inbox", offset: "1" });
    await eventually(() => (broker.logs.get("outbox")?.length ?? 0) === 1, () => "the reply in the adapter's outbox");
    assert.equal(Buffer.from(broker.logs.get("outbox")![0]!.data).toString(), "VIA ADAPTER");
    await eventually(() => broker.positions.get("sdktest-group topic:inbox")?.offset === 1, () => "the consumer's position committed in the adapter");
    // Reading a topic over HTTP reads the adapter too.
    const page = (await (await fetch(`http://127.0.0.1:${proxy.port}/eventing/topics/outbox`)).json()) as { events: { data: string }[] };
    assert.deepEqual(page.events.map((e) => e.data), ["VIA ADAPTER"]);
    assert.deepEqual(await proxy.store.topics.topics(), [], "no topic in the store");
    assert.deepEqual(
      (await proxy.store.offsets.list()).map((p) => p.source),
      ["event-log:counter"],
      "the store keeps only event-log positions (event logs are the journal)",
    );
  });
});
