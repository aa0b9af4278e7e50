import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, test } from "node:test";
import Database from "better-sqlite3";
import { storeContract } from "../contract.js";
import { StoreUnavailableError, type JournalAppend } from "../store.js";
import { migrate, migrations, schemaVersion, type Migration } from "./schema.js";
import { SqliteStore } from "./sqlite-store.js";

const PID = "shop.ShoppingCart";

// A fresh directory per test, removed after it (stores are closed by then).
const dirs: string[] = [];
function freshDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "cloudstate-sqlite-"));
  dirs.push(dir);
  return dir;
}
function freshPath(): string {
  return join(freshDir(), "store.db");
}

function append(entityId: string, expectedSequence: number, ...events: string[]): JournalAppend {
  return {
    persistenceId: PID,
    entityId,
    expectedSequence,
    events: events.map((e) => ({ typeUrl: "type.googleapis.com/shop.ItemAdded", bytes: Buffer.from(e) })),
  };
}

async function contents(store: SqliteStore, entityId: string): Promise<string[]> {
  return (await store.journal.events(PID, entityId)).map((e) => Buffer.from(e.bytes).toString());
}

describe("sqlite store", () => {
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  storeContract("sqlite", async () => new SqliteStore(freshPath()), { groupCommit: true });

  describe("durability", () => {
    test("data survives closing and reopening the file", async () => {
      const path = freshPath();
      let store = new SqliteStore(path);
      await store.journal.append({
        ...append("cart-1", 0, "a", "b"),
        snapshot: { typeUrl: "type.googleapis.com/shop.Cart", bytes: Buffer.from("s2") },
      });
      await store.journal.append(append("cart-1", 2, "c"));
      await store.close();

      store = new SqliteStore(path);
      try {
        const recovered = await store.journal.recover(PID, "cart-1");
        assert.equal(recovered.snapshot?.sequence, 2);
        assert.equal(Buffer.from(recovered.snapshot!.bytes).toString(), "s2");
        assert.deepEqual(
          recovered.events.map((e) => e.sequence),
          [3],
        );
        assert.deepEqual(await contents(store, "cart-1"), ["a", "b", "c"]);
        await store.journal.append(append("cart-1", 3, "d"));
        assert.deepEqual(await contents(store, "cart-1"), ["a", "b", "c", "d"]);
      } finally {
        await store.close();
      }
    });

    test("topic messages, consumer positions and dead letters survive closing and reopening the file, and offsets go on from there", async () => {
      const path = freshPath();
      const message = (id: string, time: number) => ({
        topic: "t",
        id,
        source: "s",
        type: "t",
        subject: "",
        contentType: "text/plain",
        time,
        data: Buffer.from(id),
      });
      let store = new SqliteStore(path);
      await store.journal.append(append("cart-1", 0, "a"));
      const [first, second] = await store.topics.publish([message("1", 1), message("2", 2)]);
      await store.topics.trim(3); // both gone: the head must stay all the same
      assert.equal(await store.offsets.claim("g", "topic:t", "proxy-a", 60_000), true);
      assert.equal(await store.offsets.commit("g", "topic:t", "proxy-a", second!), true);
      const letter = await store.deadLetters.add({
        group: "g",
        source: "topic:t",
        offset: first!,
        messageId: "1",
        type: "t",
        subject: "",
        contentType: "text/plain",
        data: Buffer.from("1"),
        attempts: 3,
        error: "boom",
        time: 5,
      });
      const head = await store.journal.eventLogHead(PID);
      await store.close();

      store = new SqliteStore(path);
      try {
        assert.deepEqual(await store.topics.topics(), [{ topic: "t", messages: 0, head: second }]);
        const [third] = await store.topics.publish([message("1", 10)]);
        assert.ok(third! > second!, "an offset was reused");
        assert.deepEqual(await store.offsets.list(), [{ group: "g", source: "topic:t", offset: second, owner: "proxy-a" }]);
        assert.deepEqual(
          (await store.deadLetters.list(10)).map((l) => [l.id, l.error]),
          [[letter, "boom"]],
        );
        assert.equal(await store.journal.eventLogHead(PID), head);
        await store.journal.append(append("cart-1", 1, "b"));
        assert.deepEqual(
          (await store.journal.eventLog(PID, head, 10)).map((e) => Buffer.from(e.bytes).toString()),
          ["b"],
        );
      } finally {
        await store.close();
      }
    });

    test("appends pending at close are on disk when the file is reopened", async () => {
      const path = freshPath();
      const store = new SqliteStore(path);
      const pending = Array.from({ length: 20 }, (_, i) => store.journal.append(append(`cart-${i}`, 0, `${i}`)));
      await store.close();
      await Promise.all(pending);

      const reopened = new SqliteStore(path);
      try {
        assert.equal((await reopened.journal.entityIds(PID)).length, 20);
      } finally {
        await reopened.close();
      }
    });

    test("every acknowledged append survives kill -9 of the writing process, with no gap", async () => {
      const path = freshPath();
      const storeModule = new URL("./sqlite-store.ts", import.meta.url).href;
      // Four entities append concurrently; each acknowledgement is printed once the append resolved.
      const writer = `
        const { SqliteStore } = await import(${JSON.stringify(storeModule)});
        const store = new SqliteStore(${JSON.stringify(path)});
        await Promise.all([0, 1, 2, 3].map(async (e) => {
          for (let seq = 0; ; seq++) {
            await store.journal.append({ persistenceId: "p", entityId: "e" + e, expectedSequence: seq,
              events: [{ typeUrl: "t", bytes: Buffer.from("e" + e + ":" + (seq + 1)) }] });
            process.stdout.write("e" + e + " " + (seq + 1) + "\\n");
          }
        }));
      `;
      const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", writer], {
        stdio: ["ignore", "pipe", "pipe"],
        cwd: fileURLToPath(new URL(".", import.meta.url)), // where `--import tsx` resolves from
      });
      const acked = new Map<string, number>();
      let stderr = "";
      child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
      try {
        await new Promise<void>((resolve, reject) => {
          let buffered = "";
          let count = 0;
          const timeout = setTimeout(() => reject(new Error(`writer too slow: ${count} acks; ${stderr}`)), 60_000);
          child.on("exit", (code) => {
            clearTimeout(timeout);
            reject(new Error(`writer exited early (${code}): ${stderr}`));
          });
          child.stdout.on("data", (chunk: Buffer) => {
            buffered += chunk.toString();
            const lines = buffered.split("\n");
            buffered = lines.pop()!;
            for (const line of lines) {
              const [entity, seq] = line.split(" ");
              acked.set(entity!, Number(seq));
              count++;
            }
            if (count >= 200) {
              clearTimeout(timeout);
              child.kill("SIGKILL");
              resolve();
            }
          });
        });
      } finally {
        child.kill("SIGKILL");
      }
      await new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve(null) : child.once("exit", resolve)));

      const store = new SqliteStore(path);
      try {
        assert.equal(acked.size, 4);
        for (const [entity, seq] of acked) {
          const events = await store.journal.events("p", entity);
          assert.ok(events.length >= seq, `${entity}: acknowledged ${seq}, found ${events.length}`);
          assert.deepEqual(
            events.map((e) => [e.sequence, Buffer.from(e.bytes).toString()]),
            events.map((_, i) => [i + 1, `${entity}:${i + 1}`]),
          );
        }
      } finally {
        await store.close();
      }
    });

    test("fsync durability (the default) runs WAL with synchronous FULL, relaxed with NORMAL", async () => {
      const fsync = new SqliteStore(freshPath());
      const explicit = new SqliteStore(freshPath(), { durability: "fsync" });
      const relaxed = new SqliteStore(freshPath(), { durability: "relaxed" });
      try {
        assert.equal(fsync.settings().journalMode, "wal");
        assert.equal(fsync.settings().synchronous, "FULL");
        assert.equal(explicit.settings().synchronous, "FULL");
        assert.equal(relaxed.settings().journalMode, "wal");
        assert.equal(relaxed.settings().synchronous, "NORMAL");
      } finally {
        await Promise.all([fsync.close(), explicit.close(), relaxed.close()]);
      }
    });
  });

  describe("group commit", () => {
    test("200 concurrent appends from 200 entities commit in far fewer transactions than writes", async () => {
      const store = new SqliteStore(freshPath());
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
      const store = new SqliteStore(freshPath());
      try {
        const state = (v: string) => ({ typeUrl: "type.googleapis.com/shop.Cart", bytes: Buffer.from(v) });
        const writes = Array.from({ length: 30 }, (_, i) =>
          i % 3 === 0
            ? store.journal.append(append(`cart-${i}`, 0, "a"))
            : (i % 3 === 1 ? store.values : store.crdts).write({ persistenceId: PID, entityId: `cart-${i}`, expectedVersion: 0, value: state(`${i}`) }),
        );
        await Promise.all(writes);
        assert.deepEqual(store.stats(), { batches: 1, writes: 30 });
      } finally {
        await store.close();
      }
    });

    test("topic publishes share the transaction of the appends and value writes issued with them", async () => {
      const store = new SqliteStore(freshPath());
      try {
        const publish = (i: number) =>
          store.topics.publish([{ topic: `t-${i % 2}`, id: `${i}`, source: "s", type: "t", subject: "", contentType: "text/plain", time: 0, data: Buffer.from(`${i}`) }]);
        await Promise.all(
          Array.from({ length: 30 }, (_, i) =>
            i % 3 === 0
              ? store.journal.append(append(`cart-${i}`, 0, "a"))
              : i % 3 === 1
                ? publish(i)
                : store.values.write({ persistenceId: PID, entityId: `cart-${i}`, expectedVersion: 0, value: { typeUrl: "t", bytes: Buffer.from(`${i}`) } }),
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

    test("a full queue is committed at once, without waiting for the scheduled flush", async () => {
      const store = new SqliteStore(freshPath(), { maxBatchSize: 16 });
      try {
        const pending = Array.from({ length: 100 }, (_, i) => store.journal.append(append(`cart-${i}`, 0, "a")));
        // Six full batches of 16 were committed synchronously; the last 4 wait for setImmediate.
        assert.deepEqual(store.stats(), { batches: 6, writes: 96 });
        await Promise.all(pending);
        assert.deepEqual(store.stats(), { batches: 7, writes: 100 });
      } finally {
        await store.close();
      }
    });

    test("a failed transaction rejects every append of its batch with StoreUnavailableError and stores none of it", async () => {
      const path = freshPath();
      const store = new SqliteStore(path);
      try {
        await store.journal.append(append("cart-0", 0, "before"));
        // Another connection makes the insert of one particular event fail, like a disk error would.
        const saboteur = new Database(path);
        saboteur.exec(`CREATE TRIGGER boom BEFORE INSERT ON journal WHEN NEW.payload = CAST('boom' AS BLOB)
                       BEGIN SELECT RAISE(ABORT, 'disk on fire'); END`);
        const results = await Promise.allSettled([
          store.journal.append(append("cart-0", 1, "fine")),
          store.journal.append(append("cart-1", 0, "fine")),
          store.journal.append(append("cart-2", 0, "boom")),
          store.journal.append(append("cart-3", 0, "fine")),
        ]);
        for (const result of results) {
          assert.equal(result.status, "rejected");
          assert.ok(result.reason instanceof StoreUnavailableError);
          assert.match(String((result.reason as Error).cause), /disk on fire/);
        }
        assert.deepEqual(await contents(store, "cart-0"), ["before"]);
        assert.deepEqual(await store.journal.entityIds(PID), ["cart-0"]);
        assert.equal(store.stats().writes, 1);

        // The store keeps serving once the cause is gone.
        saboteur.exec("DROP TRIGGER boom");
        saboteur.close();
        await store.journal.append(append("cart-0", 1, "after"));
        assert.deepEqual(await contents(store, "cart-0"), ["before", "after"]);
      } finally {
        await store.close();
      }
    });
  });

  describe("schema", () => {
    test("a new file is created with its parent directories at the latest schema version", async () => {
      const path = join(freshDir(), "a", "b", "store.db");
      const store = new SqliteStore(path);
      try {
        assert.ok(existsSync(path));
        assert.equal(store.description, `sqlite:${path}`);
        assert.equal(store.settings().schemaVersion, migrations.length);
      } finally {
        await store.close();
      }
    });

    test("reopening a file keeps its schema version and data (migration is idempotent)", async () => {
      const path = freshPath();
      for (let round = 0; round < 3; round++) {
        const store = new SqliteStore(path);
        try {
          assert.equal(store.settings().schemaVersion, migrations.length);
          await store.journal.append(append("cart-1", round, `${round}`));
        } finally {
          await store.close();
        }
      }
      const db = new Database(path, { readonly: true });
      try {
        assert.equal(schemaVersion(db), migrations.length);
        assert.equal(db.prepare("SELECT count(*) FROM journal").pluck().get(), 3);
      } finally {
        db.close();
      }
    });

    test("a file from schema version 1 (journal only) gains value and CRDT state and keeps its journal", async () => {
      const path = freshPath();
      const db = new Database(path);
      migrate(db, migrations.slice(0, 1));
      db.prepare("INSERT INTO journal (persistence_id, entity_id, sequence, type_url, payload, written_at) VALUES (?, ?, 1, 't', ?, 0)").run(
        PID,
        "cart-1",
        Buffer.from("old"),
      );
      db.close();
      const store = new SqliteStore(path);
      try {
        assert.equal(store.settings().schemaVersion, migrations.length);
        assert.deepEqual(await contents(store, "cart-1"), ["old"]);
        assert.equal(await store.values.write({ persistenceId: PID, entityId: "cart-1", expectedVersion: 0, value: undefined }), 1);
      } finally {
        await store.close();
      }
    });

    test("a file from schema version 2 gains topics, offsets and dead letters, and its journal becomes an event log", async () => {
      const path = freshPath();
      const db = new Database(path);
      migrate(db, migrations.slice(0, 2));
      const insert = db.prepare("INSERT INTO journal (persistence_id, entity_id, sequence, type_url, payload, written_at) VALUES (?, ?, 1, 't', ?, ?)");
      insert.run(PID, "cart-1", Buffer.from("old"), 1_700_000_000_123);
      insert.run(PID, "cart-2", Buffer.from("older"), 1_700_000_000_456);
      db.close();
      const store = new SqliteStore(path);
      try {
        assert.equal(store.settings().schemaVersion, migrations.length);
        const log = await store.journal.eventLog(PID, 0, 10);
        assert.deepEqual(
          log.map((e) => [e.entityId, e.sequence, Buffer.from(e.bytes).toString(), e.offset, e.timestamp]),
          [
            ["cart-1", 1, "old", 1, 1_700_000_000_123],
            ["cart-2", 1, "older", 2, 1_700_000_000_456],
          ],
        );
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

    test("a database at an older schema version gets only the migrations it has not seen", () => {
      const path = freshPath();
      const v1: Migration = { description: "a", sql: "CREATE TABLE a (x INTEGER)" };
      const v2: Migration = { description: "b", sql: "CREATE TABLE b (y INTEGER); INSERT INTO a VALUES (2)" };
      const db = new Database(path);
      try {
        assert.equal(migrate(db, [v1]), 1);
        db.exec("INSERT INTO a VALUES (1)");
        // Re-running v1 would fail: "table a already exists".
        assert.equal(migrate(db, [v1, v2]), 2);
        assert.equal(migrate(db, [v1, v2]), 2);
        assert.deepEqual(db.prepare("SELECT x FROM a ORDER BY x").pluck().all(), [1, 2]);
        assert.equal(schemaVersion(db), 2);
      } finally {
        db.close();
      }
    });

    test("a failing migration leaves the database at the previous version with none of its changes", () => {
      const db = new Database(freshPath());
      try {
        const v1: Migration = { description: "a", sql: "CREATE TABLE a (x INTEGER)" };
        const broken: Migration = { description: "broken", sql: "CREATE TABLE c (z INTEGER); NOT SQL" };
        assert.throws(() => migrate(db, [v1, broken]), /migration 2 \(broken\) failed/);
        assert.equal(schemaVersion(db), 1);
        assert.equal(db.prepare("SELECT count(*) FROM sqlite_master WHERE name = 'c'").pluck().get(), 0);
      } finally {
        db.close();
      }
    });

    test("a file written by a newer proxy (higher schema version) is refused with a clear error", () => {
      const path = freshPath();
      const db = new Database(path);
      db.pragma(`user_version = ${migrations.length + 1}`);
      db.close();
      assert.throws(() => new SqliteStore(path), /newer than this proxy knows.*upgrade the proxy/);
    });

    test("a store in memory or without a path is refused: it would not be durable", () => {
      assert.throws(() => new SqliteStore(":memory:"), /needs a file path.*memory store/);
      assert.throws(() => new SqliteStore(""), /needs a file path/);
    });
  });
});
