import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, test } from "node:test";
import pg from "pg";
import { storeContract } from "../contract.js";
import { openStore } from "../open-store.js";
import {
  SequenceConflictError,
  StoreUnavailableError,
  VersionConflictError,
  type JournalAppend,
  type StoredPayload,
  type TopicPublish,
} from "../store.js";
import { notifyChannel } from "./notifications.js";
import { PostgresStore, type PostgresStoreOptions } from "./postgres-store.js";
import { migrate, migrations, quoteIdentifier, schemaVersion, type Migration } from "./schema.js";
import { startTestPostgres, type TestPostgres } from "./test-server.js";

const PID = "shop.ShoppingCart";

// One server for the file; each store gets a schema of its own, so tests never see each other's data.
let server: TestPostgres;
let admin: pg.Pool;
let password: string;
let schemas = 0;
const freshSchema = () => `test_${++schemas}`;
const open = (options: PostgresStoreOptions = {}) => PostgresStore.open(server.url, { schema: freshSchema(), ...options });

function append(entityId: string, expectedSequence: number, ...events: string[]): JournalAppend {
  return { persistenceId: PID, entityId, expectedSequence, events: events.map(payload) };
}

function payload(value: string): StoredPayload {
  return { typeUrl: "type.googleapis.com/shop.ItemAdded", bytes: Buffer.from(value) };
}

async function contents(store: PostgresStore, entityId: string): Promise<string[]> {
  return (await store.journal.events(PID, entityId)).map((e) => Buffer.from(e.bytes).toString());
}

async function count(sql: string): Promise<number> {
  return Number((await admin.query<{ n: string }>(`SELECT count(*) AS n FROM (${sql}) AS rows`)).rows[0]!.n);
}

// Until one of the store's statements waits for a lock another session holds.
async function waitForLockWait(): Promise<void> {
  const deadline = Date.now() + 5_000;
  while ((await count("SELECT 1 FROM pg_stat_activity WHERE application_name = 'cloudstate-proxy' AND wait_event_type = 'Lock'")) === 0) {
    if (Date.now() > deadline) throw new Error("the store never waited for the lock");
    await sleep(10);
  }
}

describe("postgres store", () => {
  before(async () => {
    server = await startTestPostgres();
    admin = new pg.Pool({ connectionString: server.url, max: 2 });
    admin.on("error", () => undefined); // idle connections break when a test stops the server
    password = decodeURIComponent(new URL(server.url).password);
  });

  after(async () => {
    await admin?.end();
    await server?.destroy();
  });

  storeContract("postgres", () => open(), { groupCommit: true, sharedByProcesses: true });

  describe("opening", () => {
    test("openStore opens a postgres URL; fsync durability keeps synchronous_commit on, relaxed turns it off", async () => {
      const store = await openStore(server.url);
      try {
        assert.ok(store instanceof PostgresStore);
        assert.equal(store.description, `postgres://cloudstate@127.0.0.1:${server.port}/postgres`);
        assert.equal((await store.settings()).synchronousCommit, "on");
      } finally {
        await store.close();
      }
      const relaxed = await openStore(server.url, { durability: "relaxed" });
      try {
        assert.equal(await (relaxed as PostgresStore).settings().then((s) => s.synchronousCommit), "off");
      } finally {
        await relaxed.close();
      }
    });

    test("a wrong password is refused with PostgreSQL's reason, and no password is repeated", async () => {
      const url = new URL(server.url);
      url.password = "not-the-password";
      await assert.rejects(PostgresStore.open(url.href, { schema: freshSchema() }), (error: Error) => {
        assert.ok(!(error instanceof StoreUnavailableError), "a misconfiguration is not worth retrying");
        assert.match(error.message, /password authentication failed/);
        assert.doesNotMatch(error.message, /not-the-password/);
        return true;
      });
    });

    test("no server at the address rejects the open with StoreUnavailableError at once", async () => {
      const started = Date.now();
      await assert.rejects(PostgresStore.open(`postgres://cloudstate:${encodeURIComponent(password)}@127.0.0.1:1/postgres`), (error: Error) => {
        assert.ok(error instanceof StoreUnavailableError);
        assert.match(error.message, /postgres:\/\/cloudstate@127\.0\.0\.1:1\/postgres/);
        assert.ok(!error.message.includes(password));
        return true;
      });
      assert.ok(Date.now() - started < 3_000);
    });
  });

  describe("schema", () => {
    test("a new schema is created at the latest version, each migration recorded once", async () => {
      const store = await open();
      try {
        assert.equal((await store.settings()).schemaVersion, migrations.length);
        const recorded = await admin.query(`SELECT version, description FROM ${quoteIdentifier(store.schema)}.schema_migrations ORDER BY version`);
        assert.deepEqual(
          recorded.rows,
          migrations.map((m, i) => ({ version: i + 1, description: m.description })),
        );
      } finally {
        await store.close();
      }
    });

    test("reopening a schema keeps its version and data (migrating is idempotent)", async () => {
      const schema = freshSchema();
      for (let round = 0; round < 3; round++) {
        const store = await PostgresStore.open(server.url, { schema });
        try {
          assert.equal((await store.settings()).schemaVersion, migrations.length);
          await store.journal.append(append("cart-1", round, `${round}`));
        } finally {
          await store.close();
        }
      }
      assert.equal(await count(`SELECT 1 FROM ${quoteIdentifier(schema)}.journal`), 3);
      assert.equal(await count(`SELECT 1 FROM ${quoteIdentifier(schema)}.schema_migrations`), migrations.length);
    });

    test("stores opening the same new schema at once all come up, and it is migrated once", async () => {
      const schema = freshSchema();
      const stores = await Promise.all(Array.from({ length: 4 }, () => PostgresStore.open(server.url, { schema })));
      try {
        assert.equal(await count(`SELECT 1 FROM ${quoteIdentifier(schema)}.schema_migrations`), migrations.length);
        await Promise.all(stores.map((store, i) => store.journal.append(append(`cart-${i}`, 0, "a"))));
        assert.deepEqual(await stores[0]!.journal.entityIds(PID), ["cart-0", "cart-1", "cart-2", "cart-3"]);
      } finally {
        await Promise.all(stores.map((store) => store.close()));
      }
    });

    test("two migrations running at once take turns: the second finds the work done", async () => {
      const schema = freshSchema();
      // Without the advisory lock, both would see version 0 and the second CREATE TABLE would fail.
      const slow: Migration[] = [{ description: "slow", sql: "CREATE TABLE a (x integer); SELECT pg_sleep(0.2); INSERT INTO a VALUES (1)" }];
      const clients = [new pg.Client(server.url), new pg.Client(server.url)];
      try {
        await Promise.all(clients.map((c) => c.connect()));
        assert.deepEqual(await Promise.all(clients.map((c) => migrate(c, schema, slow))), [1, 1]);
        assert.equal(await count(`SELECT 1 FROM ${quoteIdentifier(schema)}.a`), 1);
        assert.equal(await schemaVersion(clients[0]!, schema), 1);
      } finally {
        await Promise.all(clients.map((c) => c.end()));
      }
    });

    test("a schema at an older version gets only the migrations it has not seen; a failing one changes nothing", async () => {
      const schema = freshSchema();
      const v1: Migration = { description: "a", sql: "CREATE TABLE a (x integer)" };
      const v2: Migration = { description: "b", sql: "CREATE TABLE b (y integer); INSERT INTO a VALUES (2)" };
      const broken: Migration = { description: "broken", sql: "CREATE TABLE c (z integer); NOT SQL" };
      const client = new pg.Client(server.url);
      await client.connect();
      try {
        assert.equal(await migrate(client, schema, [v1]), 1);
        await client.query(`INSERT INTO ${quoteIdentifier(schema)}.a VALUES (1)`);
        assert.equal(await migrate(client, schema, [v1, v2]), 2);
        assert.equal(await migrate(client, schema, [v1, v2]), 2);
        assert.deepEqual((await client.query(`SELECT x FROM ${quoteIdentifier(schema)}.a ORDER BY x`)).rows, [{ x: 1 }, { x: 2 }]);
        await assert.rejects(migrate(client, schema, [v1, v2, broken]), /migration 3 \(broken\) failed/);
        assert.equal(await schemaVersion(client, schema), 2);
        assert.equal(await count(`SELECT 1 FROM pg_tables WHERE schemaname = '${schema}' AND tablename = 'c'`), 0);
      } finally {
        await client.end();
      }
    });

    test("a schema at version 1 (journal and state) gains topics, offsets and dead letters, and its journal becomes an event log", async () => {
      const schema = freshSchema();
      const client = new pg.Client(server.url);
      await client.connect();
      try {
        assert.equal(await migrate(client, schema, migrations.slice(0, 1)), 1);
        await client.query(
          `INSERT INTO ${quoteIdentifier(schema)}.journal (persistence_id, entity_id, sequence, type_url, payload, written_at)` +
            " VALUES ($1, 'cart-1', 1, 't', 'old', '2024-01-02T03:04:05.678Z'), ($1, 'cart-2', 1, 't', 'older', '2024-01-02T03:04:05.679Z')",
          [PID],
        );
      } finally {
        await client.end();
      }
      const store = await PostgresStore.open(server.url, { schema });
      try {
        assert.equal((await store.settings()).schemaVersion, migrations.length);
        const log = await store.journal.eventLog(PID, 0, 10);
        assert.deepEqual(
          log.map((e) => [e.entityId, e.sequence, Buffer.from(e.bytes).toString(), e.timestamp]),
          [
            ["cart-1", 1, "old", Date.parse("2024-01-02T03:04:05.678Z")],
            ["cart-2", 1, "older", Date.parse("2024-01-02T03:04:05.679Z")],
          ],
        );
        await store.journal.append(append("cart-1", 1, "new"));
        const [added] = await store.journal.eventLog(PID, log[1]!.offset, 10);
        assert.equal(Buffer.from(added!.bytes).toString(), "new");
        assert.ok(Math.abs(added!.timestamp - Date.now()) < 5_000, `timestamp ${added!.timestamp}`);
        assert.equal(await store.journal.eventLogHead(PID), added!.offset);
        const [offset] = await store.topics.publish([
          { topic: "t", id: "1", source: "s", type: "t", subject: "", contentType: "text/plain", time: 0, data: Buffer.from("m") },
        ]);
        assert.deepEqual(await store.topics.topics(), [{ topic: "t", messages: 1, head: offset }]);
        assert.equal(await store.offsets.claim("g", "s", "o", 1_000), true);
        assert.equal(await store.deadLetters.count(), 0);
      } finally {
        await store.close();
      }
    });

    test("a schema written by a newer proxy (higher version) is refused with a clear error", async () => {
      const schema = freshSchema();
      await (await PostgresStore.open(server.url, { schema })).close();
      await admin.query(`INSERT INTO ${quoteIdentifier(schema)}.schema_migrations (version, description) VALUES ($1, 'future')`, [
        migrations.length + 1,
      ]);
      await assert.rejects(PostgresStore.open(server.url, { schema }), (error: Error) => {
        assert.ok(!(error instanceof StoreUnavailableError), "retrying will not help");
        assert.match(error.message, /newer than this proxy knows.*upgrade the proxy/);
        return true;
      });
    });
  });

  describe("group commit", () => {
    test("200 concurrent appends from 200 entities commit in far fewer transactions than writes", async () => {
      const store = await open();
      try {
        await Promise.all(Array.from({ length: 200 }, (_, i) => store.journal.append(append(`cart-${i}`, 0, "a", "b"))));
        const stats = store.stats();
        assert.equal(stats.writes, 200);
        assert.ok(stats.batches <= 5, `expected a handful of batches, got ${stats.batches}`);
        assert.equal((await store.journal.entityIds(PID)).length, 200);
      } finally {
        await store.close();
      }
    });

    test("journal appends and value and CRDT writes issued together share one transaction", async () => {
      const store = await open();
      try {
        const state = (v: string) => ({ typeUrl: "type.googleapis.com/shop.Cart", bytes: Buffer.from(v) });
        await Promise.all(
          Array.from({ length: 30 }, (_, i) =>
            i % 3 === 0
              ? store.journal.append(append(`cart-${i}`, 0, "a"))
              : (i % 3 === 1 ? store.values : store.crdts).write({ persistenceId: PID, entityId: `cart-${i}`, expectedVersion: 0, value: state(`${i}`) }),
          ),
        );
        assert.deepEqual(store.stats(), { batches: 1, writes: 30 });
      } finally {
        await store.close();
      }
    });

    test("topic publishes share the transaction of the appends and value writes issued with them", async () => {
      const store = await open();
      try {
        const publish = (i: number) =>
          store.topics.publish([{ topic: `t-${i % 2}`, id: `${i}`, source: "s", type: "t", subject: "", contentType: "text/plain", time: 0, data: Buffer.from(`${i}`) }]);
        await Promise.all(
          Array.from({ length: 30 }, (_, i) =>
            i % 3 === 0
              ? store.journal.append(append(`cart-${i}`, 0, "a"))
              : i % 3 === 1
                ? publish(i)
                : store.values.write({ persistenceId: PID, entityId: `cart-${i}`, expectedVersion: 0, value: payload(`${i}`) }),
          ),
        );
        assert.deepEqual(store.stats(), { batches: 1, writes: 30 });
        assert.deepEqual(
          (await store.topics.topics()).map((t) => [t.topic, t.messages]),
          [
            ["t-0", 5],
            ["t-1", 5],
          ],
        );
      } finally {
        await store.close();
      }
    });

    test("a batch is capped at maxBatchSize, and the batches in flight at maxConcurrentBatches", async () => {
      const store = await open({ maxBatchSize: 10, maxConcurrentBatches: 2 });
      try {
        await Promise.all(Array.from({ length: 95 }, (_, i) => store.journal.append(append(`cart-${i}`, 0, "a"))));
        assert.deepEqual(store.stats(), { batches: 10, writes: 95 });
      } finally {
        await store.close();
      }
    });

    test("appends to one entity issued on successive ticks never race each other from two in-flight batches", async () => {
      const store = await open({ maxConcurrentBatches: 4 });
      try {
        const pending: Promise<void>[] = [];
        for (let i = 0; i < 40; i++) {
          pending.push(store.journal.append(append("cart-1", i, `${i}`)));
          pending.push(store.values.write({ persistenceId: PID, entityId: "cart-1", expectedVersion: i, value: payload(`${i}`) }).then(() => undefined));
          await new Promise((resolve) => setImmediate(resolve));
        }
        await Promise.all(pending);
        assert.deepEqual(
          await contents(store, "cart-1"),
          Array.from({ length: 40 }, (_, i) => `${i}`),
        );
        assert.equal((await store.values.get(PID, "cart-1")).version, 40);
      } finally {
        await store.close();
      }
    });
  });

  describe("races with another writer (another proxy)", () => {
    test("an append that loses the race at insert time is the only write of its batch rejected", async () => {
      const store = await open();
      const rival = new pg.Client(server.url);
      await rival.connect();
      try {
        await store.journal.append(append("cart-0", 0, "a"));
        // The rival has inserted cart-1's first event but not committed: the store's head check
        // sees nothing, and its insert waits on the rival's row.
        await rival.query("BEGIN");
        await rival.query(
          `INSERT INTO ${quoteIdentifier(store.schema)}.journal (persistence_id, entity_id, sequence, type_url, payload) VALUES ($1, 'cart-1', 1, 't', 'rival')`,
          [PID],
        );
        const results = Promise.allSettled<unknown>([
          store.journal.append(append("cart-1", 0, "mine")),
          store.journal.append(append("cart-2", 0, "b")),
          store.journal.append({ ...append("cart-0", 1, "c"), snapshot: payload("s") }),
          store.values.write({ persistenceId: PID, entityId: "cart-1", expectedVersion: 0, value: payload("v") }),
        ]);
        await waitForLockWait();
        await rival.query("COMMIT");
        const settled = await results;
        assert.deepEqual(
          settled.map((r) => r.status),
          ["rejected", "fulfilled", "fulfilled", "fulfilled"],
        );
        const conflict = (settled[0] as PromiseRejectedResult).reason as unknown;
        assert.ok(conflict instanceof SequenceConflictError);
        assert.equal(conflict.actualSequence, 1);
        assert.deepEqual(await contents(store, "cart-1"), ["rival"]);
        assert.deepEqual(await contents(store, "cart-2"), ["b"]);
        assert.deepEqual(await contents(store, "cart-0"), ["a", "c"]);
        assert.equal((await store.journal.recover(PID, "cart-0")).snapshot?.sequence, 2);
        assert.deepEqual(store.stats(), { batches: 2, writes: 4 });
      } finally {
        await rival.end();
        await store.close();
      }
    });

    test("a value write that loses the race for a new entity, or for an entity being updated, is the only one rejected", async () => {
      const store = await open();
      const rival = new pg.Client(server.url);
      await rival.connect();
      const table = `${quoteIdentifier(store.schema)}.value_state`;
      try {
        await store.values.write({ persistenceId: PID, entityId: "existing", expectedVersion: 0, value: payload("v1") });
        await rival.query("BEGIN");
        await rival.query(`INSERT INTO ${table} (persistence_id, entity_id, version, type_url, payload) VALUES ($1, 'new', 1, 't', 'rival')`, [PID]);
        await rival.query(`UPDATE ${table} SET version = 2, payload = 'rival' WHERE persistence_id = $1 AND entity_id = 'existing'`, [PID]);
        const results = Promise.allSettled([
          store.values.write({ persistenceId: PID, entityId: "new", expectedVersion: 0, value: payload("mine") }),
          store.values.write({ persistenceId: PID, entityId: "existing", expectedVersion: 1, value: payload("mine") }),
          store.values.write({ persistenceId: PID, entityId: "other", expectedVersion: 0, value: payload("other") }),
        ]);
        await waitForLockWait();
        await rival.query("COMMIT");
        const settled = await results;
        assert.deepEqual(
          settled.map((r) => (r.status === "fulfilled" ? r.value : (r.reason as VersionConflictError).actualVersion)),
          [1, 2, 1],
        );
        for (const r of settled.slice(0, 2)) assert.ok(r.status === "rejected" && r.reason instanceof VersionConflictError);
        for (const id of ["new", "existing"]) {
          assert.equal(Buffer.from((await store.values.get(PID, id)).value!.bytes).toString(), "rival");
        }
        assert.equal((await store.values.get(PID, "other")).version, 1);
      } finally {
        await rival.end();
        await store.close();
      }
    });

    test("two stores appending to the same entities at once never fork a journal", async () => {
      const schema = freshSchema();
      const stores = await Promise.all([PostgresStore.open(server.url, { schema }), PostgresStore.open(server.url, { schema })]);
      const entities = ["cart-1", "cart-2", "cart-3", "cart-4"];
      const acked = new Map<string, { sequence: number; payloads: string[] }[]>(entities.map((e) => [e, []]));
      let conflicts = 0;
      const writer = async (store: PostgresStore, name: string, entityId: string) => {
        for (let attempt = 0; attempt < 25; attempt++) {
          const head = (await store.journal.recover(PID, entityId)).sequence;
          const payloads = Array.from({ length: 1 + (attempt % 3) }, (_, i) => `${name}.${attempt}.${i}`);
          try {
            await store.journal.append({ ...append(entityId, head, ...payloads), snapshot: attempt % 4 === 0 ? payload(name) : undefined });
            acked.get(entityId)!.push({ sequence: head + 1, payloads });
          } catch (error) {
            if (!(error instanceof SequenceConflictError)) throw error;
            assert.ok(error.actualSequence > head, `${error.actualSequence} > ${head}`);
            conflicts++;
          }
        }
      };
      try {
        await Promise.all(entities.flatMap((e) => [writer(stores[0]!, "a", e), writer(stores[1]!, "b", e)]));
        assert.ok(conflicts > 0, "the writers never raced");
        for (const entityId of entities) {
          // Exactly the acknowledged appends, each at the sequence it expected, nothing else.
          const expected = acked
            .get(entityId)!
            .sort((x, y) => x.sequence - y.sequence)
            .flatMap(({ sequence, payloads }) => payloads.map((p, i) => [sequence + i, p]));
          const events = await stores[1]!.journal.events(PID, entityId);
          assert.deepEqual(
            events.map((e) => [e.sequence, Buffer.from(e.bytes).toString()]),
            expected,
          );
          assert.deepEqual(
            events.map((e) => e.sequence),
            events.map((_, i) => i + 1),
          );
        }
        const written = stores[0]!.stats().writes + stores[1]!.stats().writes;
        assert.equal(written, [...acked.values()].reduce((n, list) => n + list.length, 0));
      } finally {
        await Promise.all(stores.map((s) => s.close()));
      }
    });

    test("two stores writing the same values at once grant each version exactly once", async () => {
      const schema = freshSchema();
      const stores = await Promise.all([PostgresStore.open(server.url, { schema }), PostgresStore.open(server.url, { schema })]);
      const entities = ["cart-1", "cart-2", "cart-3"];
      const granted = new Map<string, Map<number, string>>(entities.map((e) => [e, new Map()]));
      let conflicts = 0;
      const writer = async (store: PostgresStore, name: string, entityId: string) => {
        for (let attempt = 0; attempt < 25; attempt++) {
          const { version } = await store.crdts.get(PID, entityId);
          const value = `${name}.${attempt}`;
          try {
            const next = await store.crdts.write({ persistenceId: PID, entityId, expectedVersion: version, value: payload(value) });
            assert.equal(next, version + 1);
            assert.ok(!granted.get(entityId)!.has(next), `version ${next} granted twice`);
            granted.get(entityId)!.set(next, value);
          } catch (error) {
            if (!(error instanceof VersionConflictError)) throw error;
            conflicts++;
          }
        }
      };
      try {
        await Promise.all(entities.flatMap((e) => [writer(stores[0]!, "a", e), writer(stores[1]!, "b", e)]));
        assert.ok(conflicts > 0, "the writers never raced");
        for (const entityId of entities) {
          const versions = [...granted.get(entityId)!.keys()].sort((x, y) => x - y);
          assert.deepEqual(
            versions,
            versions.map((_, i) => i + 1),
          );
          const stored = await stores[0]!.crdts.get(PID, entityId);
          assert.equal(stored.version, versions.length);
          assert.equal(Buffer.from(stored.value!.bytes).toString(), granted.get(entityId)!.get(versions.length));
        }
      } finally {
        await Promise.all(stores.map((s) => s.close()));
      }
    });
  });

  describe("commit order (event log and topics)", () => {
    // A trigger makes the transaction that writes entity/message "slow" sleep after its rows took
    // their offsets, so another proxy's write, issued meanwhile, would commit first.
    async function slowTrigger(schema: string, table: "journal" | "topic_messages", column: "entity_id" | "id"): Promise<void> {
      const s = quoteIdentifier(schema);
      await admin.query(
        `CREATE FUNCTION ${s}.slow_${table}() RETURNS trigger LANGUAGE plpgsql AS $$` +
          ` BEGIN IF NEW.${column} = 'slow' THEN PERFORM pg_sleep(0.6); END IF; RETURN NEW; END $$`,
      );
      await admin.query(`CREATE TRIGGER slow AFTER INSERT ON ${s}.${table} FOR EACH ROW EXECUTE FUNCTION ${s}.slow_${table}()`);
    }

    async function waitForSleep(): Promise<void> {
      const deadline = Date.now() + 5_000;
      while ((await count("SELECT 1 FROM pg_stat_activity WHERE application_name = 'cloudstate-proxy' AND wait_event = 'PgSleep'")) === 0) {
        if (Date.now() > deadline) throw new Error("the slow transaction never started");
        await sleep(5);
      }
    }

    test("an event that commits later never gets a smaller offset than one a reader already saw, across two stores", async () => {
      const schema = freshSchema();
      const [a, b] = await Promise.all([PostgresStore.open(server.url, { schema }), PostgresStore.open(server.url, { schema })]);
      try {
        await slowTrigger(schema, "journal", "entity_id");
        const slow = a.journal.append(append("slow", 0, "slow"));
        await waitForSleep();
        // Without the lock, this commits while "slow" still sleeps, with the larger offset.
        const fast = b.journal.append(append("fast", 0, "fast"));
        await sleep(200);
        const seen: string[] = [];
        let last = 0;
        const follow = async () => {
          for (const e of await b.journal.eventLog(PID, last, 100)) {
            seen.push(`${e.entityId}@${e.offset}`);
            last = e.offset;
          }
        };
        await follow();
        await Promise.all([slow, fast]);
        await follow();
        const log = await a.journal.eventLog(PID, 0, 100);
        assert.deepEqual(
          log.map((e) => e.entityId),
          ["slow", "fast"],
        );
        assert.deepEqual(
          seen,
          log.map((e) => `${e.entityId}@${e.offset}`),
          "the reader missed an event",
        );
        assert.ok(log[0]!.timestamp <= log[1]!.timestamp, "commit times out of order");
      } finally {
        await Promise.all([a.close(), b.close()]);
      }
    });

    test("a message that commits later never gets a smaller offset than one a reader already saw, across two stores", async () => {
      const schema = freshSchema();
      const [a, b] = await Promise.all([PostgresStore.open(server.url, { schema }), PostgresStore.open(server.url, { schema })]);
      const message = (id: string): TopicPublish => ({
        topic: "t",
        id,
        source: "test",
        type: "test.Message",
        subject: "",
        contentType: "text/plain",
        time: Date.now(),
        data: Buffer.from(id),
      });
      try {
        await slowTrigger(schema, "topic_messages", "id");
        const slow = a.topics.publish([message("slow")]);
        await waitForSleep();
        const fast = b.topics.publish([message("fast")]);
        await sleep(200);
        const seen: string[] = [];
        let last = 0;
        const follow = async () => {
          for (const m of await b.topics.read("t", last, 100)) {
            seen.push(`${m.id}@${m.offset}`);
            last = m.offset;
          }
        };
        await follow();
        const [[slowOffset], [fastOffset]] = await Promise.all([slow, fast]);
        await follow();
        assert.ok(slowOffset! < fastOffset!);
        assert.deepEqual(seen, [`slow@${slowOffset}`, `fast@${fastOffset}`], "the reader missed a message");
      } finally {
        await Promise.all([a.close(), b.close()]);
      }
    });

    test("two stores appending and publishing at once while readers follow: every event and message is read exactly once, in offset order", async () => {
      const schema = freshSchema();
      const stores = await Promise.all([PostgresStore.open(server.url, { schema }), PostgresStore.open(server.url, { schema })]);
      const appendsPerEntity = 15;
      const entities = 6;
      let writing = true;
      const eventsSeen: string[] = [];
      const messagesSeen: string[] = [];
      const reader = async (read: (after: number) => Promise<{ offset: number; key: string }[]>, seen: string[]) => {
        let last = 0;
        for (let done = false; !done; ) {
          done = !writing; // one more read after the writers finished
          for (const { offset, key } of await read(last)) {
            assert.ok(offset > last, `offset ${offset} after ${last}`);
            last = offset;
            seen.push(key);
          }
          await sleep(1);
        }
      };
      const reading = Promise.all([
        reader(async (after) => (await stores[1]!.journal.eventLog(PID, after, 50)).map((e) => ({ offset: e.offset, key: `${e.entityId}:${e.sequence}` })), eventsSeen),
        reader(async (after) => (await stores[0]!.topics.read("t", after, 50)).map((m) => ({ offset: m.offset, key: m.id })), messagesSeen),
      ]);
      const expectedEvents: string[] = [];
      const expectedMessages: string[] = [];
      try {
        await Promise.all(
          stores.flatMap((store, s) =>
            Array.from({ length: entities }, async (_, e) => {
              const entityId = `cart-${s}-${e}`;
              for (let i = 0; i < appendsPerEntity; i++) {
                await Promise.all([
                  store.journal.append(append(entityId, i * 2, "a", "b")),
                  store.topics.publish([
                    { topic: "t", id: `${entityId}.${i}`, source: "test", type: "t", subject: entityId, contentType: "text/plain", time: 0, data: Buffer.from("x") },
                  ]),
                ]);
                expectedEvents.push(`${entityId}:${i * 2 + 1}`, `${entityId}:${i * 2 + 2}`);
                expectedMessages.push(`${entityId}.${i}`);
              }
            }),
          ),
        );
      } finally {
        writing = false;
        await reading;
      }
      try {
        assert.equal(eventsSeen.length, expectedEvents.length, "events missed or read twice");
        assert.deepEqual([...eventsSeen].sort(), [...expectedEvents].sort());
        assert.equal(messagesSeen.length, expectedMessages.length, "messages missed or read twice");
        assert.deepEqual([...messagesSeen].sort(), [...expectedMessages].sort());
      } finally {
        await Promise.all(stores.map((s) => s.close()));
      }
    });
  });

  describe("topics and consumers across proxies", () => {
    test("two stores publishing the same message at once store it once, and both get its offset", async () => {
      const schema = freshSchema();
      const stores = await Promise.all([PostgresStore.open(server.url, { schema }), PostgresStore.open(server.url, { schema })]);
      try {
        for (let round = 0; round < 10; round++) {
          const message = (data: string): TopicPublish => ({
            topic: "t",
            id: `m-${round}`,
            source: "test",
            type: "t",
            subject: "",
            contentType: "text/plain",
            time: 0,
            data: Buffer.from(data),
          });
          const [[first], [second]] = await Promise.all([stores[0]!.topics.publish([message("a")]), stores[1]!.topics.publish([message("b")])]);
          assert.equal(first, second);
        }
        assert.deepEqual(await stores[0]!.topics.topics(), [{ topic: "t", messages: 10, head: (await stores[1]!.topics.read("t", 0, 100)).at(-1)!.offset }]);
      } finally {
        await Promise.all(stores.map((s) => s.close()));
      }
    });

    test("two stores claiming one lease at once: exactly one holds it, by the database's clock", async () => {
      const schema = freshSchema();
      const stores = await Promise.all([PostgresStore.open(server.url, { schema }), PostgresStore.open(server.url, { schema })]);
      try {
        for (let round = 0; round < 10; round++) {
          const results = await Promise.all(stores.map((store, i) => store.offsets.claim("g", `s-${round}`, `proxy-${i}`, 60_000)));
          assert.equal(results.filter(Boolean).length, 1, `round ${round}: ${results}`);
        }
        // The lease ends when the database's clock says so: move it to the past there.
        await admin.query(`UPDATE ${quoteIdentifier(schema)}.consumer_offsets SET lease_expires = now() - interval '1 second' WHERE source = 's-0'`);
        const holder = (await stores[0]!.offsets.list()).find((p) => p.source === "s-0");
        assert.equal(holder?.owner, undefined);
        assert.equal(await stores[0]!.offsets.claim("g", "s-0", "proxy-new", 60_000), true);
        const stored = await admin.query<{ ahead: boolean }>(
          `SELECT lease_expires > now() + interval '59 seconds' AND lease_expires <= now() + interval '61 seconds' AS ahead FROM ${quoteIdentifier(schema)}.consumer_offsets WHERE source = 's-0'`,
        );
        assert.equal(stored.rows[0]!.ahead, true);
      } finally {
        await Promise.all(stores.map((s) => s.close()));
      }
    });
  });

  describe("wake-ups across processes (onExternalWrite)", () => {
    // Counts a store's external-write calls; the first one comes once the store is listening.
    function listen(store: PostgresStore): { readonly calls: number; remove: () => void } {
      const listener = { calls: 0, remove: () => undefined as void };
      listener.remove = store.onExternalWrite(() => listener.calls++);
      return listener;
    }

    async function until(condition: () => boolean | Promise<boolean>, what: string, ms = 5_000): Promise<number> {
      const started = Date.now();
      while (!(await condition())) {
        if (Date.now() - started > ms) throw new Error(`${what}: not within ${ms} ms`);
        await sleep(5);
      }
      return Date.now() - started;
    }

    // The sessions listening on a schema's channel (the store's listening connections).
    async function listeners(schema: string): Promise<number[]> {
      const rows = await admin.query<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE query = $1", [
        `LISTEN ${quoteIdentifier(notifyChannel(schema))}`,
      ]);
      return rows.rows.map((r) => r.pid);
    }

    const message = (id: string): TopicPublish => ({
      topic: "t",
      id,
      source: "test",
      type: "test.Message",
      subject: "",
      contentType: "text/plain",
      time: Date.now(),
      data: Buffer.from(id),
    });

    test("another store's append or publish on the schema wakes the listeners within a second; one throwing changes nothing", async () => {
      const schema = freshSchema();
      const [a, b] = await Promise.all([PostgresStore.open(server.url, { schema }), PostgresStore.open(server.url, { schema })]);
      try {
        b.onExternalWrite(() => {
          throw new Error("a broken listener");
        });
        const woken = listen(b);
        await until(() => woken.calls >= 1, "the call when listening starts");
        let calls = woken.calls;
        await a.journal.append(append("cart-1", 0, "a", "b"));
        const appendMs = await until(() => woken.calls > calls, "wake-up after an append", 1_000);
        calls = woken.calls;
        await a.topics.publish([message("1"), message("2")]);
        const publishMs = await until(() => woken.calls > calls, "wake-up after a publish", 1_000);
        assert.ok(appendMs < 1_000 && publishMs < 1_000, `${appendMs} ms, ${publishMs} ms`);
        assert.equal((await listeners(schema)).length, 1, "one listening connection (b's)");
      } finally {
        await Promise.all([a.close(), b.close()]);
      }
    });

    test("one NOTIFY per committed batch; none for rejected or rolled back appends, repeated publishes or value writes", async () => {
      const schema = freshSchema();
      const store = await PostgresStore.open(server.url, { schema });
      const channel = notifyChannel(schema);
      // A session of our own sees every notification on the channel, in commit order, with its payload.
      const probe = new pg.Client(server.url);
      const rival = new pg.Client(server.url);
      const heard: string[] = [];
      probe.on("notification", (n) => heard.push(n.payload ?? ""));
      await Promise.all([probe.connect(), rival.connect()]);
      // Everything committed before the marker was delivered before it.
      const marker = async (name: string) => {
        await admin.query("SELECT pg_notify($1, $2)", [channel, name]);
        await until(() => heard.includes(name), `marker ${name}`);
      };
      try {
        await probe.query(`LISTEN ${quoteIdentifier(channel)}`);
        // 20 appends and publishes in one tick: a handful of batches, one notification each.
        await Promise.all(
          Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? store.journal.append(append(`cart-${i}`, 0, "a", "b")) : store.topics.publish([message(`${i}`)]))),
        );
        await marker("m1");
        const batches = store.stats().batches;
        assert.ok(batches < 20, `${batches} batches`);
        assert.deepEqual(heard, [...Array.from({ length: batches }, () => ""), "m1"]);

        heard.length = 0;
        await assert.rejects(store.journal.append(append("cart-0", 0, "again")), SequenceConflictError);
        await store.topics.publish([message("1")]); // stored already: nothing inserted
        await store.values.write({ persistenceId: PID, entityId: "cart-0", expectedVersion: 0, value: payload("v") });
        await store.crdts.write({ persistenceId: PID, entityId: "cart-0", expectedVersion: 0, value: payload("v") });
        // An append whose insert fails (the rival's row): its transaction is rolled back and retried
        // one write at a time, where the append is rejected.
        await rival.query("BEGIN");
        await rival.query(
          `INSERT INTO ${quoteIdentifier(schema)}.journal (persistence_id, entity_id, sequence, type_url, payload) VALUES ($1, 'raced', 1, 't', 'rival')`,
          [PID],
        );
        const raced = store.journal.append(append("raced", 0, "mine"));
        await waitForLockWait();
        await rival.query("COMMIT");
        await assert.rejects(raced, SequenceConflictError);
        await marker("m2");
        assert.deepEqual(heard, ["m2"], "a batch that inserted no journal row or topic message notified");

        // The one-by-one path notifies for what it wrote.
        heard.length = 0;
        await rival.query("BEGIN");
        await rival.query(
          `INSERT INTO ${quoteIdentifier(schema)}.journal (persistence_id, entity_id, sequence, type_url, payload) VALUES ($1, 'raced-2', 1, 't', 'rival')`,
          [PID],
        );
        const results = Promise.allSettled([store.journal.append(append("raced-2", 0, "mine")), store.journal.append(append("other", 0, "b"))]);
        await waitForLockWait();
        await rival.query("COMMIT");
        assert.deepEqual(
          (await results).map((r) => r.status),
          ["rejected", "fulfilled"],
        );
        await marker("m3");
        assert.deepEqual(heard, ["", "m3"]);
      } finally {
        await Promise.all([probe.end(), rival.end()]);
        await store.close();
      }
    });

    test("a rejected append wakes no listener of another store", async () => {
      const schema = freshSchema();
      const [a, b] = await Promise.all([PostgresStore.open(server.url, { schema }), PostgresStore.open(server.url, { schema })]);
      try {
        await a.journal.append(append("cart-1", 0, "a"));
        const woken = listen(b);
        await until(() => woken.calls >= 1, "the call when listening starts");
        const calls = woken.calls;
        await assert.rejects(a.journal.append(append("cart-1", 0, "again")), SequenceConflictError);
        await sleep(300);
        assert.equal(woken.calls, calls);
      } finally {
        await Promise.all([a.close(), b.close()]);
      }
    });

    test("a store on another schema of the database is not woken", async () => {
      const schema = freshSchema();
      const other = freshSchema();
      assert.notEqual(notifyChannel(schema), notifyChannel(other));
      assert.match(notifyChannel(schema), /^cloudstate_[0-9a-f]{16}$/);
      const [a, b, c] = await Promise.all([
        PostgresStore.open(server.url, { schema }),
        PostgresStore.open(server.url, { schema }),
        PostgresStore.open(server.url, { schema: other }),
      ]);
      try {
        const same = listen(b);
        const elsewhere = listen(c);
        await until(() => same.calls >= 1 && elsewhere.calls >= 1, "the calls when listening starts");
        const [sameCalls, elsewhereCalls] = [same.calls, elsewhere.calls];
        await a.journal.append(append("cart-1", 0, "a"));
        await a.topics.publish([message("1")]);
        await until(() => same.calls >= sameCalls + 2, "wake-ups on the same schema");
        await sleep(300); // c's session was signalled together with b's
        assert.equal(elsewhere.calls, elsewhereCalls);
      } finally {
        await Promise.all([a, b, c].map((s) => s.close()));
      }
    });

    test("a removed listener is not called; removing the last closes the listening connection, a new one opens it again, close closes it", async () => {
      const schema = freshSchema();
      const [a, b] = await Promise.all([PostgresStore.open(server.url, { schema }), PostgresStore.open(server.url, { schema })]);
      try {
        assert.deepEqual(await listeners(schema), [], "no listener, no connection");
        const first = listen(b);
        const second = listen(b);
        await until(() => first.calls >= 1 && second.calls >= 1, "the calls when listening starts");
        assert.equal((await listeners(schema)).length, 1, "one connection for every listener of a store");

        first.remove();
        first.remove(); // twice is harmless
        const [firstCalls, secondCalls] = [first.calls, second.calls];
        await a.journal.append(append("cart-1", 0, "a"));
        await until(() => second.calls > secondCalls, "wake-up of the remaining listener");
        assert.equal(first.calls, firstCalls, "a removed listener was called");
        assert.equal((await listeners(schema)).length, 1);

        second.remove();
        await until(async () => (await listeners(schema)).length === 0, "the listening connection closing");
        const last = second.calls;
        await a.journal.append(append("cart-1", 1, "b"));
        await sleep(200);
        assert.equal(second.calls, last);

        const again = listen(b);
        await until(() => again.calls >= 1, "the call when listening starts again");
        assert.equal((await listeners(schema)).length, 1);
        await b.close(); // with a listener still registered
        await until(async () => (await listeners(schema)).length === 0, "close closing the listening connection");
      } finally {
        await Promise.all([a.close(), b.close()]);
      }
    });

    test("when its connection is terminated, the store listens again, calls the listeners once to catch up, and wakes on later writes", async () => {
      const schema = freshSchema();
      const [a, b] = await Promise.all([PostgresStore.open(server.url, { schema }), PostgresStore.open(server.url, { schema })]);
      try {
        const woken = listen(b);
        await until(() => woken.calls >= 1, "the call when listening starts");
        const [pid] = await listeners(schema);
        const calls = woken.calls;
        await admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%' AND pid = $1", [pid]);
        // Nobody writes: the only call can be the catch-up (for writes nobody heard while it was down).
        await until(() => woken.calls > calls, "the catch-up call");
        assert.equal(woken.calls, calls + 1);
        const pids = await listeners(schema);
        assert.equal(pids.length, 1);
        assert.notEqual(pids[0], pid, "a new connection");
        const later = woken.calls;
        await a.journal.append(append("cart-1", 0, "a"));
        await until(() => woken.calls > later, "wake-up after reconnecting", 1_000);
      } finally {
        await Promise.all([a.close(), b.close()]);
      }
    });

    test("across a database restart: the dropped listening connection crashes nothing, and comes back with a catch-up call", async () => {
      const schema = freshSchema();
      const [a, b] = await Promise.all([PostgresStore.open(server.url, { schema }), PostgresStore.open(server.url, { schema })]);
      try {
        const woken = listen(b);
        await until(() => woken.calls >= 1, "the call when listening starts");
        await server.stop();
        const calls = woken.calls;
        try {
          await assert.rejects(a.journal.append(append("cart-1", 0, "lost")), StoreUnavailableError);
          await sleep(500); // a few failed reconnection attempts
        } finally {
          await server.restart();
        }
        // Nothing was written: the only call can be the catch-up.
        await until(() => woken.calls > calls, "the catch-up call", 10_000);
        assert.equal(woken.calls, calls + 1);
        assert.equal((await listeners(schema)).length, 1);
        const later = woken.calls;
        await a.journal.append(append("cart-1", 0, "a"));
        await until(() => woken.calls > later, "wake-up after the restart", 1_000);
      } finally {
        await Promise.all([a.close(), b.close()]);
      }
    });
  });

  describe("unavailability", () => {
    test("with the server stopped every operation fails fast with StoreUnavailableError, and the same store works again once it is back", async () => {
      const store = await open();
      try {
        await store.journal.append(append("cart-1", 0, "before"));
        await store.values.write({ persistenceId: PID, entityId: "cart-1", expectedVersion: 0, value: payload("v1") });
        const stats = store.stats();
        await server.stop();
        try {
          const started = Date.now();
          const results = await Promise.allSettled<unknown>([
            store.journal.append(append("cart-1", 1, "lost")),
            store.journal.recover(PID, "cart-1"),
            store.journal.events(PID, "cart-1"),
            store.journal.entityIds(PID),
            store.values.write({ persistenceId: PID, entityId: "cart-1", expectedVersion: 1, value: payload("lost") }),
            store.values.get(PID, "cart-1"),
            store.crdts.entityIds(PID),
          ]);
          const elapsed = Date.now() - started;
          for (const r of results) {
            assert.equal(r.status, "rejected");
            const error = (r as PromiseRejectedResult).reason as Error;
            assert.ok(error instanceof StoreUnavailableError, String(error));
            assert.ok(!error.message.includes(password), error.message);
          }
          assert.ok(elapsed < 3_000, `took ${elapsed} ms`);
          assert.deepEqual(store.stats(), stats);
        } finally {
          await server.restart();
        }
        // The same instance, not reopened.
        await store.journal.append(append("cart-1", 1, "after"));
        assert.deepEqual(await contents(store, "cart-1"), ["before", "after"]);
        assert.equal(await store.values.write({ persistenceId: PID, entityId: "cart-1", expectedVersion: 1, value: payload("v2") }), 2);
      } finally {
        await store.close();
      }
    });

    test("a server that stops answering fails operations within the timeouts instead of hanging", async () => {
      const store = await open({ connectTimeoutMs: 1_000, statementTimeoutMs: 1_000 });
      try {
        await store.journal.append(append("cart-1", 0, "before")); // leaves an idle connection in the pool
        server.pause();
        try {
          const started = Date.now();
          const results = await Promise.allSettled<unknown>([
            store.journal.append(append("cart-1", 1, "maybe")),
            store.journal.recover(PID, "cart-1"),
            store.values.get(PID, "cart-1"),
            ...Array.from({ length: 12 }, () => store.journal.events(PID, "cart-1")), // more than the pool's idle connections
          ]);
          const elapsed = Date.now() - started;
          for (const r of results) {
            assert.ok(r.status === "rejected" && r.reason instanceof StoreUnavailableError, r.status === "rejected" ? String(r.reason) : "fulfilled");
          }
          // Bounded by the timeouts (1 s to connect, 2 s for a statement), where it would hang without them.
          assert.ok(elapsed < 6_000, `took ${elapsed} ms`);
        } finally {
          server.resume();
        }
        // The append that timed out may or may not have committed; either way the store goes on.
        const head = (await store.journal.recover(PID, "cart-1")).sequence;
        await store.journal.append(append("cart-1", head, "after"));
        assert.deepEqual((await contents(store, "cart-1")).filter((e) => e !== "maybe"), ["before", "after"]);
      } finally {
        await store.close();
      }
    });

    test("PostgreSQL killed under load: writes fail, and after restart every acknowledged append is there with no gap or duplicate", async () => {
      const store = await open();
      const entities = Array.from({ length: 8 }, (_, i) => `cart-${i}`);
      const acked = new Map<string, number>(entities.map((e) => [e, 0]));
      let running = true;
      let unavailable = 0;
      const total = () => [...acked.values()].reduce((a, b) => a + b, 0);
      const writer = async (entityId: string) => {
        let head = 0;
        while (running) {
          try {
            // The payload names its sequence: an append whose outcome was unknown may be retried.
            await store.journal.append(append(entityId, head, `${entityId}:${head + 1}`));
            head++;
            acked.set(entityId, head);
          } catch (error) {
            if (error instanceof SequenceConflictError) {
              head = error.actualSequence; // a write reported as failed had committed after all
            } else if (error instanceof StoreUnavailableError) {
              unavailable++;
              await sleep(20);
            } else {
              throw error;
            }
          }
        }
      };
      const until = async (condition: () => boolean) => {
        const deadline = Date.now() + 20_000;
        while (!condition()) {
          if (Date.now() > deadline) throw new Error(`timed out; ${total()} acknowledged`);
          await sleep(10);
        }
      };
      const writers = entities.map(writer);
      try {
        await until(() => total() >= 150);
        await server.kill();
        try {
          await until(() => unavailable >= entities.length);
        } finally {
          await server.restart();
        }
        const before = total();
        await until(() => total() >= before + 150);
      } finally {
        running = false;
        await Promise.all(writers);
      }
      try {
        for (const entityId of entities) {
          const events = await store.journal.events(PID, entityId);
          assert.ok(events.length >= acked.get(entityId)!, `${entityId}: acknowledged ${acked.get(entityId)}, found ${events.length}`);
          assert.deepEqual(
            events.map((e) => [e.sequence, Buffer.from(e.bytes).toString()]),
            events.map((_, i) => [i + 1, `${entityId}:${i + 1}`]),
          );
        }
      } finally {
        await store.close();
      }
    });
  });
});
