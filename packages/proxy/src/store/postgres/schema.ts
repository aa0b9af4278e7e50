// The PostgreSQL schema, as an ordered list of migrations, applied by the store when it opens.
// Several proxies may open the same database at the same moment, so migrating takes a session
// advisory lock (per database schema): the others wait, then find the migrations applied. The
// table schema_migrations records each applied migration; each migration runs in one transaction
// together with its record, so a failure leaves the previous version intact.
// Append new migrations at the end; never edit one that has shipped.
import pg from "pg";

export interface Migration {
  readonly description: string;
  /** Runs with search_path set to the store's schema: name tables without a schema. */
  readonly sql: string;
}

export const migrations: readonly Migration[] = [
  {
    description: "journal, snapshots, value and CRDT state",
    sql: `
      -- The primary key is what makes a concurrent duplicate append fail (invariant 1 across
      -- proxies): two writers that both read head n both insert sequence n+1, and one of them
      -- gets a unique violation. Ids use the "C" collation: code point order, as in every store.
      -- ordering numbers rows in insertion order across the database (for reading a persistence
      -- id's events in order); values are taken at insert, so concurrent transactions may commit
      -- them out of order.
      CREATE TABLE journal (
        persistence_id text COLLATE "C" NOT NULL,
        entity_id      text COLLATE "C" NOT NULL,
        sequence       bigint           NOT NULL CHECK (sequence > 0),
        type_url       text             NOT NULL,
        payload        bytea            NOT NULL,
        written_at     timestamptz      NOT NULL DEFAULT now(),
        ordering       bigserial        NOT NULL,
        PRIMARY KEY (persistence_id, entity_id, sequence)
      );
      CREATE INDEX journal_by_persistence_id ON journal (persistence_id, ordering);

      -- Only the latest snapshot of each entity is kept.
      CREATE TABLE snapshots (
        persistence_id text COLLATE "C" NOT NULL,
        entity_id      text COLLATE "C" NOT NULL,
        sequence       bigint           NOT NULL,
        type_url       text             NOT NULL,
        payload        bytea            NOT NULL,
        written_at     timestamptz      NOT NULL DEFAULT now(),
        PRIMARY KEY (persistence_id, entity_id)
      );

      -- The latest state of value entities (store.values) and of CRDT entities (store.crdts).
      -- A delete keeps the row as a tombstone (type_url and payload NULL) with its bumped version,
      -- so a version never goes backwards and a stale writer cannot resurrect a deleted entity.
      CREATE TABLE value_state (
        persistence_id text COLLATE "C" NOT NULL,
        entity_id      text COLLATE "C" NOT NULL,
        version        bigint           NOT NULL CHECK (version > 0),
        type_url       text,
        payload        bytea,
        written_at     timestamptz      NOT NULL DEFAULT now(),
        PRIMARY KEY (persistence_id, entity_id),
        CHECK ((type_url IS NULL) = (payload IS NULL))
      );
      CREATE TABLE crdt_state (LIKE value_state INCLUDING ALL);
    `,
  },
  {
    description: "event log commit times, topics, consumer offsets and dead letters",
    sql: `
      -- The event log of a persistence id is its journal rows in ordering order; written_at is an
      -- event's commit time. Batches that write journal rows take a transaction advisory lock
      -- before inserting them (batch.ts), so ordering values are taken in commit order, and the
      -- time of the inserting statement (rather than of the transaction's start, which may be
      -- before it waited for the lock) keeps commit times in that order too.
      ALTER TABLE journal ALTER COLUMN written_at SET DEFAULT statement_timestamp();

      -- Topic messages (CloudEvents). offset is global across topics and taken under an advisory
      -- lock of its own, so in commit order; (topic, source, id) identifies a message (idempotent
      -- publish). time is ce-time in milliseconds since the epoch.
      CREATE TABLE topic_messages (
        "offset"     bigserial        PRIMARY KEY,
        topic        text COLLATE "C" NOT NULL,
        id           text COLLATE "C" NOT NULL,
        source       text COLLATE "C" NOT NULL,
        type         text             NOT NULL,
        subject      text             NOT NULL,
        content_type text             NOT NULL,
        time         bigint           NOT NULL,
        data         bytea            NOT NULL,
        UNIQUE (topic, source, id)
      );
      CREATE INDEX topic_messages_by_topic ON topic_messages (topic, "offset");
      CREATE INDEX topic_messages_by_time ON topic_messages (time);
      -- Every topic that ever had a message, with the highest offset it was given (kept when
      -- retention deletes the messages).
      CREATE TABLE topics (
        topic text COLLATE "C" PRIMARY KEY,
        head  bigint           NOT NULL
      );

      -- Where each consumer group is in each source, and which proxy holds the lease on it (lease
      -- times are the database's clock, shared by every proxy).
      CREATE TABLE consumer_offsets (
        consumer_group text COLLATE "C" NOT NULL,
        source         text COLLATE "C" NOT NULL,
        "offset"       bigint           NOT NULL DEFAULT 0,
        owner          text,
        lease_expires  timestamptz,
        PRIMARY KEY (consumer_group, source)
      );

      -- Messages consumers gave up on.
      CREATE TABLE dead_letters (
        id             bigserial PRIMARY KEY,
        consumer_group text      NOT NULL,
        source         text      NOT NULL,
        "offset"       bigint    NOT NULL,
        message_id     text      NOT NULL,
        type           text      NOT NULL,
        subject        text      NOT NULL,
        content_type   text      NOT NULL,
        data           bytea     NOT NULL,
        attempts       integer   NOT NULL,
        error          text      NOT NULL,
        time           bigint    NOT NULL
      );
    `,
  },
];

/** The schema cannot be brought to this proxy's version: a deployment problem, not worth retrying. */
export class SchemaError extends Error {
  override readonly name = "SchemaError";
}

/** A quoted SQL identifier. */
export function quoteIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

// The first key of the two-part advisory lock: "CSTS" in ASCII, so that it does not collide with
// locks other applications take in the same database. The second key is the schema name's hash.
const LOCK_NAMESPACE = 0x43535453;

/**
 * The first keys of the transaction advisory locks that serialise writers (the second key is
 * hashtext(schema), as for migrations): "CSTJ" for transactions that insert journal rows, "CSTT"
 * for those that insert or delete topic messages. A transaction that takes both takes the
 * journal's first.
 */
export const JOURNAL_LOCK = 0x4353544a;
export const TOPIC_LOCK = 0x43535454;

/**
 * Brings `schema` (created if missing) to `list.length`, applying only the migrations it has not
 * seen. Returns the schema version. The client must be a session of its own (not a pooled one
 * that others reuse mid-way): the advisory lock belongs to the session.
 */
export async function migrate(client: pg.ClientBase, schema: string, list: readonly Migration[] = migrations): Promise<number> {
  const table = `${quoteIdentifier(schema)}.schema_migrations`;
  await client.query("SELECT pg_advisory_lock($1, hashtext($2))", [LOCK_NAMESPACE, schema]);
  try {
    // Checked first: CREATE SCHEMA IF NOT EXISTS needs the CREATE privilege on the database even
    // when the schema exists, and a store may run as a user that only owns its schema.
    const exists = await client.query("SELECT 1 FROM pg_namespace WHERE nspname = $1", [schema]);
    if (exists.rowCount === 0) await client.query(`CREATE SCHEMA ${quoteIdentifier(schema)}`);
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${table} (
         version     integer     PRIMARY KEY,
         description text        NOT NULL,
         applied_at  timestamptz NOT NULL DEFAULT now()
       )`,
    );
    const version = await schemaVersion(client, schema);
    if (version > list.length) {
      throw new SchemaError(`the store schema is at version ${version}, newer than this proxy knows (${list.length}): upgrade the proxy`);
    }
    for (let next = version; next < list.length; next++) {
      const migration = list[next]!;
      await client.query("BEGIN");
      try {
        await client.query(`SET LOCAL search_path TO ${quoteIdentifier(schema)}`);
        await client.query(migration.sql);
        await client.query(`INSERT INTO ${table} (version, description) VALUES ($1, $2)`, [next + 1, migration.description]);
        await client.query("COMMIT");
      } catch (cause) {
        await client.query("ROLLBACK").catch(() => undefined);
        // A lost connection is not the migration's fault: the caller may retry.
        if (!(cause instanceof pg.DatabaseError)) throw cause;
        throw new SchemaError(`store schema migration ${next + 1} (${migration.description}) failed: ${cause.message}`, { cause });
      }
    }
    return list.length;
  } finally {
    // If the connection broke, the server has released the lock with the session.
    await client.query("SELECT pg_advisory_unlock($1, hashtext($2))", [LOCK_NAMESPACE, schema]).catch(() => undefined);
  }
}

/** The number of migrations applied to `schema` (0 for a schema without the store's tables). */
export async function schemaVersion(client: pg.ClientBase, schema: string): Promise<number> {
  const table = `${quoteIdentifier(schema)}.schema_migrations`;
  const found = await client.query<{ missing: boolean }>("SELECT to_regclass($1) IS NULL AS missing", [table]);
  if (found.rows[0]!.missing) return 0;
  const applied = await client.query<{ version: number | null }>(`SELECT max(version) AS version FROM ${table}`);
  return applied.rows[0]!.version ?? 0;
}
