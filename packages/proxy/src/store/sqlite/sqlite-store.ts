// The embedded store, and the default: one SQLite file in WAL mode.
//
// Group commit (invariant 3): append() only queues its write; a flush, scheduled with setImmediate
// or forced by a full queue, commits every queued append in ONE transaction, so concurrent
// commands from many entities share one fsync. better-sqlite3 is synchronous, so a flush runs to
// completion before any other JavaScript: a resolved append is always committed, and reads never
// observe a half-applied batch.
import { mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import Database from "better-sqlite3";
import {
  checkAppend,
  SequenceConflictError,
  StoreUnavailableError,
  type Journal,
  type JournalAppend,
  type RecoveredJournal,
  type Store,
  type StoreStats,
  type StoredEvent,
  type StoredSnapshot,
} from "../store.js";
import { migrate, schemaVersion } from "./schema.js";

/**
 * fsync (default): synchronous=FULL, a commit is fsynced before the append resolves, so an
 * acknowledged write survives power loss. relaxed: synchronous=NORMAL, commits survive a crash or
 * kill -9 of the process, but an OS crash or power loss may lose the latest ones.
 */
export type Durability = "fsync" | "relaxed";

export interface SqliteStoreOptions {
  durability?: Durability;
  /** The most appends one transaction carries; a queue this long is flushed at once. */
  maxBatchSize?: number;
}

/** What the connection actually runs with, read back from SQLite (for diagnostics and tests). */
export interface SqliteSettings {
  readonly journalMode: string;
  readonly synchronous: "OFF" | "NORMAL" | "FULL" | "EXTRA";
  readonly schemaVersion: number;
}

interface PendingAppend {
  readonly append: JournalAppend;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
  conflict: SequenceConflictError | undefined;
}

const DEFAULT_MAX_BATCH_SIZE = 512;
const SYNCHRONOUS_NAMES = ["OFF", "NORMAL", "FULL", "EXTRA"] as const;

export class SqliteStore implements Store {
  readonly description: string;
  readonly path: string;
  readonly journal: Journal;

  private readonly db: Database.Database;
  private readonly maxBatchSize: number;
  private queue: PendingAppend[] = [];
  private timer: NodeJS.Immediate | undefined;
  private closed = false;
  private batches = 0;
  private writes = 0;

  private readonly selectHead: Database.Statement<[string, string], number | null>;
  private readonly selectSnapshot: Database.Statement<[string, string], StoredSnapshot>;
  private readonly selectEvents: Database.Statement<[string, string, number], StoredEvent>;
  private readonly selectEntityIds: Database.Statement<[string], string>;
  private readonly insertEvent: Database.Statement<[string, string, number, string, Uint8Array, number]>;
  private readonly upsertSnapshot: Database.Statement<[string, string, number, string, Uint8Array, number]>;
  private readonly commitBatch: (batch: PendingAppend[]) => number;

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
      // IMMEDIATE takes the write lock before the sequence checks, so another process writing the
      // same file cannot slip an append in between a check and its insert.
      this.commitBatch = this.db.transaction((batch: PendingAppend[]) => this.writeBatch(batch)).immediate;
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
  }

  stats(): StoreStats {
    return { batches: this.batches, writes: this.writes };
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
      this.queue.push({ append, resolve, reject, conflict: undefined });
    });
    if (this.queue.length >= this.maxBatchSize) this.flush();
    else this.timer ??= setImmediate(this.flushSoon);
    return promise;
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
    try {
      writes = this.commitBatch(batch);
    } catch (cause) {
      // The transaction rolled back: nothing of this batch is stored, so every append failed.
      const error = new StoreUnavailableError(
        `could not commit ${batch.length} journal append(s) to ${this.path}: ${errorMessage(cause)}`,
        { cause },
      );
      for (const pending of batch) pending.reject(error);
      return;
    }
    if (writes > 0) {
      this.batches++;
      this.writes += writes;
    }
    for (const pending of batch) {
      if (pending.conflict) pending.reject(pending.conflict);
      else pending.resolve();
    }
  }

  // Runs inside the transaction. A conflicting append writes nothing and is marked; the others
  // still commit. The head query sees this transaction's own inserts, so earlier appends of the
  // same batch count towards an entity's head without any bookkeeping here.
  private writeBatch(batch: PendingAppend[]): number {
    const now = Date.now();
    let writes = 0;
    for (const pending of batch) {
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
