// The in-process store: for tests, the testkit and `--store memory` runs. It applies exactly the
// rules of the SQL stores (expected sequence, atomic append, snapshot replacement, value versions
// with tombstones) so code tested against it behaves the same on SQLite and PostgreSQL.
import {
  checkAppend,
  checkValueWrite,
  CommitListeners,
  SequenceConflictError,
  StoreUnavailableError,
  VersionConflictError,
  type Journal,
  type CommitListener,
  type JournalAppend,
  type KeyValueStore,
  type RecoveredJournal,
  type Store,
  type StoreStats,
  type StoredEvent,
  type StoredPayload,
  type StoredSnapshot,
  type ValueWrite,
  type VersionedValue,
} from "../store.js";

interface EntityJournal {
  readonly events: StoredEvent[];
  snapshot: StoredSnapshot | undefined;
}

export class MemoryStore implements Store {
  readonly description = "memory";
  readonly journal: Journal;
  readonly values: KeyValueStore;
  readonly crdts: KeyValueStore;
  // persistence id → entity id → journal; stored bytes are private copies.
  private readonly journals = new Map<string, Map<string, EntityJournal>>();
  private writes = 0;
  private closed = false;
  private readonly commits = new CommitListeners();

  constructor() {
    this.journal = {
      recover: (persistenceId, entityId) => this.recover(persistenceId, entityId),
      append: (append) => this.append(append),
      events: (persistenceId, entityId, fromSequence) => this.events(persistenceId, entityId, fromSequence),
      entityIds: (persistenceId) => this.entityIds(persistenceId),
    };
    this.values = this.keyValueStore(new Map());
    this.crdts = this.keyValueStore(new Map());
  }

  stats(): StoreStats {
    // Every append and value write is its own "transaction" here.
    return { batches: this.writes, writes: this.writes };
  }

  onCommit(listener: CommitListener): () => void {
    return this.commits.add(listener);
  }

  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }

  private async recover(persistenceId: string, entityId: string): Promise<RecoveredJournal> {
    this.checkOpen();
    const journal = this.journals.get(persistenceId)?.get(entityId);
    if (journal === undefined) return { snapshot: undefined, events: [], sequence: 0 };
    const snapshot = journal.snapshot;
    return {
      snapshot: snapshot && { sequence: snapshot.sequence, typeUrl: snapshot.typeUrl, bytes: snapshot.bytes.slice() },
      events: copyEvents(journal.events, snapshot ? snapshot.sequence + 1 : 1),
      sequence: journal.events.length,
    };
  }

  private async append(append: JournalAppend): Promise<void> {
    this.checkOpen();
    const invalid = checkAppend(append);
    if (invalid) throw invalid;
    const { persistenceId, entityId, expectedSequence } = append;
    let entities = this.journals.get(persistenceId);
    const journal = entities?.get(entityId);
    const actual = journal?.events.length ?? 0;
    if (actual !== expectedSequence) {
      throw new SequenceConflictError(persistenceId, entityId, expectedSequence, actual);
    }
    // Everything is checked above: from here on the append cannot fail half-way.
    const events = journal?.events ?? [];
    let sequence = expectedSequence;
    for (const event of append.events) {
      events.push({ sequence: ++sequence, typeUrl: event.typeUrl, bytes: event.bytes.slice() });
    }
    const snapshot = append.snapshot && { sequence, typeUrl: append.snapshot.typeUrl, bytes: append.snapshot.bytes.slice() };
    if (journal) {
      if (snapshot) journal.snapshot = snapshot;
    } else {
      if (!entities) this.journals.set(persistenceId, (entities = new Map()));
      entities.set(entityId, { events, snapshot });
    }
    this.committed();
  }

  private async events(persistenceId: string, entityId: string, fromSequence = 1): Promise<StoredEvent[]> {
    this.checkOpen();
    const journal = this.journals.get(persistenceId)?.get(entityId);
    return journal ? copyEvents(journal.events, fromSequence) : [];
  }

  private async entityIds(persistenceId: string): Promise<string[]> {
    this.checkOpen();
    return sortByCodePoint([...(this.journals.get(persistenceId)?.keys() ?? [])]);
  }

  // persistence id → entity id → latest value; one table per namespace.
  private keyValueStore(table: Map<string, Map<string, VersionedValue>>): KeyValueStore {
    return {
      get: async (persistenceId, entityId) => {
        this.checkOpen();
        const stored = table.get(persistenceId)?.get(entityId);
        return stored ? { version: stored.version, value: copyPayload(stored.value) } : { version: 0, value: undefined };
      },
      write: async (write: ValueWrite) => {
        this.checkOpen();
        const invalid = checkValueWrite(write);
        if (invalid) throw invalid;
        const { persistenceId, entityId, expectedVersion } = write;
        let entities = table.get(persistenceId);
        const actual = entities?.get(entityId)?.version ?? 0;
        if (actual !== expectedVersion) {
          throw new VersionConflictError(persistenceId, entityId, expectedVersion, actual);
        }
        // A delete keeps the entry as a tombstone, so the version never goes back to 0.
        if (!entities) table.set(persistenceId, (entities = new Map()));
        entities.set(entityId, { version: expectedVersion + 1, value: copyPayload(write.value) });
        this.committed();
        return expectedVersion + 1;
      },
      entityIds: async (persistenceId) => {
        this.checkOpen();
        const ids: string[] = [];
        for (const [id, stored] of table.get(persistenceId) ?? []) if (stored.value !== undefined) ids.push(id);
        return sortByCodePoint(ids);
      },
    };
  }

  // A write is applied synchronously and alone: a batch of one, with nothing to wait for.
  private committed(): void {
    this.writes++;
    this.commits.notify(1, 0);
  }

  private checkOpen(): void {
    if (this.closed) throw new StoreUnavailableError("the memory store is closed");
  }
}

// Sequences are contiguous from 1, so event n sits at index n-1.
function copyEvents(events: readonly StoredEvent[], fromSequence: number): StoredEvent[] {
  const from = Math.max(0, Math.floor(fromSequence) - 1);
  const copies: StoredEvent[] = [];
  for (let i = from; i < events.length; i++) {
    const event = events[i]!;
    copies.push({ sequence: event.sequence, typeUrl: event.typeUrl, bytes: event.bytes.slice() });
  }
  return copies;
}

function copyPayload(payload: StoredPayload | undefined): StoredPayload | undefined {
  return payload && { typeUrl: payload.typeUrl, bytes: payload.bytes.slice() };
}

// Code point order, which is what SQLite's BINARY collation and PostgreSQL's "C" give on UTF-8 text.
function sortByCodePoint(ids: string[]): string[] {
  return ids.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
}
