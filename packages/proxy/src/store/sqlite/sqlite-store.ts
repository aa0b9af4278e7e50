// The embedded store, and the default: one SQLite file in WAL mode.
//
// Group commit (invariant 3): append() and the value stores' write() only queue their write; a
// flush, scheduled with setImmediate or forced by a full queue, commits every queued write (journal
// appends and value/CRDT state alike) in ONE transaction, so concurrent commands from many entities
// share one fsync. better-sqlite3 is synchronous, so a flush runs to completion before any other
// JavaScript: a resolved write is always committed, and reads never observe a half-applied batch.
import { mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import Database from "better-sqlite3";
import {
  checkAppend,
  checkValueWrite,
  CommitListeners,
  secondsSince,
  SequenceConflictError,
  StoreUnavailableError,
  VersionConflictError,
  type CommitListener,
  type Durability,
  type Journal,
  type JournalAppend,
  type KeyValueStore,
  type RecoveredJournal,
  type Store,
  type StoreStats,
  type StoredEvent,
  type StoredSnapshot,
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
  /** The most writes (appends and value writes) one transaction carries; a queue this long is flushed at once. */
  maxBatchSize?: number;
}

/** What the connection actually runs with, read back from SQLite (for diagnostics and tests). */
export interface SqliteSettings {
  readonly journalMode: string;
  readonly synchronous: "OFF" | "NORMAL" | "FULL" | "EXTRA";
  readonly schemaVersion: number;
}

type PendingWrite = PendingAppend | PendingValueWrite;

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
    };
    this.values = this.keyValueStore(this.valueTables.values);
    this.crdts = this.keyValueStore(this.valueTables.crdts);
  }

  stats(): StoreStats {
    return { batches: this.batches, writes: this.writes };
  }

  onCommit(listener: CommitListener): () => void {
    return this.commits.add(listener);
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
