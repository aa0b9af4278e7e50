// The store contract: what the proxy needs from durable storage, independent of gRPC and of the
// backend. Implemented by memory/, sqlite/ (the default) and postgres/; one contract test suite
// (contract.ts) runs against every implementation.

/**
 * fsync (the default): a write resolves once it is on disk, so an acknowledged write survives power
 * loss. relaxed: once the database has it (SQLite: in the OS; PostgreSQL: in the server), so it
 * survives a crash of the proxy but an OS or server crash may lose the latest writes.
 */
export type Durability = "fsync" | "relaxed";

/** A protobuf message as stored: its type URL and its serialized bytes, never decoded by the store. */
export interface StoredPayload {
  readonly typeUrl: string;
  readonly bytes: Uint8Array;
}

export interface StoredEvent extends StoredPayload {
  /** 1-based, contiguous per entity. */
  readonly sequence: number;
}

export interface StoredSnapshot extends StoredPayload {
  /** The sequence number of the last event the snapshot includes. */
  readonly sequence: number;
}

/** What an event-sourced entity needs to recover: the latest snapshot and every event after it. */
export interface RecoveredJournal {
  readonly snapshot: StoredSnapshot | undefined;
  /** Events with sequence > snapshot.sequence (or all events), in sequence order. */
  readonly events: StoredEvent[];
  /** The highest sequence number written for the entity (0 when none). */
  readonly sequence: number;
}

/**
 * One atomic write to one entity's journal. A store may read the bytes until the append settles
 * (SQL stores pass them to the database untouched), so callers must not mutate them before then.
 */
export interface JournalAppend {
  readonly persistenceId: string;
  readonly entityId: string;
  /** The entity's current highest sequence; the events get expectedSequence+1, +2, … */
  readonly expectedSequence: number;
  /**
   * At least one event: an append without events is rejected with a RangeError, because a command
   * that emitted nothing has nothing to write, and a snapshot must sit at an event's sequence.
   */
  readonly events: readonly StoredPayload[];
  /** Saved at the sequence of the last event of this append, atomically with the events. */
  readonly snapshot?: StoredPayload | undefined;
}

export interface Journal {
  /**
   * Sees every append that was acknowledged before the call; appends still in flight may or may
   * not be visible. The journal keeps every event: a snapshot only shortens recovery.
   */
  recover(persistenceId: string, entityId: string): Promise<RecoveredJournal>;
  /**
   * Appends all events (and the snapshot) or nothing. Resolves only once durable with the store's
   * configured durability. Rejects with SequenceConflictError when the journal's highest sequence
   * is not `expectedSequence` (another writer got there first), changing nothing; with RangeError
   * when the append is malformed (no events, expectedSequence not a non-negative integer).
   * Appends issued back to back for one entity (expectedSequence n, then n+k) may both succeed
   * without awaiting the first: the store applies them in call order.
   */
  append(append: JournalAppend): Promise<void>;
  /**
   * Events with sequence >= fromSequence (default 1), in order, including those a snapshot covers
   * (for tools, the console and eventing).
   */
  events(persistenceId: string, entityId: string, fromSequence?: number): Promise<StoredEvent[]>;
  /** The entity ids that have a journal, sorted by code point, for tools and the console. */
  entityIds(persistenceId: string): Promise<string[]>;
}

/** The latest state of one keyed entity, with the version that guards single-writer updates. */
export interface VersionedValue {
  /** 0 when the entity was never written. Deleting does not reset it (a tombstone keeps it). */
  readonly version: number;
  /** undefined when there is no state (never written, or deleted). */
  readonly value: StoredPayload | undefined;
}

export interface ValueWrite {
  readonly persistenceId: string;
  readonly entityId: string;
  /** The version the writer last read; the write gets expectedVersion + 1. */
  readonly expectedVersion: number;
  /** The new state, or undefined to delete it. */
  readonly value: StoredPayload | undefined;
}

/**
 * Latest-state storage, used for value entities (store.values) and for the durable state of CRDT
 * entities (store.crdts, the proxy's serialized CRDT with its replica bookkeeping). Writes are
 * group-committed like journal appends, and atomic per write.
 */
export interface KeyValueStore {
  get(persistenceId: string, entityId: string): Promise<VersionedValue>;
  /**
   * Upserts (or deletes) and resolves with the new version once durable. Rejects with
   * VersionConflictError when the stored version is not `expectedVersion`, changing nothing.
   */
  write(write: ValueWrite): Promise<number>;
  /** The entity ids that have a (non-deleted) value, sorted by code point. */
  entityIds(persistenceId: string): Promise<string[]>;
}

export interface StoreStats {
  /**
   * Committed batches (transactions) and the writes (successful journal appends and value writes)
   * they carried: writes/batches is the mean batch size. Rejected writes count in neither.
   */
  readonly batches: number;
  readonly writes: number;
}

/** One committed batch (transaction), as a commit listener sees it. */
export interface CommittedBatch {
  /** The writes it carried (successful journal appends and value writes), at least 1. */
  readonly writes: number;
  /**
   * How long the transaction took, from its start to its commit (durable with the store's
   * durability), not counting the time its writes waited in the queue. 0 for the memory store.
   */
  readonly seconds: number;
}

/** Called once per committed batch, synchronously, before the batch's writes resolve. */
export type CommitListener = (batch: CommittedBatch) => void;

export interface Store {
  /** A short description for logs, e.g. "sqlite:/path/to/db" or "memory". */
  readonly description: string;
  readonly journal: Journal;
  readonly values: KeyValueStore;
  readonly crdts: KeyValueStore;
  stats(): StoreStats;
  /**
   * Observes committed batches (for batch-size and commit-latency metrics): the listener sees
   * exactly the batches and writes that stats() counts, one call per batch (never per write).
   * Batches that rolled back, or whose writes were all rejected, are not reported. A listener that
   * throws is ignored and does not affect the writes. Returns a function that removes the listener.
   */
  onCommit(listener: CommitListener): () => void;
  /**
   * Flushes pending writes and releases resources; later calls reject with StoreUnavailableError
   * (except close() itself, which resolves again).
   */
  close(): Promise<void>;
}

/** The journal already has events past the expected sequence: another writer appended first. */
export class SequenceConflictError extends Error {
  constructor(
    readonly persistenceId: string,
    readonly entityId: string,
    readonly expectedSequence: number,
    readonly actualSequence: number,
  ) {
    super(
      `journal conflict for ${persistenceId}/${entityId}: expected sequence ${expectedSequence}, found ${actualSequence}`,
    );
    this.name = "SequenceConflictError";
  }
}

/** The stored value has another version than the writer expected: another writer got there first. */
export class VersionConflictError extends Error {
  constructor(
    readonly persistenceId: string,
    readonly entityId: string,
    readonly expectedVersion: number,
    readonly actualVersion: number,
  ) {
    super(`value conflict for ${persistenceId}/${entityId}: expected version ${expectedVersion}, found ${actualVersion}`);
    this.name = "VersionConflictError";
  }
}

/** The store is closed or unreachable; the caller may retry later. */
export class StoreUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "StoreUnavailableError";
  }
}

/**
 * The listeners of one store, for its implementation: notify() costs nothing without listeners
 * and isolates the store from a listener that throws.
 */
export class CommitListeners {
  private listeners: readonly CommitListener[] = [];

  add(listener: CommitListener): () => void {
    this.listeners = [...this.listeners, listener];
    return () => {
      this.listeners = this.listeners.filter((l) => l !== listener);
    };
  }

  notify(writes: number, seconds: number): void {
    const listeners = this.listeners;
    if (listeners.length === 0) return;
    const batch: CommittedBatch = { writes, seconds };
    for (const listener of listeners) {
      try {
        listener(batch);
      } catch {
        // An observer must not fail (or half-settle) the batch it observes.
      }
    }
  }
}

/** Seconds since `startNs`, a `process.hrtime.bigint()` reading. */
export function secondsSince(startNs: bigint): number {
  return Number(process.hrtime.bigint() - startNs) / 1e9;
}

/**
 * The append rules every store applies before touching its data, so that a malformed append is
 * rejected the same way everywhere. Returns the error to reject with, or undefined.
 */
export function checkAppend(append: JournalAppend): RangeError | undefined {
  const badText = checkText(append.persistenceId, append.entityId, [
    append.snapshot?.typeUrl,
    ...append.events.map((e) => e.typeUrl),
  ]);
  if (badText) return new RangeError(`journal append for ${printable(append)}: ${badText}`);
  if (!Number.isSafeInteger(append.expectedSequence) || append.expectedSequence < 0) {
    return new RangeError(
      `journal append for ${append.persistenceId}/${append.entityId}: expectedSequence must be a non-negative integer, got ${append.expectedSequence}`,
    );
  }
  if (append.events.length === 0) {
    return new RangeError(
      `journal append for ${append.persistenceId}/${append.entityId}: an append needs at least one event` +
        (append.snapshot ? " (a snapshot is saved at the sequence of the append's last event)" : ""),
    );
  }
  return undefined;
}

/** The value-write rules every store applies before touching its data (see checkAppend). */
export function checkValueWrite(write: ValueWrite): RangeError | undefined {
  const badText = checkText(write.persistenceId, write.entityId, [write.value?.typeUrl]);
  if (badText) return new RangeError(`value write for ${printable(write)}: ${badText}`);
  if (!Number.isSafeInteger(write.expectedVersion) || write.expectedVersion < 0) {
    return new RangeError(
      `value write for ${write.persistenceId}/${write.entityId}: expectedVersion must be a non-negative integer, got ${write.expectedVersion}`,
    );
  }
  return undefined;
}

// PostgreSQL text cannot hold U+0000, so no store accepts it: a key that one store takes and
// another refuses would make the stores disagree, and in a SQL batch one bad row fails the rest.
function checkText(persistenceId: string, entityId: string, typeUrls: readonly (string | undefined)[]): string | undefined {
  if (persistenceId.includes("\0")) return "the persistence id contains a NUL character";
  if (entityId.includes("\0")) return "the entity id contains a NUL character";
  if (typeUrls.some((t) => t?.includes("\0"))) return "a type URL contains a NUL character";
  return undefined;
}

function printable(key: { persistenceId: string; entityId: string }): string {
  return JSON.stringify(`${key.persistenceId}/${key.entityId}`).replaceAll("\\u0000", "\\0");
}
