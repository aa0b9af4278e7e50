// The SQLite schema, as an ordered list of migrations. The database's PRAGMA user_version is the
// number of migrations applied; each migration runs in its own transaction together with the
// version bump, so a crash mid-migration leaves the previous version intact.
// Append new migrations at the end; never edit one that has shipped.
import type Database from "better-sqlite3";

export interface Migration {
  readonly description: string;
  readonly sql: string;
}

export const migrations: readonly Migration[] = [
  {
    description: "journal and snapshots",
    sql: `
      -- ordering is the global commit order (eventing reads "by persistence id in commit order");
      -- AUTOINCREMENT so an ordering value is never reused, even if rows are ever deleted.
      CREATE TABLE journal (
        ordering       INTEGER PRIMARY KEY AUTOINCREMENT,
        persistence_id TEXT    NOT NULL,
        entity_id      TEXT    NOT NULL,
        sequence       INTEGER NOT NULL,
        type_url       TEXT    NOT NULL,
        payload        BLOB    NOT NULL,
        written_at     INTEGER NOT NULL, -- milliseconds since the epoch
        UNIQUE (persistence_id, entity_id, sequence)
      );
      CREATE INDEX journal_by_persistence_id ON journal (persistence_id, ordering);

      -- Only the latest snapshot of each entity is kept.
      CREATE TABLE snapshots (
        persistence_id TEXT    NOT NULL,
        entity_id      TEXT    NOT NULL,
        sequence       INTEGER NOT NULL,
        type_url       TEXT    NOT NULL,
        payload        BLOB    NOT NULL,
        written_at     INTEGER NOT NULL,
        PRIMARY KEY (persistence_id, entity_id)
      );
    `,
  },
  {
    description: "value and CRDT state",
    sql: `
      -- The latest state of value entities (store.values) and of CRDT entities (store.crdts).
      -- A delete keeps the row as a tombstone (type_url and payload NULL) with its bumped version,
      -- so a version never goes backwards and a stale writer cannot resurrect a deleted entity.
      CREATE TABLE value_state (
        persistence_id TEXT    NOT NULL,
        entity_id      TEXT    NOT NULL,
        version        INTEGER NOT NULL,
        type_url       TEXT,
        payload        BLOB,
        written_at     INTEGER NOT NULL,
        PRIMARY KEY (persistence_id, entity_id),
        CHECK ((type_url IS NULL) = (payload IS NULL))
      );
      CREATE TABLE crdt_state (
        persistence_id TEXT    NOT NULL,
        entity_id      TEXT    NOT NULL,
        version        INTEGER NOT NULL,
        type_url       TEXT,
        payload        BLOB,
        written_at     INTEGER NOT NULL,
        PRIMARY KEY (persistence_id, entity_id),
        CHECK ((type_url IS NULL) = (payload IS NULL))
      );
    `,
  },
  {
    description: "topics, consumer offsets and dead letters",
    sql: `
      -- The event log needs nothing new: journal.ordering is its offset (SQLite has one writer, so
      -- ordering is commit order) and journal.written_at its commit time.

      -- Topic messages (CloudEvents). offset is global across topics, AUTOINCREMENT so that it is
      -- never reused once trimmed; (topic, source, id) identifies a message (idempotent publish).
      CREATE TABLE topic_messages (
        "offset"     INTEGER PRIMARY KEY AUTOINCREMENT,
        topic        TEXT    NOT NULL,
        id           TEXT    NOT NULL,
        source       TEXT    NOT NULL,
        type         TEXT    NOT NULL,
        subject      TEXT    NOT NULL,
        content_type TEXT    NOT NULL,
        time         INTEGER NOT NULL, -- ce-time, milliseconds since the epoch
        data         BLOB    NOT NULL,
        UNIQUE (topic, source, id)
      );
      CREATE INDEX topic_messages_by_topic ON topic_messages (topic, "offset");
      CREATE INDEX topic_messages_by_time ON topic_messages (time);
      -- Every topic that ever had a message, with the highest offset it was given (kept when
      -- retention deletes the messages).
      CREATE TABLE topics (
        topic TEXT    PRIMARY KEY,
        head  INTEGER NOT NULL
      );

      -- Where each consumer group is in each source, and which proxy holds the lease on it.
      CREATE TABLE consumer_offsets (
        consumer_group TEXT    NOT NULL,
        source         TEXT    NOT NULL,
        "offset"       INTEGER NOT NULL DEFAULT 0,
        owner          TEXT,
        lease_expires  INTEGER, -- milliseconds since the epoch
        PRIMARY KEY (consumer_group, source)
      );

      -- Messages consumers gave up on.
      CREATE TABLE dead_letters (
        id             INTEGER PRIMARY KEY AUTOINCREMENT,
        consumer_group TEXT    NOT NULL,
        source         TEXT    NOT NULL,
        "offset"       INTEGER NOT NULL,
        message_id     TEXT    NOT NULL,
        type           TEXT    NOT NULL,
        subject        TEXT    NOT NULL,
        content_type   TEXT    NOT NULL,
        data           BLOB    NOT NULL,
        attempts       INTEGER NOT NULL,
        error          TEXT    NOT NULL,
        time           INTEGER NOT NULL
      );
    `,
  },
];

/** Brings the database to `list.length`, applying only the migrations it has not seen. */
export function migrate(db: Database.Database, list: readonly Migration[] = migrations): number {
  for (;;) {
    // Read the version inside an IMMEDIATE transaction: two processes opening a new file at the
    // same time must not both apply the same migration.
    const applied = db
      .transaction(() => {
        const version = schemaVersion(db);
        if (version > list.length) {
          throw new Error(
            `the store schema is at version ${version}, newer than this proxy knows (${list.length}): upgrade the proxy`,
          );
        }
        if (version === list.length) return false;
        const migration = list[version]!;
        try {
          db.exec(migration.sql);
        } catch (cause) {
          throw new Error(
            `store schema migration ${version + 1} (${migration.description}) failed: ${(cause as Error).message}`,
            { cause },
          );
        }
        db.pragma(`user_version = ${version + 1}`);
        return true;
      })
      .immediate();
    if (!applied) return list.length;
  }
}

export function schemaVersion(db: Database.Database): number {
  return db.pragma("user_version", { simple: true }) as number;
}
