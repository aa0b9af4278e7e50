// Writing one batch of queued writes (journal appends, topic publishes, value and CRDT state) in
// ONE transaction.
//
// Together (the usual path): one statement per kind for the whole batch — read every journal head
// (and lock every existing value row) of the batch, check the expected sequences and versions in
// JavaScript, then one multi-row INSERT of all events, one upsert of the snapshots, one UPDATE and
// one INSERT per value table. The checks see only what was committed when they ran, so another
// process may append in between: the journal's primary key (and the value tables' one) is the
// final guard, and the multi-row insert then fails with a unique violation.
// One by one (the fallback, after such a failure): the same transaction again, each write in its
// own SAVEPOINT, so that only the write that lost the race is rejected and the rest commit.
//
// Rows are written in one global order (table, then persistence id and entity id) so that two
// batches touching the same rows wait for each other instead of deadlocking; a deadlock or
// serialization failure is retried all the same.
//
// Commit order (the event log and topics, PROTOCOL.md §8): journal.ordering and
// topic_messages.offset come from sequences, whose values are taken at insert, so two
// transactions could commit in the other order than they took them, and a reader that already
// saw the later offset would skip the earlier one for good. So a transaction takes a transaction
// advisory lock (per store schema: JOURNAL_LOCK, then TOPIC_LOCK) before it inserts journal rows
// or topic messages, and keeps it until it commits: the values are taken, and become visible, in
// commit order, across every proxy sharing the database. The journal's lock comes before the
// topics', both come before any value row is locked (value rows are locked last), and nothing that
// holds the topic lock waits for journal rows, so they add no deadlock. Journal-writing batches
// therefore commit one at a time (per database schema), which group commit makes up for.
//
// Wake-ups across processes (notifications.ts): a transaction that inserts journal rows or topic
// messages sends ONE NOTIFY on its schema's channel, in the same round trip as its COMMIT, so it
// is delivered at commit and never for a rollback. A batch whose appends were all rejected, or
// whose publishes were all repeats, or that wrote only values, notifies nobody.
import pg from "pg";
import {
  SequenceConflictError,
  VersionConflictError,
  type JournalAppend,
  type StoredPayload,
  type TopicPublish,
  type ValueWrite,
} from "../store.js";
import { notifyStatement } from "./notifications.js";
import { JOURNAL_LOCK, quoteIdentifier, TOPIC_LOCK } from "./schema.js";

export type ValueTable = "value_state" | "crdt_state";

export type BatchWrite =
  | { readonly kind: "append"; readonly append: JournalAppend }
  | { readonly kind: "value"; readonly table: ValueTable; readonly write: ValueWrite }
  | { readonly kind: "publish"; readonly messages: readonly TopicPublish[] };

/**
 * For each write of a committed batch: why it was rejected (an Error), or, when it was written,
 * the offsets of a publish's messages (undefined for the other writes).
 */
export type WriteOutcome = SequenceConflictError | VersionConflictError | RangeError | number[] | undefined;

// A statement may carry at most 65535 parameters: longer lists are split over several statements.
const MAX_PARAMETERS = 65_535;
const MAX_ONE_BY_ONE_ATTEMPTS = 3;

/** The SQL of one store, its table names qualified with the store's schema. */
export class BatchSql {
  readonly journal: string;
  readonly snapshots: string;
  readonly topicMessages: string;
  readonly topics: string;
  /** The COMMIT of a transaction that wrote journal rows or topic messages: NOTIFY, then COMMIT. */
  readonly notifyAndCommit: string;

  constructor(readonly schema: string) {
    this.journal = `${quoteIdentifier(schema)}.journal`;
    this.snapshots = `${quoteIdentifier(schema)}.snapshots`;
    this.topicMessages = `${quoteIdentifier(schema)}.topic_messages`;
    this.topics = `${quoteIdentifier(schema)}.topics`;
    // Two statements in one simple query: one round trip; if the NOTIFY fails, COMMIT does not run.
    this.notifyAndCommit = `${notifyStatement(schema)}; COMMIT`;
  }

  /** Commits the transaction, notifying the schema's listeners when `wroteLogs` (see the top of the file). */
  async commit(client: pg.ClientBase, wroteLogs: boolean): Promise<void> {
    await client.query(wroteLogs ? this.notifyAndCommit : "COMMIT");
  }

  /** Takes the transaction advisory lock of this schema's journal or topics (see the top of the file). */
  async lock(client: pg.ClientBase, which: "journal" | "topics"): Promise<void> {
    await client.query("SELECT pg_advisory_xact_lock($1, hashtext($2))", [which === "journal" ? JOURNAL_LOCK : TOPIC_LOCK, this.schema]);
  }

  table(name: ValueTable): string {
    return `${quoteIdentifier(this.schema)}.${name}`;
  }
}

/**
 * Writes the batch in one transaction and commits it. Resolves with each write's outcome once
 * committed. Rejects when the batch could not be committed (connection lost, timeout, …): then
 * nothing of it is stored, unless the connection broke during COMMIT itself, when the server may
 * have committed it (the caller cannot know; a reader will see it).
 */
export async function commitBatch(client: pg.ClientBase, sql: BatchSql, writes: readonly BatchWrite[]): Promise<WriteOutcome[]> {
  const order = writeOrder(writes);
  try {
    return await writeTogether(client, sql, writes, order);
  } catch (error) {
    if (!(error instanceof RowRace) && !isRowError(error) && !isTransient(error)) throw error;
    await client.query("ROLLBACK");
  }
  for (let attempt = 1; ; attempt++) {
    try {
      return await writeOneByOne(client, sql, writes, order);
    } catch (error) {
      if (!isTransient(error) || attempt >= MAX_ONE_BY_ONE_ATTEMPTS) throw error;
      await client.query("ROLLBACK");
    }
  }
}

async function writeTogether(client: pg.ClientBase, sql: BatchSql, writes: readonly BatchWrite[], order: number[]): Promise<WriteOutcome[]> {
  const outcomes: WriteOutcome[] = new Array<WriteOutcome>(writes.length).fill(undefined);
  // Whether journal rows or topic messages were inserted: then the commit notifies.
  let wroteLogs = false;
  await client.query("BEGIN");

  const appends = order.filter((i) => writes[i]!.kind === "append");
  if (appends.length > 0) {
    const heads = await readHeads(client, sql, appends.map((i) => (writes[i] as { append: JournalAppend }).append));
    const events: unknown[][] = [];
    const snapshots = new Map<string, unknown[]>();
    for (const i of appends) {
      const { persistenceId, entityId, expectedSequence, snapshot } = (writes[i] as { append: JournalAppend }).append;
      const key = keyOf(persistenceId, entityId);
      const head = heads.get(key) ?? 0;
      if (head !== expectedSequence) {
        outcomes[i] = new SequenceConflictError(persistenceId, entityId, expectedSequence, head);
        continue;
      }
      const rows = eventRows((writes[i] as { append: JournalAppend }).append);
      events.push(...rows);
      const sequence = head + rows.length;
      // One upsert may not touch a row twice: the batch's last snapshot of an entity wins.
      if (snapshot) snapshots.set(key, [persistenceId, entityId, sequence, snapshot.typeUrl, buffer(snapshot.bytes)]);
      heads.set(key, sequence);
    }
    if (events.length > 0) {
      await sql.lock(client, "journal");
      wroteLogs = true;
    }
    await insertEvents(client, sql, events);
    await upsertSnapshots(client, sql, [...snapshots.values()]);
  }

  const publishes = order.filter((i) => writes[i]!.kind === "publish");
  if (publishes.length > 0) {
    await sql.lock(client, "topics");
    const { offsets, inserted } = await insertMessages(
      client,
      sql,
      publishes.map((i) => (writes[i] as { messages: readonly TopicPublish[] }).messages),
    );
    publishes.forEach((i, n) => (outcomes[i] = offsets[n]));
    if (inserted > 0) wroteLogs = true;
  }

  for (const table of ["value_state", "crdt_state"] as const) {
    const indices = order.filter((i) => {
      const write = writes[i]!;
      return write.kind === "value" && write.table === table;
    });
    if (indices.length === 0) continue;
    const valueWrites = indices.map((i) => (writes[i] as { write: ValueWrite }).write);
    const stored = await lockVersions(client, sql, table, valueWrites);
    const versions = new Map(stored);
    // The state each entity ends the batch with, and the version it had when locked.
    const finals = new Map<string, { write: ValueWrite; from: number; version: number }>();
    indices.forEach((i, n) => {
      const write = valueWrites[n]!;
      const key = keyOf(write.persistenceId, write.entityId);
      const version = versions.get(key) ?? 0;
      if (version !== write.expectedVersion) {
        outcomes[i] = new VersionConflictError(write.persistenceId, write.entityId, write.expectedVersion, version);
        return;
      }
      versions.set(key, version + 1);
      finals.set(key, { write, from: finals.get(key)?.from ?? version, version: version + 1 });
    });
    const updates: unknown[][] = [];
    const inserts: unknown[][] = [];
    for (const [key, { write, from, version }] of finals) {
      const value = valueColumns(write.value);
      if (stored.has(key)) updates.push([write.persistenceId, write.entityId, from, version, ...value]);
      else inserts.push([write.persistenceId, write.entityId, version, ...value]);
    }
    // The rows are locked, so each update finds its row at the version read; anything else is a bug
    // or a schema change under our feet, and the one-by-one path sorts it out.
    const updated = await runRows(
      client,
      updates,
      (values) =>
        `UPDATE ${sql.table(table)} AS t SET version = v.version, type_url = v.type_url, payload = v.payload, written_at = now()` +
        ` FROM (VALUES ${values}) AS v (persistence_id, entity_id, expected, version, type_url, payload)` +
        " WHERE t.persistence_id = v.persistence_id AND t.entity_id = v.entity_id AND t.version = v.expected",
      ["::text", "::text", "::bigint", "::bigint", "::text", "::bytea"],
    );
    if (updated !== updates.length) throw new RowRace(`${table}: updated ${updated} of ${updates.length} locked rows`);
    // A row another process inserted since the check fails this with a unique violation.
    await runRows(
      client,
      inserts,
      (values) => `INSERT INTO ${sql.table(table)} (persistence_id, entity_id, version, type_url, payload) VALUES ${values}`,
    );
  }

  await sql.commit(client, wroteLogs);
  return outcomes;
}

async function writeOneByOne(client: pg.ClientBase, sql: BatchSql, writes: readonly BatchWrite[], order: number[]): Promise<WriteOutcome[]> {
  const outcomes: WriteOutcome[] = new Array<WriteOutcome>(writes.length).fill(undefined);
  // Set only once a write's savepoint is released: a write rolled back to its savepoint notifies nobody.
  let wroteLogs = false;
  await client.query("BEGIN");
  // Before any savepoint, so that rolling one back cannot release them.
  if (writes.some((w) => w.kind === "append")) await sql.lock(client, "journal");
  if (writes.some((w) => w.kind === "publish")) await sql.lock(client, "topics");
  for (const i of order) {
    const write = writes[i]!;
    await client.query("SAVEPOINT write");
    try {
      let wroteLog = false;
      if (write.kind === "append") {
        outcomes[i] = await appendOne(client, sql, write.append);
        wroteLog = outcomes[i] === undefined;
      } else if (write.kind === "publish") {
        const { offsets, inserted } = await insertMessages(client, sql, [write.messages]);
        outcomes[i] = offsets[0];
        wroteLog = inserted > 0;
      } else {
        outcomes[i] = await writeValueOne(client, sql, write);
      }
      await client.query("RELEASE SAVEPOINT write");
      if (wroteLog) wroteLogs = true;
    } catch (error) {
      if (!isRowError(error)) throw error;
      await client.query("ROLLBACK TO SAVEPOINT write");
      await client.query("RELEASE SAVEPOINT write");
      outcomes[i] = isUniqueViolation(error) && write.kind !== "publish" ? await conflictOf(client, sql, write) : refused(write, error);
    }
  }
  await sql.commit(client, wroteLogs);
  return outcomes;
}

async function appendOne(client: pg.ClientBase, sql: BatchSql, append: JournalAppend): Promise<WriteOutcome> {
  const { persistenceId, entityId, expectedSequence, snapshot } = append;
  const head = (await readHeads(client, sql, [append])).get(keyOf(persistenceId, entityId)) ?? 0;
  if (head !== expectedSequence) return new SequenceConflictError(persistenceId, entityId, expectedSequence, head);
  const rows = eventRows(append);
  await insertEvents(client, sql, rows);
  if (snapshot) {
    await upsertSnapshots(client, sql, [[persistenceId, entityId, head + rows.length, snapshot.typeUrl, buffer(snapshot.bytes)]]);
  }
  return undefined;
}

async function writeValueOne(client: pg.ClientBase, sql: BatchSql, { table, write }: { table: ValueTable; write: ValueWrite }): Promise<WriteOutcome> {
  const { persistenceId, entityId, expectedVersion } = write;
  const version = (await lockVersions(client, sql, table, [write])).get(keyOf(persistenceId, entityId)) ?? 0;
  if (version !== expectedVersion) return new VersionConflictError(persistenceId, entityId, expectedVersion, version);
  const value = valueColumns(write.value);
  if (version === 0) {
    await client.query(
      `INSERT INTO ${sql.table(table)} (persistence_id, entity_id, version, type_url, payload) VALUES ($1, $2, $3, $4, $5)`,
      [persistenceId, entityId, 1, ...value],
    );
  } else {
    await client.query(
      `UPDATE ${sql.table(table)} SET version = $3, type_url = $4, payload = $5, written_at = now()` +
        " WHERE persistence_id = $1 AND entity_id = $2",
      [persistenceId, entityId, version + 1, ...value],
    );
  }
  return undefined;
}

// After a unique violation: another transaction committed first, so the head or version now
// read is the one the write lost against.
async function conflictOf(client: pg.ClientBase, sql: BatchSql, write: Exclude<BatchWrite, { kind: "publish" }>): Promise<WriteOutcome> {
  if (write.kind === "append") {
    const { persistenceId, entityId, expectedSequence } = write.append;
    const head = (await readHeads(client, sql, [write.append])).get(keyOf(persistenceId, entityId)) ?? 0;
    return new SequenceConflictError(persistenceId, entityId, expectedSequence, head);
  }
  const { persistenceId, entityId, expectedVersion } = write.write;
  const version = (await lockVersions(client, sql, write.table, [write.write])).get(keyOf(persistenceId, entityId)) ?? 0;
  return new VersionConflictError(persistenceId, entityId, expectedVersion, version);
}

// A row PostgreSQL refuses for what it holds (too large, …): only that write fails.
function refused(write: BatchWrite, error: unknown): RangeError {
  if (write.kind === "publish") {
    const topics = [...new Set(write.messages.map((m) => m.topic))].join(", ");
    return new RangeError(`topic publish to ${topics} refused by PostgreSQL: ${(error as Error).message}`, { cause: error });
  }
  const { persistenceId, entityId } = write.kind === "append" ? write.append : write.write;
  const what = write.kind === "append" ? "journal append" : "value write";
  return new RangeError(`${what} for ${persistenceId}/${entityId} refused by PostgreSQL: ${(error as Error).message}`, {
    cause: error,
  });
}

/**
 * Inserts the messages of these publishes (the caller holds the topic lock) and returns each
 * publish's offsets, and how many messages were inserted. A message whose (topic, source, id) is
 * stored already, or comes earlier in the batch, is not inserted: it gets that one's offset.
 */
async function insertMessages(
  client: pg.ClientBase,
  sql: BatchSql,
  publishes: readonly (readonly TopicPublish[])[],
): Promise<{ offsets: number[][]; inserted: number }> {
  const rows: unknown[][] = [];
  const seen = new Set<string>();
  for (const messages of publishes) {
    for (const m of messages) {
      const key = messageKey(m.topic, m.source, m.id);
      if (seen.has(key)) continue;
      seen.add(key);
      rows.push([m.topic, m.id, m.source, m.type, m.subject, m.contentType, m.time, buffer(m.data)]);
    }
  }
  // VALUES rows are inserted, and take their offsets, in list order.
  const inserted = await runChunks<{ topic: string; source: string; id: string; offset: string }>(
    client,
    rows,
    (values) =>
      `INSERT INTO ${sql.topicMessages} (topic, id, source, type, subject, content_type, time, data) VALUES ${values}` +
      ' ON CONFLICT (topic, source, id) DO NOTHING RETURNING topic, source, id, "offset"',
  );
  const offsets = new Map<string, number>();
  const heads = new Map<string, number>();
  for (const row of inserted) {
    const offset = Number(row.offset);
    offsets.set(messageKey(row.topic, row.source, row.id), offset);
    heads.set(row.topic, Math.max(heads.get(row.topic) ?? 0, offset));
  }
  const stored = rows.filter(([topic, id, source]) => !offsets.has(messageKey(topic as string, source as string, id as string)));
  if (stored.length > 0) {
    // Committed before this transaction took the lock, and trim takes it too: they are all there.
    const found = await client.query<{ topic: string; source: string; id: string; offset: string }>(
      `SELECT m.topic, m.source, m.id, m."offset" FROM ${sql.topicMessages} AS m` +
        " JOIN unnest($1::text[], $2::text[], $3::text[]) AS k (topic, source, id)" +
        " ON m.topic = k.topic AND m.source = k.source AND m.id = k.id",
      [stored.map((r) => r[0]), stored.map((r) => r[2]), stored.map((r) => r[1])],
    );
    for (const row of found.rows) offsets.set(messageKey(row.topic, row.source, row.id), Number(row.offset));
    if (found.rows.length !== stored.length) throw new RowRace(`topic_messages: found ${found.rows.length} of ${stored.length} stored messages`);
  }
  const topicRows = [...heads].sort(([a], [b]) => compare(a, b));
  await runRows(
    client,
    topicRows,
    (values) =>
      `INSERT INTO ${sql.topics} AS t (topic, head) VALUES ${values}` +
      " ON CONFLICT (topic) DO UPDATE SET head = greatest(t.head, excluded.head)",
    ["::text", "::bigint"],
  );
  return {
    offsets: publishes.map((messages) => messages.map((m) => offsets.get(messageKey(m.topic, m.source, m.id))!)),
    inserted: inserted.length,
  };
}

/** The highest sequence of each entity appended to (absent: no journal). */
async function readHeads(client: pg.ClientBase, sql: BatchSql, appends: readonly JournalAppend[]): Promise<Map<string, number>> {
  const [persistenceIds, entityIds] = distinctKeys(appends);
  const result = await client.query<{ persistence_id: string; entity_id: string; head: string | null }>(
    "SELECT k.persistence_id, k.entity_id," +
      ` (SELECT max(j.sequence) FROM ${sql.journal} AS j WHERE j.persistence_id = k.persistence_id AND j.entity_id = k.entity_id) AS head` +
      " FROM unnest($1::text[], $2::text[]) AS k (persistence_id, entity_id)",
    [persistenceIds, entityIds],
  );
  const heads = new Map<string, number>();
  for (const row of result.rows) if (row.head !== null) heads.set(keyOf(row.persistence_id, row.entity_id), Number(row.head));
  return heads;
}

/** Locks the existing rows of these entities until the transaction ends; returns their versions. */
async function lockVersions(client: pg.ClientBase, sql: BatchSql, table: ValueTable, writes: readonly ValueWrite[]): Promise<Map<string, number>> {
  const [persistenceIds, entityIds] = distinctKeys(writes);
  // Locked in key order (the lock is taken as rows leave the sort), like every other batch does.
  const result = await client.query<{ persistence_id: string; entity_id: string; version: string }>(
    `SELECT t.persistence_id, t.entity_id, t.version FROM ${sql.table(table)} AS t` +
      " JOIN unnest($1::text[], $2::text[]) AS k (persistence_id, entity_id)" +
      " ON t.persistence_id = k.persistence_id AND t.entity_id = k.entity_id" +
      " ORDER BY t.persistence_id, t.entity_id FOR UPDATE OF t",
    [persistenceIds, entityIds],
  );
  return new Map(result.rows.map((row) => [keyOf(row.persistence_id, row.entity_id), Number(row.version)]));
}

function insertEvents(client: pg.ClientBase, sql: BatchSql, rows: unknown[][]): Promise<number> {
  return runRows(
    client,
    rows,
    (values) => `INSERT INTO ${sql.journal} (persistence_id, entity_id, sequence, type_url, payload) VALUES ${values}`,
  );
}

function upsertSnapshots(client: pg.ClientBase, sql: BatchSql, rows: unknown[][]): Promise<number> {
  // The guard keeps a snapshot from ever replacing a later one.
  return runRows(
    client,
    rows,
    (values) =>
      `INSERT INTO ${sql.snapshots} AS s (persistence_id, entity_id, sequence, type_url, payload) VALUES ${values}` +
      " ON CONFLICT (persistence_id, entity_id) DO UPDATE SET" +
      " sequence = excluded.sequence, type_url = excluded.type_url, payload = excluded.payload, written_at = excluded.written_at" +
      " WHERE s.sequence < excluded.sequence",
  );
}

/** Runs `statement` with a VALUES list of `rows` (split to fit the parameter limit); returns the row count. */
async function runRows(
  client: pg.ClientBase,
  rows: readonly unknown[][],
  statement: (values: string) => string,
  casts: readonly string[] = [],
): Promise<number> {
  let count = 0;
  await runChunks(client, rows, statement, casts, (result) => (count += result.rowCount ?? 0));
  return count;
}

/** Like runRows, in order, but returns the rows the statements returned. */
async function runChunks<Row extends pg.QueryResultRow>(
  client: pg.ClientBase,
  rows: readonly unknown[][],
  statement: (values: string) => string,
  casts: readonly string[] = [],
  each?: (result: pg.QueryResult<Row>) => void,
): Promise<Row[]> {
  if (rows.length === 0) return [];
  const width = rows[0]!.length;
  const perStatement = Math.floor(MAX_PARAMETERS / width);
  const returned: Row[] = [];
  for (let start = 0; start < rows.length; start += perStatement) {
    const chunk = rows.slice(start, start + perStatement);
    const values = chunk
      .map((_, r) => `(${Array.from({ length: width }, (_, c) => `$${r * width + c + 1}${casts[c] ?? ""}`).join(", ")})`)
      .join(", ");
    const result = await client.query<Row>(statement(values), chunk.flat());
    each?.(result);
    returned.push(...result.rows);
  }
  return returned;
}

function eventRows({ persistenceId, entityId, expectedSequence, events }: JournalAppend): unknown[][] {
  return events.map((event, i) => [persistenceId, entityId, expectedSequence + i + 1, event.typeUrl, buffer(event.bytes)]);
}

function valueColumns(value: StoredPayload | undefined): [string | null, Buffer | null] {
  return value ? [value.typeUrl, buffer(value.bytes)] : [null, null];
}

// pg sends a Buffer as a binary parameter, byte for byte; this one shares the caller's memory.
function buffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

// Ids cannot contain NUL (checkAppend, checkValueWrite), so NUL separates them unambiguously.
function keyOf(persistenceId: string, entityId: string): string {
  return `${persistenceId}\0${entityId}`;
}

// Nor can topic names, sources and ids (checkPublish).
function messageKey(topic: string, source: string, id: string): string {
  return `${topic}\0${source}\0${id}`;
}

function distinctKeys(writes: readonly { persistenceId: string; entityId: string }[]): [string[], string[]] {
  const seen = new Set<string>();
  const persistenceIds: string[] = [];
  const entityIds: string[] = [];
  for (const { persistenceId, entityId } of writes) {
    const key = keyOf(persistenceId, entityId);
    if (seen.has(key)) continue;
    seen.add(key);
    persistenceIds.push(persistenceId);
    entityIds.push(entityId);
  }
  return [persistenceIds, entityIds];
}

// The journal first, then the topics, then the value tables; within one, by key; one entity's
// writes stay in call order (the sort is stable), which is the order they apply in, and publishes
// stay in call order.
function writeOrder(writes: readonly BatchWrite[]): number[] {
  const rank = (w: BatchWrite) => (w.kind === "append" ? 0 : w.kind === "publish" ? 1 : w.table === "value_state" ? 2 : 3);
  const target = (w: BatchWrite) => (w.kind === "append" ? w.append : w.kind === "value" ? w.write : { persistenceId: "", entityId: "" });
  return writes
    .map((_, i) => i)
    .sort((a, b) => {
      const wa = writes[a]!;
      const wb = writes[b]!;
      const ta = target(wa);
      const tb = target(wb);
      return rank(wa) - rank(wb) || compare(ta.persistenceId, tb.persistenceId) || compare(ta.entityId, tb.entityId);
    });
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The locked rows were not as read: retry one by one. */
class RowRace extends Error {
  override readonly name = "RowRace";
}

// Only errors the server sent carry a SQLSTATE; Node's own (EPIPE, …) have codes of their own.
function sqlState(error: unknown): string | undefined {
  return error instanceof pg.DatabaseError ? error.code : undefined;
}

function isUniqueViolation(error: unknown): boolean {
  return sqlState(error) === "23505";
}

// Errors about one row's content or keys (class 22 data exception, 23 integrity constraint,
// 54 program limit exceeded): retried one write at a time, they fail only the write concerned.
function isRowError(error: unknown): boolean {
  const state = sqlState(error);
  return state !== undefined && /^(22|23|54)/.test(state);
}

// Deadlock or serialization failure: nothing is wrong with the writes; running again succeeds.
function isTransient(error: unknown): boolean {
  const state = sqlState(error);
  return state === "40P01" || state === "40001";
}
