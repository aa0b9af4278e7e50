// The in-process store: for tests, the testkit and `--store memory` runs. It applies exactly the
// rules of the SQL stores (expected sequence, atomic append, snapshot replacement) so code tested
// against it behaves the same on SQLite.
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

interface EntityJournal {
  readonly events: StoredEvent[];
  snapshot: StoredSnapshot | undefined;
}

export class MemoryStore implements Store {
  readonly description = "memory";
  readonly journal: Journal;
  // persistence id → entity id → journal; stored bytes are private copies.
  private readonly journals = new Map<string, Map<string, EntityJournal>>();
  private writes = 0;
  private closed = false;

  constructor() {
    this.journal = {
      recover: (persistenceId, entityId) => this.recover(persistenceId, entityId),
      append: (append) => this.append(append),
      events: (persistenceId, entityId, fromSequence) => this.events(persistenceId, entityId, fromSequence),
      entityIds: (persistenceId) => this.entityIds(persistenceId),
    };
  }

  stats(): StoreStats {
    // Every append is its own "transaction" here.
    return { batches: this.writes, writes: this.writes };
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
    this.writes++;
  }

  private async events(persistenceId: string, entityId: string, fromSequence = 1): Promise<StoredEvent[]> {
    this.checkOpen();
    const journal = this.journals.get(persistenceId)?.get(entityId);
    return journal ? copyEvents(journal.events, fromSequence) : [];
  }

  private async entityIds(persistenceId: string): Promise<string[]> {
    this.checkOpen();
    const ids = [...(this.journals.get(persistenceId)?.keys() ?? [])];
    // Code point order, which is what SQLite's BINARY collation gives on UTF-8 text.
    return ids.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
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
