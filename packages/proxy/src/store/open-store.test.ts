import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { MemoryStore } from "./memory/memory-store.js";
import { openStore, parseStoreSpec } from "./open-store.js";
import { SqliteStore } from "./sqlite/sqlite-store.js";

describe("parseStoreSpec", () => {
  test("accepts memory, sqlite with the default file, and sqlite:PATH relative to cwd or absolute", () => {
    assert.deepEqual(parseStoreSpec("memory"), { kind: "memory" });
    assert.deepEqual(parseStoreSpec(" memory "), { kind: "memory" });
    assert.deepEqual(parseStoreSpec("sqlite", { dataDir: "/var/lib/cs" }), {
      kind: "sqlite",
      path: "/var/lib/cs/cloudstate.db",
    });
    assert.deepEqual(parseStoreSpec("sqlite", { cwd: "/srv/app" }), { kind: "sqlite", path: "/srv/app/.data/cloudstate.db" });
    assert.deepEqual(parseStoreSpec("sqlite", { cwd: "/srv/app", dataDir: "state" }), {
      kind: "sqlite",
      path: "/srv/app/state/cloudstate.db",
    });
    assert.deepEqual(parseStoreSpec("sqlite:data/x.db", { cwd: "/srv/app" }), { kind: "sqlite", path: "/srv/app/data/x.db" });
    assert.deepEqual(parseStoreSpec("sqlite:/tmp/x.db", { cwd: "/srv/app" }), { kind: "sqlite", path: "/tmp/x.db" });
    assert.deepEqual(parseStoreSpec("sqlite:x.db"), { kind: "sqlite", path: join(process.cwd(), "x.db") });
  });

  test("a postgres URL says the PostgreSQL store is not available yet, without echoing the password", () => {
    for (const spec of ["postgres://user:s3cret@db:5432/cs", "postgresql://user:s3cret@db/cs"]) {
      assert.throws(
        () => parseStoreSpec(spec),
        (error: Error) => {
          assert.match(error.message, /PostgreSQL store is not available yet/);
          assert.doesNotMatch(error.message, /s3cret/);
          return true;
        },
      );
    }
  });

  test("any other value is refused with a message naming it and listing the accepted forms", () => {
    for (const spec of ["", "Memory", "redis", "sqlite:", "sqlite://db.sqlite", "sqlite::memory:", "file:x.db"]) {
      assert.throws(
        () => parseStoreSpec(spec),
        (error: Error) => {
          assert.ok(error.message.includes(`"${spec}"`), error.message);
          assert.match(error.message, /"memory".*"sqlite".*"sqlite:PATH"/);
          return true;
        },
        spec,
      );
    }
  });

  test("credentials in a refused URL are not repeated in the error", () => {
    assert.throws(() => parseStoreSpec("mysql://root:hunter2@db/cs"), (error: Error) => {
      assert.match(error.message, /"mysql:\/\/\*\*\*@db\/cs"/);
      assert.doesNotMatch(error.message, /hunter2/);
      return true;
    });
  });
});

describe("openStore", () => {
  test("opens a memory store", async () => {
    const store = await openStore("memory");
    try {
      assert.ok(store instanceof MemoryStore);
      assert.equal(store.description, "memory");
    } finally {
      await store.close();
    }
  });

  test("opens the default SQLite file under dataDir, with the durability asked for", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cloudstate-open-"));
    try {
      const store = await openStore("sqlite", { dataDir: dir, durability: "relaxed" });
      try {
        assert.ok(store instanceof SqliteStore);
        assert.equal(store.description, `sqlite:${join(dir, "cloudstate.db")}`);
        assert.equal(store.settings().synchronous, "NORMAL");
      } finally {
        await store.close();
      }
      const fromPath = await openStore(`sqlite:${join(dir, "other.db")}`);
      try {
        assert.equal(fromPath.description, `sqlite:${join(dir, "other.db")}`);
        assert.equal((fromPath as SqliteStore).settings().synchronous, "FULL");
      } finally {
        await fromPath.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("rejects a bad spec before opening anything", async () => {
    await assert.rejects(openStore("postgres://localhost/cs"), /PostgreSQL store is not available yet/);
    await assert.rejects(openStore("nope"), /invalid store "nope"/);
  });
});
