// Reads the proxy's SQLite journal straight from the file (read-only), independent of the proxy's
// own store code, and decodes the shopping cart's events, so tests can check what was committed.
import assert from "node:assert/strict";
import { fromBinary } from "@bufbuild/protobuf";
import Database from "better-sqlite3";
import { ItemAddedSchema, ItemRemovedSchema } from "../../examples/shopping-cart/src/gen/com/example/shoppingcart/domain/domain_pb.js";

export const CART_PERSISTENCE_ID = "shopping-cart";

export interface JournalRow {
  readonly sequence: number;
  /** "added" or "removed", and the product. */
  readonly kind: "added" | "removed";
  readonly productId: string;
  readonly quantity: number;
}

export interface SnapshotRow {
  readonly entityId: string;
  readonly sequence: number;
}

/** Every journal row per entity id, in sequence order. Opens the file read-only and closes it. */
export function readJournal(path: string, persistenceId = CART_PERSISTENCE_ID): Map<string, JournalRow[]> {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    const rows = db
      .prepare<[string], { entity_id: string; sequence: number; type_url: string; payload: Buffer }>(
        "SELECT entity_id, sequence, type_url, payload FROM journal WHERE persistence_id = ? ORDER BY entity_id, sequence",
      )
      .all(persistenceId);
    const out = new Map<string, JournalRow[]>();
    for (const r of rows) {
      const list = out.get(r.entity_id) ?? [];
      list.push(decodeJournalRow(r.entity_id, r.sequence, r.type_url, r.payload));
      out.set(r.entity_id, list);
    }
    return out;
  } finally {
    db.close();
  }
}

/** Decodes one journal row of the shopping cart (ItemAdded or ItemRemoved); throws on any other type. */
export function decodeJournalRow(entityId: string, sequence: number, typeUrl: string, payload: Uint8Array): JournalRow {
  if (typeUrl.endsWith("/com.example.shoppingcart.domain.ItemAdded")) {
    const e = fromBinary(ItemAddedSchema, payload);
    return { sequence, kind: "added", productId: e.item?.productId ?? "", quantity: e.item?.quantity ?? 0 };
  }
  if (typeUrl.endsWith("/com.example.shoppingcart.domain.ItemRemoved")) {
    return { sequence, kind: "removed", productId: fromBinary(ItemRemovedSchema, payload).productId, quantity: 0 };
  }
  throw new Error(`unexpected event type ${typeUrl} in ${entityId}`);
}

/** The stored snapshot of each entity (the SQLite store keeps only the latest). */
export function readSnapshots(path: string, persistenceId = CART_PERSISTENCE_ID): SnapshotRow[] {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    return db
      .prepare<[string], SnapshotRow>("SELECT entity_id AS entityId, sequence FROM snapshots WHERE persistence_id = ? ORDER BY entity_id")
      .all(persistenceId);
  } finally {
    db.close();
  }
}

/** Asserts that every entity's sequence numbers are exactly 1..n: no gap, no duplicate. */
export function assertContiguous(journal: Map<string, JournalRow[]>): void {
  for (const [entityId, rows] of journal) {
    assert.deepEqual(
      rows.map((r) => r.sequence),
      rows.map((_, i) => i + 1),
      `journal of ${entityId}: sequence numbers must be 1..${rows.length} without gap or duplicate`,
    );
  }
}
