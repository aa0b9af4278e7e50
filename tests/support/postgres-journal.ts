// Reads the proxy's journal straight from PostgreSQL with `pg` (independent of the proxy's store
// code) and decodes the shopping cart's events, like journal.ts does for a SQLite file.
import pg from "pg";
import { CART_PERSISTENCE_ID, decodeJournalRow, type JournalRow } from "./journal.js";

async function withClient<T>(url: string, use: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000, query_timeout: 15_000 });
  client.on("error", () => undefined);
  await client.connect();
  try {
    return await use(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Every journal row per entity id, in sequence order (the store's tables in the public schema). */
export function readPostgresJournal(url: string, persistenceId = CART_PERSISTENCE_ID): Promise<Map<string, JournalRow[]>> {
  return withClient(url, async (client) => {
    const { rows } = await client.query<{ entity_id: string; sequence: string; type_url: string; payload: Buffer }>(
      "SELECT entity_id, sequence, type_url, payload FROM journal WHERE persistence_id = $1 ORDER BY entity_id, sequence",
      [persistenceId],
    );
    const out = new Map<string, JournalRow[]>();
    for (const r of rows) {
      const list = out.get(r.entity_id) ?? [];
      list.push(decodeJournalRow(r.entity_id, Number(r.sequence), r.type_url, r.payload));
      out.set(r.entity_id, list);
    }
    return out;
  });
}

/** Creates a fresh database on the server of `url` and returns the URL that names it. */
export async function createDatabase(url: string, name: string): Promise<string> {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`not a plain database name: ${name}`);
  await withClient(url, (client) => client.query(`CREATE DATABASE ${name}`));
  const out = new URL(url);
  out.pathname = `/${name}`;
  return out.href;
}
