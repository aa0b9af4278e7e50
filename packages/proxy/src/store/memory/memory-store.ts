// The in-process store: for tests, the testkit and `--store memory` runs. It applies exactly the
// rules of the SQL stores (expected sequence, atomic append, snapshot replacement, value versions
// with tombstones) so code tested against it behaves the same on SQLite and PostgreSQL.
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
  SequenceConflictError,
  StoreUnavailableError,
  VersionConflictError,
  type ConsumerOffsets,
  type ConsumerPosition,
  type DeadLetter,
  type DeadLetters,
  type EventLogEntry,
  type Journal,
  type CommitListener,
  type TopicInfo,
  type TopicLog,
  type TopicMessage,
  type TopicPublish,
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

interface Topic {
  /** In offset order; trimming removes from anywhere (by time), so not necessarily a prefix. */
  messages: TopicMessage[];
  /** The highest offset ever given, kept when its message is trimmed. */
  head: number;
  /** "source\0id" → offset, for the messages still kept. */
  readonly ids: Map<string, number>;
}

interface Lease {
  offset: number;
  owner: string | undefined;
  expires: number;
}

export class MemoryStore implements Store {
  readonly description = "memory";
  readonly journal: Journal;
  readonly values: KeyValueStore;
  readonly crdts: KeyValueStore;
  readonly topics: TopicLog;
  readonly offsets: ConsumerOffsets;
  readonly deadLetters: DeadLetters;
  // persistence id → entity id → journal; stored bytes are private copies.
  private readonly journals = new Map<string, Map<string, EntityJournal>>();
  // persistence id → its event log, in offset order (the events' bytes are shared with the journals).
  private readonly eventLogs = new Map<string, EventLogEntry[]>();
  // One counter for the event logs and one for the topics, like the SQL stores' sequences.
  private lastEventOffset = 0;
  private lastTopicOffset = 0;
  private readonly topicLogs = new Map<string, Topic>();
  // "group\0source" → position and lease.
  private readonly leases = new Map<string, Lease & { readonly group: string; readonly source: string }>();
  private readonly letters = new Map<number, DeadLetter>();
  private lastLetterId = 0;
  private writes = 0;
  private closed = false;
  private readonly commits = new CommitListeners();

  constructor() {
    this.journal = {
      recover: (persistenceId, entityId) => this.recover(persistenceId, entityId),
      append: (append) => this.append(append),
      events: (persistenceId, entityId, fromSequence) => this.events(persistenceId, entityId, fromSequence),
      entityIds: (persistenceId) => this.entityIds(persistenceId),
      eventLog: (persistenceId, afterOffset, limit) => this.eventLog(persistenceId, afterOffset, limit),
      eventLogHead: (persistenceId) => this.eventLogHead(persistenceId),
    };
    this.values = this.keyValueStore(new Map());
    this.crdts = this.keyValueStore(new Map());
    this.topics = {
      publish: (messages) => this.publish(messages),
      read: (topic, afterOffset, limit) => this.readTopic(topic, afterOffset, limit),
      trim: (before) => this.trim(before),
      topics: () => this.topicInfos(),
    };
    this.offsets = this.consumerOffsets();
    this.deadLetters = this.deadLetterStore();
  }

  stats(): StoreStats {
    // Every append and value write is its own "transaction" here.
    return { batches: this.writes, writes: this.writes };
  }

  onCommit(listener: CommitListener): () => void {
    return this.commits.add(listener);
  }

  /** Never calls the listener: this process alone writes to its memory, and onCommit sees every write. */
  onExternalWrite(): () => void {
    return () => undefined;
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
    let log = this.eventLogs.get(persistenceId);
    if (!log) this.eventLogs.set(persistenceId, (log = []));
    const timestamp = Date.now();
    for (const event of events.slice(expectedSequence)) {
      log.push({ ...event, entityId, offset: ++this.lastEventOffset, timestamp });
    }
    this.committed();
  }

  private async eventLog(persistenceId: string, afterOffset: number, limit: number): Promise<EventLogEntry[]> {
    this.checkOpen();
    const invalid = checkEventLogRead(persistenceId, afterOffset, limit);
    if (invalid) throw invalid;
    const log = this.eventLogs.get(persistenceId) ?? [];
    const from = firstAfter(log, afterOffset);
    return log
      .slice(from, from + limit)
      .map((e) => ({ entityId: e.entityId, sequence: e.sequence, typeUrl: e.typeUrl, bytes: e.bytes.slice(), offset: e.offset, timestamp: e.timestamp }));
  }

  private async eventLogHead(persistenceId: string): Promise<number> {
    this.checkOpen();
    const invalid = checkEventLogRead(persistenceId, 0);
    if (invalid) throw invalid;
    return this.eventLogs.get(persistenceId)?.at(-1)?.offset ?? 0;
  }

  private async publish(messages: readonly TopicPublish[]): Promise<number[]> {
    this.checkOpen();
    const invalid = checkPublish(messages);
    if (invalid) throw invalid;
    if (messages.length === 0) return [];
    // Checked above: from here on the publish cannot fail half-way.
    const offsets = messages.map((m) => {
      let topic = this.topicLogs.get(m.topic);
      if (!topic) this.topicLogs.set(m.topic, (topic = { messages: [], head: 0, ids: new Map() }));
      const key = `${m.source}\0${m.id}`;
      const stored = topic.ids.get(key);
      if (stored !== undefined) return stored;
      const offset = ++this.lastTopicOffset;
      topic.messages.push({ ...copyMessage(m), offset });
      topic.ids.set(key, offset);
      topic.head = offset;
      return offset;
    });
    this.committed();
    return offsets;
  }

  private async readTopic(name: string, afterOffset: number, limit: number): Promise<TopicMessage[]> {
    this.checkOpen();
    const invalid = checkTopicRead(name, afterOffset, limit);
    if (invalid) throw invalid;
    const messages = this.topicLogs.get(name)?.messages ?? [];
    const from = firstAfter(messages, afterOffset);
    return messages.slice(from, from + limit).map((m) => ({ ...copyMessage(m), offset: m.offset }));
  }

  private async trim(before: number): Promise<number> {
    this.checkOpen();
    const invalid = checkInteger("topic trim", "before", before, Number.MIN_SAFE_INTEGER);
    if (invalid) throw invalid;
    let trimmed = 0;
    for (const topic of this.topicLogs.values()) {
      const kept = topic.messages.filter((m) => m.time >= before);
      trimmed += topic.messages.length - kept.length;
      for (const m of topic.messages) if (m.time < before) topic.ids.delete(`${m.source}\0${m.id}`);
      topic.messages = kept;
    }
    return trimmed;
  }

  private async topicInfos(): Promise<TopicInfo[]> {
    this.checkOpen();
    return sortByCodePoint([...this.topicLogs.keys()]).map((name) => {
      const topic = this.topicLogs.get(name)!;
      return { topic: name, messages: topic.messages.length, head: topic.head };
    });
  }

  private consumerOffsets(): ConsumerOffsets {
    const keyOf = (group: string, source: string) => `${group}\0${source}`;
    const check = (invalid: RangeError | undefined) => {
      this.checkOpen();
      if (invalid) throw invalid;
    };
    return {
      get: async (group, source) => {
        check(checkConsumerCall("get", group, source));
        return this.leases.get(keyOf(group, source))?.offset ?? 0;
      },
      claim: async (group, source, owner, ttlMs) => {
        check(checkConsumerCall("claim", group, source, owner, { name: "ttlMs", value: ttlMs }));
        const now = Date.now();
        const lease = this.leases.get(keyOf(group, source));
        if (!lease) {
          this.leases.set(keyOf(group, source), { group, source, offset: 0, owner, expires: now + ttlMs });
          return true;
        }
        if (lease.owner !== undefined && lease.owner !== owner && lease.expires > now) return false;
        lease.owner = owner;
        lease.expires = now + ttlMs;
        return true;
      },
      release: async (group, source, owner) => {
        check(checkConsumerCall("release", group, source, owner));
        const lease = this.leases.get(keyOf(group, source));
        if (lease?.owner === owner) {
          lease.owner = undefined;
          lease.expires = 0;
        }
      },
      commit: async (group, source, owner, offset) => {
        check(checkConsumerCall("commit", group, source, owner, { name: "offset", value: offset }));
        const lease = this.leases.get(keyOf(group, source));
        // An expired lease that nobody took over is still the owner's.
        if (lease?.owner !== owner) return false;
        lease.offset = Math.max(lease.offset, offset);
        return true;
      },
      list: async () => {
        this.checkOpen();
        const now = Date.now();
        return [...this.leases.values()]
          .sort((a, b) => compareCodePoints(a.group, b.group) || compareCodePoints(a.source, b.source))
          .map(
            (lease): ConsumerPosition => ({
              group: lease.group,
              source: lease.source,
              offset: lease.offset,
              owner: lease.expires > now ? lease.owner : undefined,
            }),
          );
      },
    };
  }

  private deadLetterStore(): DeadLetters {
    const copy = (letter: DeadLetter): DeadLetter => ({ ...letter, data: letter.data.slice() });
    return {
      add: async (letter) => {
        this.checkOpen();
        const invalid = checkDeadLetter(letter);
        if (invalid) throw invalid;
        const id = ++this.lastLetterId;
        const { group, source, offset, messageId, type, subject, contentType, data, attempts, error, time } = letter;
        this.letters.set(id, { id, group, source, offset, messageId, type, subject, contentType, data: data.slice(), attempts, error, time });
        return id;
      },
      list: async (limit) => {
        this.checkOpen();
        const invalid = checkInteger("dead letter list", "limit", limit, 0);
        if (invalid) throw invalid;
        // Ids increase and a Map keeps insertion order: the newest are last.
        return [...this.letters.values()].reverse().slice(0, limit).map(copy);
      },
      count: async () => {
        this.checkOpen();
        return this.letters.size;
      },
      remove: async (id) => {
        this.checkOpen();
        const invalid = checkInteger("dead letter remove", "id", id, 0);
        if (invalid) throw invalid;
        return this.letters.delete(id);
      },
    };
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

// The index of the first entry with offset > afterOffset (entries are in offset order).
function firstAfter(entries: readonly { readonly offset: number }[], afterOffset: number): number {
  let low = 0;
  let high = entries.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (entries[mid]!.offset <= afterOffset) low = mid + 1;
    else high = mid;
  }
  return low;
}

function copyMessage(m: TopicPublish): TopicPublish {
  const { topic, id, source, type, subject, contentType, time, data } = m;
  return { topic, id, source, type, subject, contentType, time, data: data.slice() };
}

function copyPayload(payload: StoredPayload | undefined): StoredPayload | undefined {
  return payload && { typeUrl: payload.typeUrl, bytes: payload.bytes.slice() };
}

// Code point order, which is what SQLite's BINARY collation and PostgreSQL's "C" give on UTF-8 text.
function sortByCodePoint(ids: string[]): string[] {
  return ids.sort(compareCodePoints);
}

function compareCodePoints(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}
