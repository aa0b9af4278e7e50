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

  test("accepts postgres:// and postgresql:// URLs, passed on whole, described without the password", () => {
    assert.deepEqual(parseStoreSpec("postgres://user:s3cret@db:6543/cs"), {
      kind: "postgres",
      connection: { url: "postgres://user:s3cret@db:6543/cs" },
      description: "postgres://user@db:6543/cs",
    });
    assert.deepEqual(parseStoreSpec(" postgresql://user:s3cret@db/cs?sslmode=require "), {
      kind: "postgres",
      connection: { url: "postgresql://user:s3cret@db/cs?sslmode=require" },
      description: "postgres://user@db:5432/cs",
    });
    // Escaped user and password; no database means the user's name, as libpq does.
    const spec = parseStoreSpec("postgres://app%40x:p%2Fw%40@10.0.0.7:5432");
    assert.equal(spec.kind === "postgres" && spec.description, "postgres://app@x@10.0.0.7:5432/app@x");
  });

  test("postgres alone reads the connection from POSTGRES_SERVICE, POSTGRES_PORT (default 5432), _DATABASE, _USERNAME, _PASSWORD", () => {
    const env = {
      POSTGRES_SERVICE: "db.internal",
      POSTGRES_DATABASE: "cloudstate",
      POSTGRES_USERNAME: "proxy",
      POSTGRES_PASSWORD: " s3cret ",
    };
    assert.deepEqual(parseStoreSpec("postgres", { env }), {
      kind: "postgres",
      connection: { host: "db.internal", port: 5432, database: "cloudstate", user: "proxy", password: " s3cret " },
      description: "postgres://proxy@db.internal:5432/cloudstate",
    });
    const withPort = parseStoreSpec("postgres", { env: { ...env, POSTGRES_PORT: "6543", POSTGRES_PASSWORD: "" } });
    assert.deepEqual(withPort.kind === "postgres" && withPort.connection, {
      host: "db.internal",
      port: 6543,
      database: "cloudstate",
      user: "proxy",
      password: undefined,
    });
  });

  test("postgres alone without its environment names what is missing", () => {
    assert.throws(
      () => parseStoreSpec("postgres", { env: { POSTGRES_SERVICE: "db", POSTGRES_PORT: "x", POSTGRES_PASSWORD: "s3cret" } }),
      (error: Error) => {
        assert.match(error.message, /POSTGRES_DATABASE, POSTGRES_USERNAME are not set/);
        assert.match(error.message, /POSTGRES_PORT must be a port number, got "x"/);
        assert.doesNotMatch(error.message, /s3cret/);
        return true;
      },
    );
    assert.throws(() => parseStoreSpec("postgres", { env: {} }), /POSTGRES_SERVICE, POSTGRES_DATABASE, POSTGRES_USERNAME are not set/);
  });

  test("a malformed postgres URL is refused without echoing its password", () => {
    for (const spec of ["postgres://user:s3cret@/cs", "postgres://user:s3cret@db:99999/cs", "postgresql://user:s3cret%zz@db:5432/cs"]) {
      assert.throws(
        () => parseStoreSpec(spec),
        (error: Error) => {
          assert.match(error.message, /invalid PostgreSQL URL/);
          assert.doesNotMatch(error.message, /s3cret/);
          return true;
        },
        spec,
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
    await assert.rejects(openStore("postgres", { env: {} }), /POSTGRES_SERVICE/);
    await assert.rejects(openStore("nope"), /invalid store "nope"/);
  });
});
