// The store contract: what the proxy needs from durable storage, independent of gRPC and of the
// backend. Implemented by memory/, sqlite/ (the default) and, later, postgres/; one contract test
// suite (contract.ts) runs against every implementation.

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

export interface StoreStats {
  /**
   * Committed batches (transactions) and the writes (successful appends) they carried:
   * writes/batches is the mean batch size. Rejected appends count in neither.
   */
  readonly batches: number;
  readonly writes: number;
}

export interface Store {
  /** A short description for logs, e.g. "sqlite:/path/to/db" or "memory". */
  readonly description: string;
  readonly journal: Journal;
  stats(): StoreStats;
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

/** The store is closed or unreachable; the caller may retry later. */
export class StoreUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "StoreUnavailableError";
  }
}

/**
 * The append rules every store applies before touching its data, so that a malformed append is
 * rejected the same way everywhere. Returns the error to reject with, or undefined.
 */
export function checkAppend(append: JournalAppend): RangeError | undefined {
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
