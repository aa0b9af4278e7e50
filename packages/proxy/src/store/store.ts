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
  /**
   * The event log of a persistence id (PROTOCOL.md §8): the events of all its entities with
   * offset > afterOffset, in offset order, at most `limit` of them. Offsets follow commit order: an
   * event committed later never gets a smaller offset than one a reader has already seen, so a
   * consumer that remembers the last offset it processed misses nothing. Offsets are positive and
   * never reused, but need not be contiguous (they may be shared with other persistence ids).
   * Rejects with RangeError when afterOffset or limit is not a non-negative integer.
   */
  eventLog(persistenceId: string, afterOffset: number, limit: number): Promise<EventLogEntry[]>;
  /** The highest offset of the persistence id's event log, 0 when it is empty (for consumer lag). */
  eventLogHead(persistenceId: string): Promise<number>;
}

/** One event of an event log: which entity wrote it, where it sits in the log, when it was committed. */
export interface EventLogEntry extends StoredEvent {
  readonly entityId: string;
  readonly offset: number;
  /** Commit time, milliseconds since the epoch (the ce-time of its CloudEvent). */
  readonly timestamp: number;
}

/** A message to append to a topic: a CloudEvent (PROTOCOL.md §8) whose data is opaque bytes. */
export interface TopicPublish {
  readonly topic: string;
  /** ce-id. With `source`, it identifies the message: publishing the same (topic, source, id) again
   * stores nothing and returns the offset of the message already stored (idempotent publish). */
  readonly id: string;
  /** ce-source */
  readonly source: string;
  /** ce-type: for protobuf data, the message's full name. */
  readonly type: string;
  /** ce-subject, "" when none. */
  readonly subject: string;
  /** The data's media type, e.g. application/protobuf, application/json, text/plain. */
  readonly contentType: string;
  /** ce-time, milliseconds since the epoch. */
  readonly time: number;
  readonly data: Uint8Array;
}

export interface TopicMessage extends TopicPublish {
  /** Position in the topic: positive, increasing in commit order, never reused. */
  readonly offset: number;
}

export interface TopicInfo {
  readonly topic: string;
  /** Messages currently kept (after retention). */
  readonly messages: number;
  /** The highest offset ever given in the topic (0 when none). */
  readonly head: number;
}

/**
 * Topics as durable logs in the store (the default broker). Publishes are group-committed like
 * journal appends.
 */
export interface TopicLog {
  /**
   * Appends the messages atomically, in order; resolves with each one's offset once durable. A
   * message whose (topic, source, id) is already stored is not stored again: its offset is the
   * stored one's (also for a repeat within the same call: it gets the first one's offset). Once
   * trimmed, a message is no longer stored, so publishing it again appends it anew. Publishes
   * issued back to back, without awaiting, apply in call order. A publish counts as one write in
   * stats() and onCommit, however many messages it carries; an empty list resolves with [] and
   * writes nothing. Rejects with RangeError, storing none of the messages, when one is malformed
   * (an empty topic name, a NUL character in a string, a time that is not an integer).
   */
  publish(messages: readonly TopicPublish[]): Promise<number[]>;
  /**
   * Messages with offset > afterOffset, in offset order, at most `limit` (RangeError when either
   * is not a non-negative integer).
   */
  read(topic: string, afterOffset: number, limit: number): Promise<TopicMessage[]>;
  /**
   * Deletes the topic messages whose time (ce-time) is before `before` (ms since the epoch), from
   * every topic; resolves with how many. Topic heads stay (offsets are never reused).
   */
  trim(before: number): Promise<number>;
  /** Every topic that has (or had) messages, sorted by name (code point order). */
  topics(): Promise<TopicInfo[]>;
}

/**
 * Where a consumer group is in a source (a topic or an event log), and who consumes it. Each call
 * is durable (with the store's durability) when it resolves; these writes are not group-committed
 * and count in neither stats() nor onCommit. Lease times use the database's clock (PostgreSQL's
 * now(); Date.now() for SQLite and memory). Names with a NUL character, and offsets or TTLs that
 * are not non-negative integers, are rejected with RangeError.
 */
export interface ConsumerOffsets {
  /** The committed offset of the group in the source; 0 when it never committed. */
  get(group: string, source: string): Promise<number>;
  /**
   * Takes or renews the lease on (group, source) for `owner` until now + ttlMs: true when `owner`
   * holds it now (it was free, expired or already its own). One consumer per (source, group),
   * even across proxies sharing a database.
   */
  claim(group: string, source: string, owner: string, ttlMs: number): Promise<boolean>;
  /** Gives the lease up (on shutdown) so that another proxy can take over at once. */
  release(group: string, source: string, owner: string): Promise<void>;
  /**
   * Stores `offset` as the group's position when `owner` still holds the lease; never moves it
   * back. A lease that expired but that nobody else took still counts as held. Resolves false
   * (changing nothing) when another owner holds the lease, or nobody does (never claimed, released).
   */
  commit(group: string, source: string, owner: string, offset: number): Promise<boolean>;
  /** Every (group, source) with its committed offset, for the console and metrics. */
  list(): Promise<ConsumerPosition[]>;
}

export interface ConsumerPosition {
  readonly group: string;
  readonly source: string;
  readonly offset: number;
  /** The current lease holder, undefined when none or expired. */
  readonly owner: string | undefined;
}

/** A message a consumer gave up on after its last attempt: kept so that it is not lost. */
export interface DeadLetterInput {
  readonly group: string;
  readonly source: string;
  /** The message's offset in its source. */
  readonly offset: number;
  /** ce-id, ce-type and ce-subject of the message. */
  readonly messageId: string;
  readonly type: string;
  readonly subject: string;
  readonly contentType: string;
  readonly data: Uint8Array;
  readonly attempts: number;
  /** The last failure. */
  readonly error: string;
  /** When the consumer gave up, ms since the epoch. */
  readonly time: number;
}

export interface DeadLetter extends DeadLetterInput {
  /** Positive, increasing, assigned by the store. */
  readonly id: number;
}

/**
 * Not group-committed, and not counted in stats(). Strings must not contain NUL characters (also
 * `error`: replace them), numbers must be integers, else the call rejects with RangeError.
 */
export interface DeadLetters {
  /** Resolves with the new record's id once durable. */
  add(letter: DeadLetterInput): Promise<number>;
  /** The newest first, at most `limit`. */
  list(limit: number): Promise<DeadLetter[]>;
  count(): Promise<number>;
  /** Deletes one record (after a person dealt with it); resolves false when there was none. */
  remove(id: number): Promise<boolean>;
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
   * Committed batches (transactions) and the writes (successful journal appends, value writes and
   * topic publishes, one per publish call) they carried: writes/batches is the mean batch size. Rejected writes count in neither.
   */
  readonly batches: number;
  readonly writes: number;
}

/** One committed batch (transaction), as a commit listener sees it. */
export interface CommittedBatch {
  /** The writes it carried (successful journal appends, value writes, topic publishes), at least 1. */
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
  readonly topics: TopicLog;
  readonly offsets: ConsumerOffsets;
  readonly deadLetters: DeadLetters;
  stats(): StoreStats;
  /**
   * Observes committed batches (for batch-size and commit-latency metrics): the listener sees
   * exactly the batches and writes that stats() counts, one call per batch (never per write).
   * Batches that rolled back, or whose writes were all rejected, are not reported. A listener that
   * throws is ignored and does not affect the writes. Returns a function that removes the listener.
   */
  onCommit(listener: CommitListener): () => void;
  /**
   * Calls the listener when another process may have committed journal rows or topic messages to
   * this store, so that readers of event logs and topics (eventing consumers) need not wait for
   * their next poll; onCommit covers this process's own writes. Best effort: it may over-notify
   * (also for this process's own writes, and once whenever it starts or resumes watching, since
   * writes may have been missed meanwhile) and may miss writes while the store cannot watch, so
   * readers keep polling. Never calls a listener that was removed, nor after close(). A listener
   * that throws is ignored. Memory and SQLite stores never call it (one process owns them); a
   * PostgreSQL store watches only while it has listeners. Returns a function that removes the
   * listener.
   */
  onExternalWrite(listener: () => void): () => void;
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

/** The event-log read rules every store applies (see checkAppend). */
export function checkEventLogRead(persistenceId: string, afterOffset: number, limit?: number): RangeError | undefined {
  const what = `event log read of ${quote(persistenceId)}`;
  return (
    checkStrings(what, { "persistence id": persistenceId }) ??
    checkInteger(what, "afterOffset", afterOffset, 0) ??
    (limit === undefined ? undefined : checkInteger(what, "limit", limit, 0))
  );
}

/** The topic-read rules every store applies (see checkAppend). */
export function checkTopicRead(topic: string, afterOffset: number, limit: number): RangeError | undefined {
  const what = `read of topic ${quote(topic)}`;
  return checkStrings(what, { topic }) ?? checkInteger(what, "afterOffset", afterOffset, 0) ?? checkInteger(what, "limit", limit, 0);
}

/**
 * The publish rules every store applies before touching its data: one bad message rejects the
 * whole call (a publish is atomic). A topic name must not be empty; time must be an integer.
 */
export function checkPublish(messages: readonly TopicPublish[]): RangeError | undefined {
  for (const [i, m] of messages.entries()) {
    const what = `publish of message ${i} (id ${quote(m.id)}) to topic ${quote(m.topic)}`;
    if (m.topic === "") return new RangeError(`${what}: the topic name is empty`);
    const invalid =
      checkStrings(what, { topic: m.topic, id: m.id, source: m.source, type: m.type, subject: m.subject, "content type": m.contentType }) ??
      checkInteger(what, "time", m.time, Number.MIN_SAFE_INTEGER);
    if (invalid) return invalid;
  }
  return undefined;
}

/** The consumer-offset rules every store applies: names without NUL, offsets and TTLs non-negative integers. */
export function checkConsumerCall(
  call: "get" | "claim" | "release" | "commit",
  group: string,
  source: string,
  owner?: string,
  number?: { readonly name: "ttlMs" | "offset"; readonly value: number },
): RangeError | undefined {
  const what = `consumer offset ${call} for group ${quote(group)} in ${quote(source)}`;
  return (
    checkStrings(what, { group, source, ...(owner === undefined ? {} : { owner }) }) ??
    (number === undefined ? undefined : checkInteger(what, number.name, number.value, 0))
  );
}

/** The dead-letter rules every store applies (NUL-free strings, integer numbers). */
export function checkDeadLetter(letter: DeadLetterInput): RangeError | undefined {
  const what = `dead letter of group ${quote(letter.group)} from ${quote(letter.source)}`;
  const { group, source, messageId, type, subject, contentType, error } = letter;
  return (
    checkStrings(what, { group, source, "message id": messageId, type, subject, "content type": contentType, error }) ??
    checkInteger(what, "offset", letter.offset, 0) ??
    checkInteger(what, "attempts", letter.attempts, 0) ??
    checkInteger(what, "time", letter.time, Number.MIN_SAFE_INTEGER)
  );
}

/** A RangeError unless `value` is a safe integer >= min (limits, offsets, ids, times). */
export function checkInteger(what: string, name: string, value: number, min: number): RangeError | undefined {
  if (Number.isSafeInteger(value) && value >= min) return undefined;
  const expected = min === 0 ? "a non-negative integer" : min === 1 ? "a positive integer" : "an integer";
  return new RangeError(`${what}: ${name} must be ${expected}, got ${String(value)}`);
}

function checkStrings(what: string, fields: Readonly<Record<string, string>>): RangeError | undefined {
  for (const [name, value] of Object.entries(fields)) {
    if (value.includes("\0")) return new RangeError(`${what}: the ${name} contains a NUL character`);
  }
  return undefined;
}

function quote(value: string): string {
  return JSON.stringify(value).replaceAll("\\u0000", "\\0");
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
