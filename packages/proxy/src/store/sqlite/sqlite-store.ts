// The embedded store, and the default: one SQLite file in WAL mode.
//
// Group commit (invariant 3): append(), the value stores' write() and topic publish() only queue
// their write; a flush, scheduled with setImmediate or forced by a full queue, commits every queued
// write (journal appends, value/CRDT state and topic messages alike) in ONE transaction, so concurrent commands from many entities
// share one fsync. better-sqlite3 is synchronous, so a flush runs to completion before any other
// JavaScript: a resolved write is always committed, and reads never observe a half-applied batch.
// Consumer offsets, dead letters and topic trims are written at once, each in a transaction of its
// own (they are few, and batched by their callers).
//
// Event log: journal.ordering is the offset. SQLite has a single writer, so ordering is commit
// order; journal.written_at (the batch's time) is the commit timestamp.
import { mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import Database from "better-sqlite3";
import {
  checkAppend,
  checkConsumerCall,
  checkDeadLetter,
  checkEventLogRead,
  checkInteger,
  checkPublish,
  checkTopicRead,
  checkValueWrite,
  CommitListeners,
  secondsSince,
  SequenceConflictError,
  StoreUnavailableError,
  VersionConflictError,
  type CommitListener,
  type ConsumerOffsets,
  type ConsumerPosition,
  type DeadLetter,
  type DeadLetters,
  type Durability,
  type EventLogEntry,
  type Journal,
  type JournalAppend,
  type KeyValueStore,
  type RecoveredJournal,
  type Store,
  type StoreStats,
  type StoredEvent,
  type StoredSnapshot,
  type TopicInfo,
  type TopicLog,
  type TopicMessage,
  type TopicPublish,
  type ValueWrite,
  type VersionedValue,
} from "../store.js";
import { migrate, schemaVersion } from "./schema.js";

/**
 * fsync (default): synchronous=FULL, a commit is fsynced before the append resolves, so an
 * acknowledged write survives power loss. relaxed: synchronous=NORMAL, commits survive a crash or
 * kill -9 of the process, but an OS crash or power loss may lose the latest ones.
 */
export type { Durability } from "../store.js";

export interface SqliteStoreOptions {
  durability?: Durability;
  /** The most writes (appends, value writes, publishes) one transaction carries; a queue this long is flushed at once. */
  maxBatchSize?: number;
}

/** What the connection actually runs with, read back from SQLite (for diagnostics and tests). */
export interface SqliteSettings {
  readonly journalMode: string;
  readonly synchronous: "OFF" | "NORMAL" | "FULL" | "EXTRA";
  readonly schemaVersion: number;
}

type PendingWrite = PendingAppend | PendingValueWrite | PendingPublish;

interface PendingAppend {
  readonly kind: "append";
  readonly append: JournalAppend;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
  conflict: SequenceConflictError | undefined;
}

interface PendingValueWrite {
  readonly kind: "value";
  readonly table: ValueTable;
  readonly write: ValueWrite;
  readonly resolve: (version: number) => void;
  readonly reject: (error: Error) => void;
  conflict: VersionConflictError | undefined;
}

interface PendingPublish {
  readonly kind: "publish";
  readonly messages: readonly TopicPublish[];
  readonly resolve: (offsets: number[]) => void;
  readonly reject: (error: Error) => void;
  /** A publish never conflicts; the field keeps the queue's handling uniform. */
  readonly conflict: undefined;
  offsets: number[];
}

type MessageRow = [string, string, string, string, string, string, number, Uint8Array];

/** The prepared statements of one value namespace (value_state or crdt_state). */
interface ValueTable {
  readonly selectVersion: Database.Statement<[string, string], number>;
  readonly selectValue: Database.Statement<[string, string], { version: number; typeUrl: string | null; bytes: Buffer | null }>;
  readonly selectEntityIds: Database.Statement<[string], string>;
  readonly upsert: Database.Statement<[string, string, number, string | null, Uint8Array | null, number]>;
}

const DEFAULT_MAX_BATCH_SIZE = 512;
const SYNCHRONOUS_NAMES = ["OFF", "NORMAL", "FULL", "EXTRA"] as const;

export class SqliteStore implements Store {
  readonly description: string;
  readonly path: string;
  readonly journal: Journal;
  readonly values: KeyValueStore;
  readonly crdts: KeyValueStore;
  readonly topics: TopicLog;
  readonly offsets: ConsumerOffsets;
  readonly deadLetters: DeadLetters;

  private readonly db: Database.Database;
  private readonly maxBatchSize: number;
  private queue: PendingWrite[] = [];
  private timer: NodeJS.Immediate | undefined;
  private closed = false;
  private batches = 0;
  private writes = 0;
  private readonly commits = new CommitListeners();

  private readonly selectHead: Database.Statement<[string, string], number | null>;
  private readonly selectSnapshot: Database.Statement<[string, string], StoredSnapshot>;
  private readonly selectEvents: Database.Statement<[string, string, number], StoredEvent>;
  private readonly selectEntityIds: Database.Statement<[string], string>;
  private readonly insertEvent: Database.Statement<[string, string, number, string, Uint8Array, number]>;
  private readonly upsertSnapshot: Database.Statement<[string, string, number, string, Uint8Array, number]>;
  private readonly valueTables: { readonly values: ValueTable; readonly crdts: ValueTable };
  private readonly selectEventLog: Database.Statement<[string, number, number], EventLogEntry>;
  private readonly selectEventLogHead: Database.Statement<[string], number | null>;
  private readonly insertMessage: Database.Statement<MessageRow, number>;
  private readonly selectMessageOffset: Database.Statement<[string, string, string], number>;
  private readonly upsertTopicHead: Database.Statement<[string, number]>;
  private readonly commitBatch: (batch: PendingWrite[]) => number;

  constructor(path: string, options: SqliteStoreOptions = {}) {
    if (path === "" || path === ":memory:" || path.startsWith("file:")) {
      throw new Error(`the SQLite store needs a file path, got "${path}" (for a store in memory, use the memory store)`);
    }
    const durability = options.durability ?? "fsync";
    if (durability !== "fsync" && durability !== "relaxed") {
      throw new Error(`unknown durability "${String(durability)}": expected "fsync" or "relaxed"`);
    }
    this.maxBatchSize = options.maxBatchSize ?? DEFAULT_MAX_BATCH_SIZE;
    if (!Number.isSafeInteger(this.maxBatchSize) || this.maxBatchSize < 1) {
      throw new RangeError(`maxBatchSize must be a positive integer, got ${options.maxBatchSize}`);
    }
    this.path = resolve(path);
    this.description = `sqlite:${this.path}`;

    mkdirSync(dirname(this.path), { recursive: true });
    this.db = new Database(this.path);
    try {
      const mode = this.db.pragma("journal_mode = WAL", { simple: true });
      if (mode !== "wal") throw new Error(`could not switch ${this.path} to WAL journal mode (got ${String(mode)})`);
      this.db.pragma(`synchronous = ${durability === "fsync" ? "FULL" : "NORMAL"}`);
      migrate(this.db);

      // Column aliases make the rows StoredEvent/StoredSnapshot objects as they come.
      this.selectHead = this.db
        .prepare<[string, string], number | null>(
          "SELECT max(sequence) FROM journal WHERE persistence_id = ? AND entity_id = ?",
        )
        .pluck();
      this.selectSnapshot = this.db.prepare<[string, string], StoredSnapshot>(
        "SELECT sequence, type_url AS typeUrl, payload AS bytes FROM snapshots WHERE persistence_id = ? AND entity_id = ?",
      );
      this.selectEvents = this.db.prepare<[string, string, number], StoredEvent>(
        "SELECT sequence, type_url AS typeUrl, payload AS bytes FROM journal" +
          " WHERE persistence_id = ? AND entity_id = ? AND sequence >= ? ORDER BY sequence",
      );
      this.selectEntityIds = this.db
        .prepare<[string], string>("SELECT DISTINCT entity_id FROM journal WHERE persistence_id = ? ORDER BY entity_id")
        .pluck();
      this.insertEvent = this.db.prepare(
        "INSERT INTO journal (persistence_id, entity_id, sequence, type_url, payload, written_at) VALUES (?, ?, ?, ?, ?, ?)",
      );
      this.upsertSnapshot = this.db.prepare(
        "INSERT INTO snapshots (persistence_id, entity_id, sequence, type_url, payload, written_at) VALUES (?, ?, ?, ?, ?, ?)" +
          " ON CONFLICT (persistence_id, entity_id) DO UPDATE SET" +
          " sequence = excluded.sequence, type_url = excluded.type_url, payload = excluded.payload, written_at = excluded.written_at",
      );
      this.valueTables = { values: this.prepareValueTable("value_state"), crdts: this.prepareValueTable("crdt_state") };
      this.selectEventLog = this.db.prepare(
        "SELECT entity_id AS entityId, sequence, type_url AS typeUrl, payload AS bytes, ordering AS offset, written_at AS timestamp" +
          " FROM journal WHERE persistence_id = ? AND ordering > ? ORDER BY ordering LIMIT ?",
      );
      this.selectEventLogHead = this.db
        .prepare<[string], number | null>("SELECT max(ordering) FROM journal WHERE persistence_id = ?")
        .pluck();
      // A message already stored (from an earlier batch, or earlier in this one) returns nothing.
      this.insertMessage = this.db
        .prepare<MessageRow, number>(
          "INSERT INTO topic_messages (topic, id, source, type, subject, content_type, time, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)" +
            ' ON CONFLICT (topic, source, id) DO NOTHING RETURNING "offset"',
        )
        .pluck();
      this.selectMessageOffset = this.db
        .prepare<[string, string, string], number>('SELECT "offset" FROM topic_messages WHERE topic = ? AND source = ? AND id = ?')
        .pluck();
      this.upsertTopicHead = this.db.prepare(
        "INSERT INTO topics (topic, head) VALUES (?, ?) ON CONFLICT (topic) DO UPDATE SET head = max(head, excluded.head)",
      );
      // IMMEDIATE takes the write lock before the sequence and version checks, so another process
      // writing the same file cannot slip a write in between a check and its insert.
      this.commitBatch = this.db.transaction((batch: PendingWrite[]) => this.writeBatch(batch)).immediate;
    } catch (error) {
      this.db.close();
      throw error;
    }

    this.journal = {
      recover: (persistenceId, entityId) => this.recover(persistenceId, entityId),
      append: (append) => this.append(append),
      events: (persistenceId, entityId, fromSequence) => this.events(persistenceId, entityId, fromSequence),
      entityIds: (persistenceId) => this.entityIds(persistenceId),
      eventLog: async (persistenceId, afterOffset, limit) => {
        this.checkOpen();
        const invalid = checkEventLogRead(persistenceId, afterOffset, limit);
        if (invalid) throw invalid;
        return this.read(() => this.selectEventLog.all(persistenceId, afterOffset, limit));
      },
      eventLogHead: async (persistenceId) => {
        this.checkOpen();
        const invalid = checkEventLogRead(persistenceId, 0);
        if (invalid) throw invalid;
        return this.read(() => this.selectEventLogHead.get(persistenceId) ?? 0);
      },
    };
    this.values = this.keyValueStore(this.valueTables.values);
    this.crdts = this.keyValueStore(this.valueTables.crdts);
    this.topics = this.topicLog();
    this.offsets = this.consumerOffsets();
    this.deadLetters = this.deadLetterStore();
  }

  stats(): StoreStats {
    return { batches: this.batches, writes: this.writes };
  }

  onCommit(listener: CommitListener): () => void {
    return this.commits.add(listener);
  }

  /** Never calls the listener: one process owns the database file, and onCommit sees every write. */
  onExternalWrite(): () => void {
    return () => undefined;
  }

  settings(): SqliteSettings {
    this.checkOpen();
    return {
      journalMode: this.db.pragma("journal_mode", { simple: true }) as string,
      synchronous: SYNCHRONOUS_NAMES[this.db.pragma("synchronous", { simple: true }) as number]!,
      schemaVersion: schemaVersion(this.db),
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.flush();
    this.db.close();
  }

  private append(append: JournalAppend): Promise<void> {
    if (this.closed) return Promise.reject(this.closedError());
    const invalid = checkAppend(append);
    if (invalid) return Promise.reject(invalid);
    const promise = new Promise<void>((resolve, reject) => {
      this.queue.push({ kind: "append", append, resolve, reject, conflict: undefined });
    });
    this.scheduleFlush();
    return promise;
  }

  private writeValue(table: ValueTable, write: ValueWrite): Promise<number> {
    if (this.closed) return Promise.reject(this.closedError());
    const invalid = checkValueWrite(write);
    if (invalid) return Promise.reject(invalid);
    const promise = new Promise<number>((resolve, reject) => {
      this.queue.push({ kind: "value", table, write, resolve, reject, conflict: undefined });
    });
    this.scheduleFlush();
    return promise;
  }

  private publish(messages: readonly TopicPublish[]): Promise<number[]> {
    if (this.closed) return Promise.reject(this.closedError());
    const invalid = checkPublish(messages);
    if (invalid) return Promise.reject(invalid);
    if (messages.length === 0) return Promise.resolve([]);
    const promise = new Promise<number[]>((resolve, reject) => {
      this.queue.push({ kind: "publish", messages, resolve, reject, conflict: undefined, offsets: [] });
    });
    this.scheduleFlush();
    return promise;
  }

  private scheduleFlush(): void {
    if (this.queue.length >= this.maxBatchSize) this.flush();
    else this.timer ??= setImmediate(this.flushSoon);
  }

  private readonly flushSoon = (): void => {
    this.timer = undefined;
    this.flush();
  };

  private flush(): void {
    if (this.timer !== undefined) {
      clearImmediate(this.timer);
      this.timer = undefined;
    }
    const batch = this.queue;
    if (batch.length === 0) return;
    this.queue = [];
    let writes: number;
    const startNs = process.hrtime.bigint();
    try {
      writes = this.commitBatch(batch);
    } catch (cause) {
      // The transaction rolled back: nothing of this batch is stored, so every append failed.
      const error = new StoreUnavailableError(`could not commit ${batch.length} write(s) to ${this.path}: ${errorMessage(cause)}`, {
        cause,
      });
      for (const pending of batch) pending.reject(error);
      return;
    }
    if (writes > 0) {
      this.batches++;
      this.writes += writes;
      this.commits.notify(writes, secondsSince(startNs));
    }
    for (const pending of batch) {
      if (pending.conflict) pending.reject(pending.conflict);
      else if (pending.kind === "append") pending.resolve();
      else if (pending.kind === "publish") pending.resolve(pending.offsets);
      else pending.resolve(pending.write.expectedVersion + 1);
    }
  }

  // Runs inside the transaction. A conflicting write changes nothing and is marked; the others
  // still commit. The head and version queries see this transaction's own writes, so earlier
  // writes of the same batch count towards an entity's head without any bookkeeping here.
  private writeBatch(batch: PendingWrite[]): number {
    const now = Date.now();
    let writes = 0;
    for (const pending of batch) {
      if (pending.kind === "publish") {
        pending.offsets = pending.messages.map((m) => {
          const offset = this.insertMessage.get(m.topic, m.id, m.source, m.type, m.subject, m.contentType, m.time, m.data);
          if (offset === undefined) return this.selectMessageOffset.get(m.topic, m.source, m.id)!;
          this.upsertTopicHead.run(m.topic, offset);
          return offset;
        });
        writes++;
        continue;
      }
      if (pending.kind === "value") {
        const { persistenceId, entityId, expectedVersion, value } = pending.write;
        const version = pending.table.selectVersion.get(persistenceId, entityId) ?? 0;
        if (version !== expectedVersion) {
          pending.conflict = new VersionConflictError(persistenceId, entityId, expectedVersion, version);
          continue;
        }
        // A delete keeps a tombstone row with the bumped version.
        pending.table.upsert.run(persistenceId, entityId, version + 1, value?.typeUrl ?? null, value?.bytes ?? null, now);
        writes++;
        continue;
      }
      const { persistenceId, entityId, expectedSequence, events, snapshot } = pending.append;
      const head = this.selectHead.get(persistenceId, entityId) ?? 0;
      if (head !== expectedSequence) {
        pending.conflict = new SequenceConflictError(persistenceId, entityId, expectedSequence, head);
        continue;
      }
      let sequence = expectedSequence;
      for (const event of events) {
        this.insertEvent.run(persistenceId, entityId, ++sequence, event.typeUrl, event.bytes, now);
      }
      if (snapshot) this.upsertSnapshot.run(persistenceId, entityId, sequence, snapshot.typeUrl, snapshot.bytes, now);
      writes++;
    }
    return writes;
  }

  // Reads run synchronously against the committed state: every acknowledged append is in it.
  private async recover(persistenceId: string, entityId: string): Promise<RecoveredJournal> {
    this.checkOpen();
    try {
      // Snapshot first: the journal only grows, so events read after it always continue it.
      const snapshot = this.selectSnapshot.get(persistenceId, entityId);
      const events = this.selectEvents.all(persistenceId, entityId, snapshot ? snapshot.sequence + 1 : 1);
      const sequence = events.length > 0 ? events[events.length - 1]!.sequence : (snapshot?.sequence ?? 0);
      return { snapshot, events, sequence };
    } catch (cause) {
      throw this.readError(cause);
    }
  }

  private async events(persistenceId: string, entityId: string, fromSequence = 1): Promise<StoredEvent[]> {
    this.checkOpen();
    try {
      return this.selectEvents.all(persistenceId, entityId, fromSequence);
    } catch (cause) {
      throw this.readError(cause);
    }
  }

  private async entityIds(persistenceId: string): Promise<string[]> {
    this.checkOpen();
    try {
      return this.selectEntityIds.all(persistenceId);
    } catch (cause) {
      throw this.readError(cause);
    }
  }

  private keyValueStore(table: ValueTable): KeyValueStore {
    return {
      get: async (persistenceId, entityId): Promise<VersionedValue> => {
        this.checkOpen();
        let row;
        try {
          row = table.selectValue.get(persistenceId, entityId);
        } catch (cause) {
          throw this.readError(cause);
        }
        if (row === undefined) return { version: 0, value: undefined };
        const value = row.typeUrl === null || row.bytes === null ? undefined : { typeUrl: row.typeUrl, bytes: row.bytes };
        return { version: row.version, value };
      },
      write: (write) => this.writeValue(table, write),
      entityIds: async (persistenceId) => {
        this.checkOpen();
        try {
          return table.selectEntityIds.all(persistenceId);
        } catch (cause) {
          throw this.readError(cause);
        }
      },
    };
  }

  private topicLog(): TopicLog {
    const selectMessages = this.db.prepare<[string, number, number], TopicMessage>(
      'SELECT "offset" AS offset, topic, id, source, type, subject, content_type AS contentType, time, data' +
        ' FROM topic_messages WHERE topic = ? AND "offset" > ? ORDER BY "offset" LIMIT ?',
    );
    const deleteBefore = this.db.prepare<[number]>("DELETE FROM topic_messages WHERE time < ?");
    const selectTopics = this.db.prepare<[], TopicInfo>(
      "SELECT t.topic, (SELECT count(*) FROM topic_messages AS m WHERE m.topic = t.topic) AS messages, t.head" +
        " FROM topics AS t ORDER BY t.topic",
    );
    return {
      publish: (messages) => this.publish(messages),
      read: async (topic, afterOffset, limit) => {
        this.checkOpen();
        const invalid = checkTopicRead(topic, afterOffset, limit);
        if (invalid) throw invalid;
        return this.read(() => selectMessages.all(topic, afterOffset, limit));
      },
      trim: async (before) => {
        this.checkOpen();
        const invalid = checkInteger("topic trim", "before", before, Number.MIN_SAFE_INTEGER);
        if (invalid) throw invalid;
        return this.write(() => deleteBefore.run(before).changes);
      },
      topics: async () => {
        this.checkOpen();
        return this.read(() => selectTopics.all());
      },
    };
  }

  private consumerOffsets(): ConsumerOffsets {
    const selectOffset = this.db
      .prepare<[string, string], number>('SELECT "offset" FROM consumer_offsets WHERE consumer_group = ? AND source = ?')
      .pluck();
    // Taken when there is no row, when nobody holds it, when it is the owner's or when it expired.
    const claim = this.db.prepare<[string, string, string, number, number]>(
      "INSERT INTO consumer_offsets AS c (consumer_group, source, owner, lease_expires) VALUES (?, ?, ?, ?)" +
        " ON CONFLICT (consumer_group, source) DO UPDATE SET owner = excluded.owner, lease_expires = excluded.lease_expires" +
        " WHERE c.owner IS NULL OR c.owner = excluded.owner OR c.lease_expires <= ?",
    );
    const release = this.db.prepare<[string, string, string]>(
      "UPDATE consumer_offsets SET owner = NULL, lease_expires = NULL WHERE consumer_group = ? AND source = ? AND owner = ?",
    );
    // The owner column still naming `owner` is what holding the lease means for a commit: an
    // expired lease that nobody took over is still the owner's.
    const commit = this.db.prepare<[number, string, string, string]>(
      'UPDATE consumer_offsets SET "offset" = max("offset", ?) WHERE consumer_group = ? AND source = ? AND owner = ?',
    );
    const list = this.db.prepare<[number], { group: string; source: string; offset: number; owner: string | null }>(
      'SELECT consumer_group AS "group", source, "offset" AS offset, CASE WHEN lease_expires > ? THEN owner END AS owner' +
        " FROM consumer_offsets ORDER BY consumer_group, source",
    );
    const check = (invalid: RangeError | undefined) => {
      this.checkOpen();
      if (invalid) throw invalid;
    };
    return {
      get: async (group, source) => {
        check(checkConsumerCall("get", group, source));
        return this.read(() => selectOffset.get(group, source) ?? 0);
      },
      claim: async (group, source, owner, ttlMs) => {
        check(checkConsumerCall("claim", group, source, owner, { name: "ttlMs", value: ttlMs }));
        const now = Date.now();
        return this.write(() => claim.run(group, source, owner, now + ttlMs, now).changes === 1);
      },
      release: async (group, source, owner) => {
        check(checkConsumerCall("release", group, source, owner));
        this.write(() => release.run(group, source, owner));
      },
      commit: async (group, source, owner, offset) => {
        check(checkConsumerCall("commit", group, source, owner, { name: "offset", value: offset }));
        return this.write(() => commit.run(offset, group, source, owner).changes === 1);
      },
      list: async () => {
        this.checkOpen();
        const rows = this.read(() => list.all(Date.now()));
        return rows.map((row): ConsumerPosition => ({ ...row, owner: row.owner ?? undefined }));
      },
    };
  }

  private deadLetterStore(): DeadLetters {
    const insert = this.db.prepare<[string, string, number, string, string, string, string, Uint8Array, number, string, number]>(
      'INSERT INTO dead_letters (consumer_group, source, "offset", message_id, type, subject, content_type, data, attempts, error, time)' +
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    );
    const select = this.db.prepare<[number], DeadLetter>(
      'SELECT id, consumer_group AS "group", source, "offset" AS offset, message_id AS messageId, type, subject,' +
        " content_type AS contentType, data, attempts, error, time FROM dead_letters ORDER BY id DESC LIMIT ?",
    );
    const count = this.db.prepare<[], number>("SELECT count(*) FROM dead_letters").pluck();
    const remove = this.db.prepare<[number]>("DELETE FROM dead_letters WHERE id = ?");
    return {
      add: async (letter) => {
        this.checkOpen();
        const invalid = checkDeadLetter(letter);
        if (invalid) throw invalid;
        const { group, source, offset, messageId, type, subject, contentType, data, attempts, error, time } = letter;
        return this.write(() =>
          Number(insert.run(group, source, offset, messageId, type, subject, contentType, data, attempts, error, time).lastInsertRowid),
        );
      },
      list: async (limit) => {
        this.checkOpen();
        const invalid = checkInteger("dead letter list", "limit", limit, 0);
        if (invalid) throw invalid;
        return this.read(() => select.all(limit));
      },
      count: async () => {
        this.checkOpen();
        return this.read(() => count.get()!);
      },
      remove: async (id) => {
        this.checkOpen();
        const invalid = checkInteger("dead letter remove", "id", id, 0);
        if (invalid) throw invalid;
        return this.write(() => remove.run(id).changes === 1);
      },
    };
  }

  private read<T>(fn: () => T): T {
    try {
      return fn();
    } catch (cause) {
      throw this.readError(cause);
    }
  }

  // A write outside the group commit: one statement, its own transaction, durable once it returns.
  private write<T>(fn: () => T): T {
    try {
      return fn();
    } catch (cause) {
      throw new StoreUnavailableError(`could not write to ${this.path}: ${errorMessage(cause)}`, { cause });
    }
  }

  private prepareValueTable(name: "value_state" | "crdt_state"): ValueTable {
    return {
      selectVersion: this.db
        .prepare<[string, string], number>(`SELECT version FROM ${name} WHERE persistence_id = ? AND entity_id = ?`)
        .pluck(),
      selectValue: this.db.prepare(
        `SELECT version, type_url AS typeUrl, payload AS bytes FROM ${name} WHERE persistence_id = ? AND entity_id = ?`,
      ),
      selectEntityIds: this.db
        .prepare<[string], string>(
          `SELECT entity_id FROM ${name} WHERE persistence_id = ? AND payload IS NOT NULL ORDER BY entity_id`,
        )
        .pluck(),
      upsert: this.db.prepare(
        `INSERT INTO ${name} (persistence_id, entity_id, version, type_url, payload, written_at) VALUES (?, ?, ?, ?, ?, ?)` +
          " ON CONFLICT (persistence_id, entity_id) DO UPDATE SET" +
          " version = excluded.version, type_url = excluded.type_url, payload = excluded.payload, written_at = excluded.written_at",
      ),
    };
  }

  private checkOpen(): void {
    if (this.closed) throw this.closedError();
  }

  private closedError(): StoreUnavailableError {
    return new StoreUnavailableError(`the SQLite store ${this.path} is closed`);
  }

  private readError(cause: unknown): StoreUnavailableError {
    return new StoreUnavailableError(`could not read from ${this.path}: ${errorMessage(cause)}`, { cause });
  }
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
