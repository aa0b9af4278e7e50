// The shared store: PostgreSQL, for several proxies (or one that must not lose its disk).
//
// Group commit (invariant 3): append(), the value stores' write() and topic publish() only queue
// their write. A batch takes every queued write (up to maxBatchSize) and commits it in ONE
// transaction with multi-row statements (batch.ts); while maxConcurrentBatches transactions are in
// flight, new writes wait and form the next batch, so the batch size grows with the load. Two in-flight
// batches never hold writes for the same entity: appends issued back to back for one entity apply
// in call order. All publishes share one key, so publishes wait for each other like that too (they
// take the topic lock anyway, batch.ts), and apply in call order.
//
// Event log and topic offsets follow commit order across proxies: see batch.ts. Consumer offsets,
// dead letters and topic trims are single statements (a trim also takes the topic lock), not
// group-committed.
//
// Single writer (invariant 1) across processes: the expected-sequence and expected-version checks
// run inside the batch's transaction against committed data, and the primary keys reject the
// loser of any race between two proxies (batch.ts).
//
// Wake-ups across processes (onExternalWrite): batches that write journal rows or topic messages
// NOTIFY the schema's channel as they commit (batch.ts), and the store LISTENs on one connection of
// its own, outside the pool, while it has listeners (notifications.ts).
//
// Unavailability: connection attempts and statements time out after a few seconds, every failure
// rejects the writes of its batch (or the read) with StoreUnavailableError and discards the
// connection, and the pool opens new connections when PostgreSQL is back.
import pg from "pg";
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
  StoreUnavailableError,
  type CommitListener,
  type ConsumerOffsets,
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
  type TopicLog,
  type TopicMessage,
  type TopicPublish,
  type ValueWrite,
  type VersionedValue,
} from "../store.js";
import { BatchSql, commitBatch, type BatchWrite, type ValueTable, type WriteOutcome } from "./batch.js";
import { describePostgres, parsePostgresUrl, type PostgresConnection } from "./connection.js";
import { ExternalWriteListeners } from "./notifications.js";
import { migrate, quoteIdentifier, SchemaError, schemaVersion } from "./schema.js";

export interface PostgresStoreOptions {
  /**
   * fsync (default): a write resolves once PostgreSQL has flushed its commit to disk
   * (synchronous_commit on, or stronger if the server is set so). relaxed: synchronous_commit off
   * for the store's sessions: commits survive a crash of the proxy, not of the database server.
   */
  durability?: Durability;
  /** The database schema holding the store's tables; created if missing. Default "public". */
  schema?: string;
  /** The most writes one transaction carries. Default 512. */
  maxBatchSize?: number;
  /** How many batch transactions may be in flight at once. Default 4. */
  maxConcurrentBatches?: number;
  /** Connections in the pool, for batches and reads together. Default maxConcurrentBatches + 6. */
  poolSize?: number;
  /** How long opening a connection may take before the operation fails. Default 3000 ms. */
  connectTimeoutMs?: number;
  /** How long one statement may run before it fails. Default 5000 ms. */
  statementTimeoutMs?: number;
}

/** What the store's sessions actually run with, read back from PostgreSQL. */
export interface PostgresSettings {
  readonly schema: string;
  readonly schemaVersion: number;
  readonly synchronousCommit: string;
}

type PendingWrite = BatchWrite & {
  readonly key: string;
  /** Resolves the write with what it was written as (its version, its offsets, …). */
  readonly resolve: (written: Exclude<WriteOutcome, Error>) => void;
  readonly reject: (error: Error) => void;
};

// Every publish has this key: see the top of the file.
const PUBLISH_KEY = "topics";

const DEFAULTS = { maxBatchSize: 512, maxConcurrentBatches: 4, connectTimeoutMs: 3_000, statementTimeoutMs: 5_000 };
// Migrations may legitimately run long, and wait for another proxy's migrations.
const MIGRATION_TIMEOUT_MS = 300_000;
const APPLICATION_NAME = "cloudstate-proxy";

export class PostgresStore implements Store {
  readonly description: string;
  readonly schema: string;
  readonly journal: Journal;
  readonly values: KeyValueStore;
  readonly crdts: KeyValueStore;
  readonly topics: TopicLog;
  readonly offsets: ConsumerOffsets;
  readonly deadLetters: DeadLetters;

  private readonly pool: pg.Pool;
  private readonly sql: BatchSql;
  private readonly maxBatchSize: number;
  private readonly maxConcurrentBatches: number;
  private queue: PendingWrite[] = [];
  // Entities with a write in an in-flight batch: their later writes wait for the next batch.
  private readonly busyKeys = new Set<string>();
  private inFlight = 0;
  private timer: NodeJS.Immediate | undefined;
  private idle: (() => void) | undefined;
  private closed = false;
  private ended: Promise<void> | undefined;
  private batches = 0;
  private writes = 0;
  private readonly commits = new CommitListeners();
  private readonly externalWrites: ExternalWriteListeners;

  /**
   * Connects, creates or migrates the schema, and returns the open store. Rejects with
   * StoreUnavailableError when PostgreSQL cannot be reached, and with an Error when the schema
   * cannot be migrated (e.g. it is newer than this proxy).
   */
  static async open(connection: PostgresConnection | string, options: PostgresStoreOptions = {}): Promise<PostgresStore> {
    const target = typeof connection === "string" ? parsePostgresUrl(connection) : connection;
    const settings = checkOptions(options);
    const description = describePostgres(target);
    // Migrations run on a session of their own: the advisory lock belongs to it, and it must not
    // be subject to the short statement timeout.
    const client = new pg.Client({
      ...connectionConfig(target),
      connectionTimeoutMillis: settings.connectTimeoutMs,
      query_timeout: MIGRATION_TIMEOUT_MS,
      application_name: APPLICATION_NAME,
    });
    client.on("error", ignore); // a broken connection also fails the query in progress
    let serverSynchronousCommit: string;
    try {
      await client.connect();
      await migrate(client, settings.schema);
      const shown = await client.query<{ synchronous_commit: string }>("SHOW synchronous_commit");
      serverSynchronousCommit = shown.rows[0]!.synchronous_commit;
    } catch (cause) {
      if (isConnectionError(cause)) {
        throw new StoreUnavailableError(`could not open the PostgreSQL store ${description}: ${errorMessage(cause)}`, { cause });
      }
      throw new Error(`could not open the PostgreSQL store ${description}: ${errorMessage(cause)}`, { cause });
    } finally {
      await client.end().catch(ignore);
    }
    // fsync durability keeps the server's setting unless it is off; relaxed turns it off.
    const synchronousCommit =
      settings.durability === "relaxed" ? "off" : serverSynchronousCommit === "off" ? "on" : undefined;
    return new PostgresStore(target, description, settings, synchronousCommit);
  }

  private constructor(
    connection: PostgresConnection,
    description: string,
    settings: Required<PostgresStoreOptions>,
    synchronousCommit: string | undefined,
  ) {
    this.description = settings.schema === "public" ? description : `${description} (schema ${settings.schema})`;
    this.schema = settings.schema;
    this.sql = new BatchSql(settings.schema);
    this.maxBatchSize = settings.maxBatchSize;
    this.maxConcurrentBatches = settings.maxConcurrentBatches;
    this.pool = new pg.Pool({
      ...connectionConfig(connection),
      max: settings.poolSize,
      connectionTimeoutMillis: settings.connectTimeoutMs,
      statement_timeout: settings.statementTimeoutMs,
      // A backstop for a server that stopped answering without closing the connection.
      query_timeout: settings.statementTimeoutMs + 1_000,
      // A proxy that vanishes mid-transaction must not hold row locks for long.
      idle_in_transaction_session_timeout: Math.max(10_000, 2 * settings.statementTimeoutMs),
      idleTimeoutMillis: 30_000,
      keepAlive: true,
      application_name: APPLICATION_NAME,
      ...(synchronousCommit === undefined ? {} : { options: `-c synchronous_commit=${synchronousCommit}` }),
    });
    // An idle connection that breaks (server restart) is dropped by the pool, which reports it
    // here; a connection in use also fails its query, which is where the error is handled.
    this.pool.on("error", ignore);
    this.pool.on("connect", (client) => client.on("error", ignore));
    this.externalWrites = new ExternalWriteListeners(
      {
        ...connectionConfig(connection),
        connectionTimeoutMillis: settings.connectTimeoutMs,
        // For LISTEN, and its heartbeat: a server that stopped answering gets the connection replaced.
        query_timeout: settings.statementTimeoutMs + 1_000,
        keepAlive: true,
        application_name: APPLICATION_NAME,
      },
      settings.schema,
    );

    this.journal = {
      recover: (persistenceId, entityId) => this.recover(persistenceId, entityId),
      append: (append) => this.append(append),
      events: (persistenceId, entityId, fromSequence) => this.events(persistenceId, entityId, fromSequence),
      entityIds: (persistenceId) => this.entityIds(persistenceId),
      eventLog: (persistenceId, afterOffset, limit) => this.eventLog(persistenceId, afterOffset, limit),
      eventLogHead: (persistenceId) => this.eventLogHead(persistenceId),
    };
    this.values = this.keyValueStore("value_state");
    this.crdts = this.keyValueStore("crdt_state");
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

  /**
   * Listens on the schema's notification channel (one connection of its own, opened with the first
   * listener and closed with the last): called when a batch of any store on this schema, in this
   * process or another, committed journal rows or topic messages, and once whenever listening
   * (re)starts.
   */
  onExternalWrite(listener: () => void): () => void {
    return this.externalWrites.add(listener);
  }

  async settings(): Promise<PostgresSettings> {
    const client = await this.connect();
    try {
      const shown = await client.query<{ synchronous_commit: string }>("SHOW synchronous_commit");
      const settings = {
        schema: this.schema,
        schemaVersion: await schemaVersion(client, this.schema),
        synchronousCommit: shown.rows[0]!.synchronous_commit,
      };
      client.release();
      return settings;
    } catch (cause) {
      client.release(true);
      throw this.unavailable("could not read settings from", cause);
    }
  }

  /**
   * Commits the writes still queued (or rejects them if PostgreSQL is unreachable), then
   * disconnects; stops listening for external writes at once.
   */
  close(): Promise<void> {
    if (!this.ended) {
      this.closed = true;
      const listening = this.externalWrites.close();
      this.ended = (async () => {
        if (this.queue.length > 0 || this.inFlight > 0) {
          const drained = new Promise<void>((resolve) => (this.idle = resolve));
          this.startBatches();
          await drained;
        }
        await Promise.all([this.pool.end(), listening]);
      })();
    }
    return this.ended;
  }

  private append(append: JournalAppend): Promise<void> {
    if (this.closed) return Promise.reject(this.closedError());
    const invalid = checkAppend(append);
    if (invalid) return Promise.reject(invalid);
    return new Promise<void>((resolve, reject) => {
      this.enqueue({ kind: "append", append, key: `j\0${append.persistenceId}\0${append.entityId}`, resolve: () => resolve(), reject });
    });
  }

  private publish(messages: readonly TopicPublish[]): Promise<number[]> {
    if (this.closed) return Promise.reject(this.closedError());
    const invalid = checkPublish(messages);
    if (invalid) return Promise.reject(invalid);
    if (messages.length === 0) return Promise.resolve([]);
    return new Promise<number[]>((resolve, reject) => {
      this.enqueue({ kind: "publish", messages, key: PUBLISH_KEY, resolve: (offsets) => resolve(offsets!), reject });
    });
  }

  private writeValue(table: ValueTable, write: ValueWrite): Promise<number> {
    if (this.closed) return Promise.reject(this.closedError());
    const invalid = checkValueWrite(write);
    if (invalid) return Promise.reject(invalid);
    return new Promise<number>((resolve, reject) => {
      const version = write.expectedVersion + 1;
      this.enqueue({ kind: "value", table, write, key: `${table}\0${write.persistenceId}\0${write.entityId}`, resolve: () => resolve(version), reject });
    });
  }

  private enqueue(pending: PendingWrite): void {
    this.queue.push(pending);
    // Writes issued in the same tick go together. When every batch slot is busy, the next batch
    // to finish takes them.
    if (this.inFlight < this.maxConcurrentBatches) this.timer ??= setImmediate(this.startBatchesSoon);
  }

  private readonly startBatchesSoon = (): void => {
    this.timer = undefined;
    this.startBatches();
  };

  private startBatches(): void {
    if (this.timer !== undefined) {
      clearImmediate(this.timer);
      this.timer = undefined;
    }
    while (this.inFlight < this.maxConcurrentBatches) {
      const batch = this.takeBatch();
      if (batch.length === 0) break;
      this.inFlight++;
      void this.runBatch(batch).then(() => {
        this.inFlight--;
        for (const pending of batch) this.busyKeys.delete(pending.key);
        this.startBatches();
        if (this.inFlight === 0 && this.queue.length === 0) this.idle?.();
      });
    }
  }

  // Takes queued writes in order, skipping (and keeping queued) those of entities that have a
  // write in another in-flight batch.
  private takeBatch(): PendingWrite[] {
    const batch: PendingWrite[] = [];
    const taken = new Set<string>();
    const rest: PendingWrite[] = [];
    for (const pending of this.queue) {
      if (batch.length < this.maxBatchSize && (taken.has(pending.key) || !this.busyKeys.has(pending.key))) {
        batch.push(pending);
        taken.add(pending.key);
      } else {
        rest.push(pending);
      }
    }
    this.queue = rest;
    for (const key of taken) this.busyKeys.add(key);
    return batch;
  }

  /** Commits one batch and settles its writes; never rejects. */
  private async runBatch(batch: PendingWrite[]): Promise<void> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (cause) {
      const error = this.unavailable(`could not commit ${batch.length} write(s) to`, cause);
      for (const pending of batch) pending.reject(error);
      return;
    }
    let outcomes;
    // The transaction only: the wait for a connection is the pool's, not the commit's.
    const startNs = process.hrtime.bigint();
    try {
      outcomes = await commitBatch(client, this.sql, batch);
      client.release();
    } catch (cause) {
      // The connection may be in any state: discard it. The transaction did not commit, unless
      // the connection broke during COMMIT (the writes are rejected; a reader may still see them).
      client.release(true);
      const error = this.unavailable(`could not commit ${batch.length} write(s) to`, cause);
      for (const pending of batch) pending.reject(error);
      return;
    }
    const written = outcomes.filter((outcome) => !(outcome instanceof Error)).length;
    if (written > 0) {
      this.batches++;
      this.writes += written;
      this.commits.notify(written, secondsSince(startNs));
    }
    batch.forEach((pending, i) => {
      const outcome = outcomes[i];
      if (outcome instanceof Error) pending.reject(outcome);
      else pending.resolve(outcome);
    });
  }

  private async recover(persistenceId: string, entityId: string): Promise<RecoveredJournal> {
    // One statement, so the snapshot and the events come from the same moment.
    const rows = await this.query<{ snapshot: boolean; sequence: string; type_url: string; payload: Buffer }>(
      "read the journal of",
      `WITH s AS (SELECT sequence, type_url, payload FROM ${this.sql.snapshots} WHERE persistence_id = $1 AND entity_id = $2)` +
        " SELECT true AS snapshot, sequence, type_url, payload FROM s" +
        " UNION ALL" +
        ` SELECT false, j.sequence, j.type_url, j.payload FROM ${this.sql.journal} AS j` +
        " WHERE j.persistence_id = $1 AND j.entity_id = $2 AND j.sequence > coalesce((SELECT sequence FROM s), 0)" +
        " ORDER BY 1 DESC, 2",
      [persistenceId, entityId],
    );
    let snapshot: StoredSnapshot | undefined;
    const events: StoredEvent[] = [];
    for (const row of rows) {
      const stored = { sequence: Number(row.sequence), typeUrl: row.type_url, bytes: row.payload };
      if (row.snapshot) snapshot = stored;
      else events.push(stored);
    }
    const sequence = events.length > 0 ? events[events.length - 1]!.sequence : (snapshot?.sequence ?? 0);
    return { snapshot, events, sequence };
  }

  private async events(persistenceId: string, entityId: string, fromSequence = 1): Promise<StoredEvent[]> {
    const from = Number.isFinite(fromSequence) ? Math.max(1, Math.ceil(fromSequence)) : 1;
    const rows = await this.query<{ sequence: string; type_url: string; payload: Buffer }>(
      "read the journal of",
      `SELECT sequence, type_url, payload FROM ${this.sql.journal}` +
        " WHERE persistence_id = $1 AND entity_id = $2 AND sequence >= $3 ORDER BY sequence",
      [persistenceId, entityId, from],
    );
    return rows.map((row) => ({ sequence: Number(row.sequence), typeUrl: row.type_url, bytes: row.payload }));
  }

  private async entityIds(persistenceId: string): Promise<string[]> {
    const rows = await this.query<{ entity_id: string }>(
      "read the journal of",
      `SELECT DISTINCT entity_id FROM ${this.sql.journal} WHERE persistence_id = $1 ORDER BY entity_id`,
      [persistenceId],
    );
    return rows.map((row) => row.entity_id);
  }

  private async eventLog(persistenceId: string, afterOffset: number, limit: number): Promise<EventLogEntry[]> {
    this.check(checkEventLogRead(persistenceId, afterOffset, limit));
    const rows = await this.query<{ entity_id: string; sequence: string; type_url: string; payload: Buffer; ordering: string; timestamp: string }>(
      "read the event log of",
      "SELECT entity_id, sequence, type_url, payload, ordering, floor(extract(epoch FROM written_at) * 1000)::bigint AS timestamp" +
        ` FROM ${this.sql.journal} WHERE persistence_id = $1 AND ordering > $2 ORDER BY ordering LIMIT $3`,
      [persistenceId, afterOffset, limit],
    );
    return rows.map((row) => ({
      entityId: row.entity_id,
      sequence: Number(row.sequence),
      typeUrl: row.type_url,
      bytes: row.payload,
      offset: Number(row.ordering),
      timestamp: Number(row.timestamp),
    }));
  }

  private async eventLogHead(persistenceId: string): Promise<number> {
    this.check(checkEventLogRead(persistenceId, 0));
    const rows = await this.query<{ head: string | null }>(
      "read the event log of",
      `SELECT max(ordering) AS head FROM ${this.sql.journal} WHERE persistence_id = $1`,
      [persistenceId],
    );
    return Number(rows[0]?.head ?? 0);
  }

  private topicLog(): TopicLog {
    const { topicMessages, topics } = this.sql;
    return {
      publish: (messages) => this.publish(messages),
      read: async (topic, afterOffset, limit) => {
        this.check(checkTopicRead(topic, afterOffset, limit));
        const rows = await this.query<{
          offset: string;
          topic: string;
          id: string;
          source: string;
          type: string;
          subject: string;
          content_type: string;
          time: string;
          data: Buffer;
        }>(
          "read a topic from",
          `SELECT "offset", topic, id, source, type, subject, content_type, time, data FROM ${topicMessages}` +
            ' WHERE topic = $1 AND "offset" > $2 ORDER BY "offset" LIMIT $3',
          [topic, afterOffset, limit],
        );
        return rows.map(
          (row): TopicMessage => ({
            offset: Number(row.offset),
            topic: row.topic,
            id: row.id,
            source: row.source,
            type: row.type,
            subject: row.subject,
            contentType: row.content_type,
            time: Number(row.time),
            data: row.data,
          }),
        );
      },
      trim: async (before) => {
        this.check(checkInteger("topic trim", "before", before, Number.MIN_SAFE_INTEGER));
        // Under the topic lock, so that a publish never finds a message it collided with gone.
        return this.transaction("trim topics in", async (client) => {
          await this.sql.lock(client, "topics");
          return (await client.query(`DELETE FROM ${topicMessages} WHERE time < $1`, [before])).rowCount ?? 0;
        });
      },
      topics: async () => {
        const rows = await this.query<{ topic: string; messages: string; head: string }>(
          "read the topics of",
          `SELECT t.topic, (SELECT count(*) FROM ${topicMessages} AS m WHERE m.topic = t.topic) AS messages, t.head FROM ${topics} AS t ORDER BY t.topic`,
          [],
        );
        return rows.map((row) => ({ topic: row.topic, messages: Number(row.messages), head: Number(row.head) }));
      },
    };
  }

  private consumerOffsets(): ConsumerOffsets {
    const table = `${quoteIdentifier(this.schema)}.consumer_offsets`;
    return {
      get: async (group, source) => {
        this.check(checkConsumerCall("get", group, source));
        const rows = await this.query<{ offset: string }>(
          "read a consumer offset from",
          `SELECT "offset" FROM ${table} WHERE consumer_group = $1 AND source = $2`,
          [group, source],
        );
        return Number(rows[0]?.offset ?? 0);
      },
      // Taken when there is no row, when nobody holds it, when it is the owner's or when it
      // expired, by the database's clock. Concurrent claims are serialised on the row.
      claim: async (group, source, owner, ttlMs) => {
        this.check(checkConsumerCall("claim", group, source, owner, { name: "ttlMs", value: ttlMs }));
        const rows = await this.query(
          "claim a consumer lease in",
          `INSERT INTO ${table} AS c (consumer_group, source, owner, lease_expires)` +
            " VALUES ($1, $2, $3, now() + $4::double precision * interval '1 millisecond')" +
            " ON CONFLICT (consumer_group, source) DO UPDATE SET owner = excluded.owner, lease_expires = excluded.lease_expires" +
            " WHERE c.owner IS NULL OR c.owner = excluded.owner OR c.lease_expires <= now()" +
            " RETURNING 1",
          [group, source, owner, ttlMs],
        );
        return rows.length === 1;
      },
      release: async (group, source, owner) => {
        this.check(checkConsumerCall("release", group, source, owner));
        await this.query(
          "release a consumer lease in",
          `UPDATE ${table} SET owner = NULL, lease_expires = NULL WHERE consumer_group = $1 AND source = $2 AND owner = $3`,
          [group, source, owner],
        );
      },
      // The owner column still naming `owner` is what holding the lease means for a commit: an
      // expired lease that nobody took over is still the owner's.
      commit: async (group, source, owner, offset) => {
        this.check(checkConsumerCall("commit", group, source, owner, { name: "offset", value: offset }));
        const rows = await this.query(
          "commit a consumer offset to",
          `UPDATE ${table} SET "offset" = greatest("offset", $4) WHERE consumer_group = $1 AND source = $2 AND owner = $3 RETURNING 1`,
          [group, source, owner, offset],
        );
        return rows.length === 1;
      },
      list: async () => {
        const rows = await this.query<{ consumer_group: string; source: string; offset: string; owner: string | null }>(
          "read the consumer offsets of",
          `SELECT consumer_group, source, "offset", CASE WHEN lease_expires > now() THEN owner END AS owner FROM ${table}` +
            " ORDER BY consumer_group, source",
          [],
        );
        return rows.map((row) => ({ group: row.consumer_group, source: row.source, offset: Number(row.offset), owner: row.owner ?? undefined }));
      },
    };
  }

  private deadLetterStore(): DeadLetters {
    const table = `${quoteIdentifier(this.schema)}.dead_letters`;
    return {
      add: async (letter) => {
        this.check(checkDeadLetter(letter));
        const { group, source, offset, messageId, type, subject, contentType, data, attempts, error, time } = letter;
        const rows = await this.query<{ id: string }>(
          "store a dead letter in",
          `INSERT INTO ${table} (consumer_group, source, "offset", message_id, type, subject, content_type, data, attempts, error, time)` +
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
          [group, source, offset, messageId, type, subject, contentType, Buffer.from(data.buffer, data.byteOffset, data.byteLength), attempts, error, time],
        );
        return Number(rows[0]!.id);
      },
      list: async (limit) => {
        this.check(checkInteger("dead letter list", "limit", limit, 0));
        const rows = await this.query<{
          id: string;
          consumer_group: string;
          source: string;
          offset: string;
          message_id: string;
          type: string;
          subject: string;
          content_type: string;
          data: Buffer;
          attempts: number;
          error: string;
          time: string;
        }>("read the dead letters of", `SELECT * FROM ${table} ORDER BY id DESC LIMIT $1`, [limit]);
        return rows.map((row) => ({
          id: Number(row.id),
          group: row.consumer_group,
          source: row.source,
          offset: Number(row.offset),
          messageId: row.message_id,
          type: row.type,
          subject: row.subject,
          contentType: row.content_type,
          data: row.data,
          attempts: Number(row.attempts),
          error: row.error,
          time: Number(row.time),
        }));
      },
      count: async () => {
        const rows = await this.query<{ count: string }>("count the dead letters of", `SELECT count(*) FROM ${table}`, []);
        return Number(rows[0]!.count);
      },
      remove: async (id) => {
        this.check(checkInteger("dead letter remove", "id", id, 0));
        const rows = await this.query("remove a dead letter from", `DELETE FROM ${table} WHERE id = $1 RETURNING 1`, [id]);
        return rows.length === 1;
      },
    };
  }

  // Closed first, then the arguments: like the writes that queue.
  private check(invalid: RangeError | undefined): void {
    if (this.closed) throw this.closedError();
    if (invalid) throw invalid;
  }

  /** Runs `fn` in a transaction on a connection of its own; a failure discards the connection. */
  private async transaction<T>(what: string, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.connect();
    try {
      await client.query("BEGIN");
      const result = await fn(client);
      await client.query("COMMIT");
      client.release();
      return result;
    } catch (cause) {
      client.release(true);
      throw this.unavailable(`could not ${what}`, cause);
    }
  }

  private keyValueStore(table: ValueTable): KeyValueStore {
    const name = this.sql.table(table);
    return {
      get: async (persistenceId, entityId): Promise<VersionedValue> => {
        const rows = await this.query<{ version: string; type_url: string | null; payload: Buffer | null }>(
          "read a value from",
          `SELECT version, type_url, payload FROM ${name} WHERE persistence_id = $1 AND entity_id = $2`,
          [persistenceId, entityId],
        );
        const row = rows[0];
        if (row === undefined) return { version: 0, value: undefined };
        const value = row.type_url === null || row.payload === null ? undefined : { typeUrl: row.type_url, bytes: row.payload };
        return { version: Number(row.version), value };
      },
      write: (write) => this.writeValue(table, write),
      entityIds: async (persistenceId) => {
        const rows = await this.query<{ entity_id: string }>(
          "read values from",
          `SELECT entity_id FROM ${name} WHERE persistence_id = $1 AND payload IS NOT NULL ORDER BY entity_id`,
          [persistenceId],
        );
        return rows.map((row) => row.entity_id);
      },
    };
  }

  private async query<Row extends pg.QueryResultRow>(what: string, text: string, values: unknown[]): Promise<Row[]> {
    if (this.closed) throw this.closedError();
    try {
      // pool.query discards the connection when the query fails.
      return (await this.pool.query<Row>(text, values)).rows;
    } catch (cause) {
      throw this.unavailable(`could not ${what}`, cause);
    }
  }

  private async connect(): Promise<pg.PoolClient> {
    if (this.closed) throw this.closedError();
    try {
      return await this.pool.connect();
    } catch (cause) {
      throw this.unavailable("could not connect to", cause);
    }
  }

  private unavailable(what: string, cause: unknown): StoreUnavailableError {
    return new StoreUnavailableError(`${what} ${this.description}: ${errorMessage(cause)}`, { cause });
  }

  private closedError(): StoreUnavailableError {
    return new StoreUnavailableError(`the PostgreSQL store ${this.description} is closed`);
  }
}

function checkOptions(options: PostgresStoreOptions): Required<PostgresStoreOptions> {
  const durability = options.durability ?? "fsync";
  if (durability !== "fsync" && durability !== "relaxed") {
    throw new Error(`unknown durability "${String(durability)}": expected "fsync" or "relaxed"`);
  }
  const positive = (name: keyof typeof DEFAULTS): number => {
    const value = options[name] ?? DEFAULTS[name];
    if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer, got ${value}`);
    return value;
  };
  const maxConcurrentBatches = positive("maxConcurrentBatches");
  const poolSize = options.poolSize ?? maxConcurrentBatches + 6;
  if (!Number.isSafeInteger(poolSize) || poolSize < 1) throw new RangeError(`poolSize must be a positive integer, got ${poolSize}`);
  const schema = options.schema ?? "public";
  if (schema === "" || schema.includes("\0")) throw new RangeError(`schema must be a name, got ${JSON.stringify(schema)}`);
  return {
    durability,
    schema,
    maxBatchSize: positive("maxBatchSize"),
    maxConcurrentBatches,
    poolSize,
    connectTimeoutMs: positive("connectTimeoutMs"),
    statementTimeoutMs: positive("statementTimeoutMs"),
  };
}

function connectionConfig(connection: PostgresConnection): pg.ClientConfig {
  if ("url" in connection) return { connectionString: connection.url };
  const { host, port, database, user, password } = connection;
  return { host, port, database, user, password };
}

// Errors that say nothing about the request, only that the server cannot be used right now:
// network errors and timeouts (not from the server), connection exceptions (08), operator
// intervention such as a shutdown (57), insufficient resources (53). Not: a wrong password or
// database name, or a schema this proxy cannot migrate.
function isConnectionError(error: unknown): boolean {
  if (error instanceof SchemaError) return false;
  if (!(error instanceof pg.DatabaseError)) return true;
  return /^(08|53|57)/.test(error.code ?? "");
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function ignore(): void {}

