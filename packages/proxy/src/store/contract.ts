// The one test suite every store runs (invariants 1 and 2 as the store sees them). Each test opens
// a fresh store and tries to break a rule of the contract in store.ts.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  SequenceConflictError,
  StoreUnavailableError,
  VersionConflictError,
  type JournalAppend,
  type CommittedBatch,
  type KeyValueStore,
  type Store,
  type StoredEvent,
  type StoredPayload,
  type ValueWrite,
} from "./store.js";

const PID = "shop.ShoppingCart";
const EVENT_TYPE = "type.googleapis.com/shop.ItemAdded";
const SNAPSHOT_TYPE = "type.googleapis.com/shop.Cart";
const STATE_TYPE = "type.googleapis.com/shop.CartState";

export interface ContractOptions {
  /** The store commits concurrent writes together (SQLite, PostgreSQL); the memory store does not. */
  readonly groupCommit?: boolean;
}

export function storeContract(name: string, open: () => Promise<Store>, options: ContractOptions = {}): void {
  async function withStore(fn: (store: Store) => Promise<void>): Promise<void> {
    const store = await open();
    try {
      await fn(store);
    } finally {
      await store.close();
    }
  }

  describe(`${name} store contract`, () => {
    describe("recover", () => {
      test("an unknown entity has no snapshot, no events and sequence 0", () =>
        withStore(async (store) => {
          assert.deepEqual(await store.journal.recover(PID, "nobody"), { snapshot: undefined, events: [], sequence: 0 });
          assert.deepEqual(await store.journal.events(PID, "nobody"), []);
          assert.deepEqual(await store.journal.entityIds(PID), []);
        }));

      test("appended events come back in order, numbered from 1, with their exact bytes", () =>
        withStore(async (store) => {
          const everyByte = new Uint8Array(256).map((_, i) => i);
          // A view into a larger buffer: a store must honour byteOffset/byteLength.
          const view = new Uint8Array([0xee, 0xee, 1, 2, 3, 0xee]).subarray(2, 5);
          await store.journal.append(append("cart-1", 0, [payload("a"), event(new Uint8Array(0)), event(everyByte)]));
          await store.journal.append(append("cart-1", 3, [event(view, "type.googleapis.com/shop.ItemRemoved")]));

          const recovered = await store.journal.recover(PID, "cart-1");
          assert.equal(recovered.snapshot, undefined);
          assert.equal(recovered.sequence, 4);
          assert.deepEqual(plain(recovered.events), [
            { sequence: 1, typeUrl: EVENT_TYPE, hex: hex(text("a")) },
            { sequence: 2, typeUrl: EVENT_TYPE, hex: "" },
            { sequence: 3, typeUrl: EVENT_TYPE, hex: hex(everyByte) },
            { sequence: 4, typeUrl: "type.googleapis.com/shop.ItemRemoved", hex: "010203" },
          ]);
          for (const e of recovered.events) assert.ok(e.bytes instanceof Uint8Array);
        }));

      test("callers cannot change stored data by mutating bytes they passed in or got back", () =>
        withStore(async (store) => {
          const bytes = text("original");
          const snapshotBytes = text("state");
          await store.journal.append({ ...append("cart-1", 0, [event(bytes)]), snapshot: snapshot(snapshotBytes) });
          bytes.fill(0);
          snapshotBytes.fill(0);
          const first = await store.journal.recover(PID, "cart-1");
          first.snapshot!.bytes.fill(0);
          (await store.journal.events(PID, "cart-1"))[0]!.bytes.fill(0);

          const again = await store.journal.recover(PID, "cart-1");
          assert.equal(hex(again.snapshot!.bytes), hex(text("state")));
          assert.equal(hex((await store.journal.events(PID, "cart-1"))[0]!.bytes), hex(text("original")));
        }));
    });

    describe("snapshots", () => {
      test("a snapshot is saved at the append's last event, and recover returns only the events after it", () =>
        withStore(async (store) => {
          await store.journal.append({ ...append("cart-1", 0, [payload("a"), payload("b")]), snapshot: snapshot(text("s2")) });
          let recovered = await store.journal.recover(PID, "cart-1");
          assert.deepEqual(plainSnapshot(recovered), { sequence: 2, typeUrl: SNAPSHOT_TYPE, hex: hex(text("s2")) });
          assert.deepEqual(recovered.events, []);
          assert.equal(recovered.sequence, 2);

          await store.journal.append(append("cart-1", 2, [payload("c"), payload("d")]));
          recovered = await store.journal.recover(PID, "cart-1");
          assert.equal(recovered.snapshot?.sequence, 2);
          assert.deepEqual(
            recovered.events.map((e) => e.sequence),
            [3, 4],
          );
          assert.equal(recovered.sequence, 4);
        }));

      test("a later snapshot replaces the earlier one, and the journal keeps every event", () =>
        withStore(async (store) => {
          await store.journal.append({ ...append("cart-1", 0, [payload("a")]), snapshot: snapshot(text("s1")) });
          await store.journal.append(append("cart-1", 1, [payload("b")]));
          await store.journal.append({
            ...append("cart-1", 2, [payload("c"), payload("d")]),
            snapshot: { typeUrl: "type.googleapis.com/shop.CartV2", bytes: text("s4") },
          });
          await store.journal.append(append("cart-1", 4, [payload("e")]));

          const recovered = await store.journal.recover(PID, "cart-1");
          assert.deepEqual(plainSnapshot(recovered), {
            sequence: 4,
            typeUrl: "type.googleapis.com/shop.CartV2",
            hex: hex(text("s4")),
          });
          assert.deepEqual(plain(recovered.events), [{ sequence: 5, typeUrl: EVENT_TYPE, hex: hex(text("e")) }]);
          assert.equal(recovered.sequence, 5);
          assert.deepEqual(
            (await store.journal.events(PID, "cart-1")).map((e) => e.sequence),
            [1, 2, 3, 4, 5],
          );
        }));
    });

    describe("expected sequence (single writer)", () => {
      test("an append with a stale or future expectedSequence is rejected and changes nothing", () =>
        withStore(async (store) => {
          await store.journal.append({ ...append("cart-1", 0, [payload("a"), payload("b")]), snapshot: snapshot(text("s")) });
          const before = await store.journal.recover(PID, "cart-1");

          for (const expected of [0, 1, 3, 10]) {
            await assert.rejects(
              store.journal.append({ ...append("cart-1", expected, [payload("x")]), snapshot: snapshot(text("x")) }),
              (error: unknown) => {
                assert.ok(error instanceof SequenceConflictError);
                assert.equal(error.persistenceId, PID);
                assert.equal(error.entityId, "cart-1");
                assert.equal(error.expectedSequence, expected);
                assert.equal(error.actualSequence, 2);
                return true;
              },
            );
          }
          assert.deepEqual(await store.journal.recover(PID, "cart-1"), before);
          assert.equal(store.stats().writes, 1);
        }));

      test("an append to an entity without a journal must expect sequence 0", () =>
        withStore(async (store) => {
          await assert.rejects(store.journal.append(append("cart-new", 1, [payload("a")])), SequenceConflictError);
          assert.deepEqual(await store.journal.recover(PID, "cart-new"), { snapshot: undefined, events: [], sequence: 0 });
          assert.deepEqual(await store.journal.entityIds(PID), []);
        }));

      test("of two concurrent appends expecting the same sequence, exactly one lands", () =>
        withStore(async (store) => {
          await store.journal.append(append("cart-1", 0, [payload("a")]));
          const results = await Promise.allSettled([
            store.journal.append(append("cart-1", 1, [payload("first-1"), payload("first-2")])),
            store.journal.append({ ...append("cart-1", 1, [payload("second")]), snapshot: snapshot(text("second")) }),
          ]);
          const fulfilled = results.filter((r) => r.status === "fulfilled");
          const rejected = results.filter((r) => r.status === "rejected");
          assert.equal(fulfilled.length, 1);
          assert.equal(rejected.length, 1);
          assert.ok(rejected[0]!.reason instanceof SequenceConflictError);

          const winner = results[0]!.status === "fulfilled" ? ["a", "first-1", "first-2"] : ["a", "second"];
          const recovered = await store.journal.recover(PID, "cart-1");
          assert.equal(recovered.sequence, winner.length);
          assert.equal(recovered.snapshot !== undefined, results[1]!.status === "fulfilled");
          assert.deepEqual(
            (await store.journal.events(PID, "cart-1")).map((e) => [e.sequence, Buffer.from(e.bytes).toString()]),
            winner.map((w, i) => [i + 1, w]),
          );
        }));

      test("appends issued back to back for one entity, without awaiting, all land in call order", () =>
        withStore(async (store) => {
          await Promise.all([
            store.journal.append(append("cart-1", 0, [payload("a"), payload("b")])),
            store.journal.append({ ...append("cart-1", 2, [payload("c")]), snapshot: snapshot(text("s3")) }),
            store.journal.append(append("cart-1", 3, [payload("d")])),
          ]);
          const recovered = await store.journal.recover(PID, "cart-1");
          assert.equal(recovered.snapshot?.sequence, 3);
          assert.deepEqual(plain(recovered.events), [{ sequence: 4, typeUrl: EVENT_TYPE, hex: hex(text("d")) }]);
          assert.deepEqual(
            (await store.journal.events(PID, "cart-1")).map((e) => Buffer.from(e.bytes).toString()),
            ["a", "b", "c", "d"],
          );
        }));

      test("a conflicting append does not fail the appends issued together with it", () =>
        withStore(async (store) => {
          await store.journal.append(append("cart-b", 0, [payload("b1")]));
          const results = await Promise.allSettled([
            store.journal.append(append("cart-a", 0, [payload("a1")])),
            store.journal.append(append("cart-b", 0, [payload("stale")])), // conflicts
            store.journal.append(append("cart-b", 1, [payload("b2")])), // the right expectation still lands
            store.journal.append(append("cart-a", 1, [payload("a2")])),
            store.journal.append(append("cart-a", 5, [payload("future")])), // conflicts
          ]);
          assert.deepEqual(
            results.map((r) => r.status),
            ["fulfilled", "rejected", "fulfilled", "fulfilled", "rejected"],
          );
          for (const r of results) if (r.status === "rejected") assert.ok(r.reason instanceof SequenceConflictError);
          assert.deepEqual(await contents(store, "cart-a"), ["a1", "a2"]);
          assert.deepEqual(await contents(store, "cart-b"), ["b1", "b2"]);
        }));

      test("journals are keyed by persistence id and entity id together", () =>
        withStore(async (store) => {
          // Pairs that a naive key concatenation would confuse.
          await Promise.all([
            store.journal.append({ ...append("c", 0, [payload("ab/c")]), persistenceId: "ab" }),
            store.journal.append({ ...append("bc", 0, [payload("a/bc")]), persistenceId: "a" }),
            store.journal.append(append("cart-1", 0, [payload("shop")])),
            store.journal.append({ ...append("cart-1", 0, [payload("other")]), persistenceId: "other.Service" }),
          ]);
          assert.deepEqual(await contents(store, "c", "ab"), ["ab/c"]);
          assert.deepEqual(await contents(store, "bc", "a"), ["a/bc"]);
          assert.deepEqual(await contents(store, "cart-1"), ["shop"]);
          assert.deepEqual(await contents(store, "cart-1", "other.Service"), ["other"]);
          assert.deepEqual(await store.journal.entityIds("ab"), ["c"]);
        }));
    });

    describe("malformed appends", () => {
      test("an append without events is rejected with a RangeError, with or without a snapshot, and writes nothing", () =>
        withStore(async (store) => {
          await assert.rejects(store.journal.append(append("cart-1", 0, [])), RangeError);
          await assert.rejects(store.journal.append({ ...append("cart-1", 0, []), snapshot: snapshot(text("s")) }), RangeError);
          await store.journal.append(append("cart-2", 0, [payload("a")]));
          await assert.rejects(store.journal.append({ ...append("cart-2", 1, []), snapshot: snapshot(text("s")) }), RangeError);

          assert.deepEqual(await store.journal.recover(PID, "cart-1"), { snapshot: undefined, events: [], sequence: 0 });
          assert.equal((await store.journal.recover(PID, "cart-2")).snapshot, undefined);
          assert.deepEqual(await store.journal.entityIds(PID), ["cart-2"]);
          assert.equal(store.stats().writes, 1);
        }));

      test("an append whose expectedSequence is not a non-negative integer is rejected with a RangeError", () =>
        withStore(async (store) => {
          for (const expected of [-1, 0.5, Number.NaN, Number.POSITIVE_INFINITY]) {
            await assert.rejects(store.journal.append(append("cart-1", expected, [payload("a")])), RangeError);
          }
          assert.deepEqual(await store.journal.entityIds(PID), []);
        }));

      test("a NUL character in a persistence id, entity id or type URL is rejected with a RangeError, failing nothing else", () =>
        withStore(async (store) => {
          const results = await Promise.allSettled([
            store.journal.append(append("cart-1", 0, [payload("a")])),
            store.journal.append(append("cart\0x", 0, [payload("a")])),
            store.journal.append({ ...append("cart-2", 0, [payload("a")]), persistenceId: "shop\0x" }),
            store.journal.append(append("cart-3", 0, [event(text("a"), "type.googleapis.com/a\0b")])),
            store.journal.append({ ...append("cart-4", 0, [payload("a")]), snapshot: { typeUrl: "x\0", bytes: text("s") } }),
          ]);
          assert.deepEqual(
            results.map((r) => r.status),
            ["fulfilled", "rejected", "rejected", "rejected", "rejected"],
          );
          for (const r of results) if (r.status === "rejected") assert.ok(r.reason instanceof RangeError, String(r.reason));
          assert.deepEqual(await store.journal.entityIds(PID), ["cart-1"]);
        }));
    });

    for (const namespace of ["values", "crdts"] as const) {
      describe(`${namespace} (key-value state)`, () => {
        const kv = (store: Store): KeyValueStore => store[namespace];

        test("an entity never written has version 0 and no value", () =>
          withStore(async (store) => {
            assert.deepEqual(await kv(store).get(PID, "nobody"), { version: 0, value: undefined });
            assert.deepEqual(await kv(store).entityIds(PID), []);
          }));

        test("each write bumps the version by one, and get returns the latest value with its exact bytes", () =>
          withStore(async (store) => {
            const everyByte = new Uint8Array(256).map((_, i) => i);
            const view = new Uint8Array([0xee, 1, 2, 3, 0xee]).subarray(1, 4);
            assert.equal(await kv(store).write(valueWrite("cart-1", 0, state(everyByte))), 1);
            assert.deepEqual(plainValue(await kv(store).get(PID, "cart-1")), { version: 1, typeUrl: STATE_TYPE, hex: hex(everyByte) });
            assert.equal(await kv(store).write(valueWrite("cart-1", 1, state(view, "type.googleapis.com/shop.CartV2"))), 2);
            assert.deepEqual(plainValue(await kv(store).get(PID, "cart-1")), {
              version: 2,
              typeUrl: "type.googleapis.com/shop.CartV2",
              hex: "010203",
            });
            // Empty bytes are a value (a message with every field at its default), not a delete.
            assert.equal(await kv(store).write(valueWrite("cart-1", 2, state(new Uint8Array(0)))), 3);
            const empty = await kv(store).get(PID, "cart-1");
            assert.deepEqual(plainValue(empty), { version: 3, typeUrl: STATE_TYPE, hex: "" });
            assert.ok(empty.value!.bytes instanceof Uint8Array);
            assert.deepEqual(await kv(store).entityIds(PID), ["cart-1"]);
          }));

        test("callers cannot change a stored value by mutating bytes they passed in or got back", () =>
          withStore(async (store) => {
            const bytes = text("original");
            await kv(store).write(valueWrite("cart-1", 0, state(bytes)));
            bytes.fill(0);
            (await kv(store).get(PID, "cart-1")).value!.bytes.fill(0);
            assert.equal(hex((await kv(store).get(PID, "cart-1")).value!.bytes), hex(text("original")));
          }));

        test("a write with a stale or future expected version is rejected with VersionConflictError and changes nothing", () =>
          withStore(async (store) => {
            await kv(store).write(valueWrite("cart-1", 0, state(text("v1"))));
            await kv(store).write(valueWrite("cart-1", 1, state(text("v2"))));
            const writes = store.stats().writes;
            for (const expected of [0, 1, 3, 10]) {
              for (const value of [state(text("x")), undefined]) {
                await assert.rejects(kv(store).write(valueWrite("cart-1", expected, value)), (error: unknown) => {
                  assert.ok(error instanceof VersionConflictError);
                  assert.equal(error.persistenceId, PID);
                  assert.equal(error.entityId, "cart-1");
                  assert.equal(error.expectedVersion, expected);
                  assert.equal(error.actualVersion, 2);
                  return true;
                });
              }
            }
            await assert.rejects(kv(store).write(valueWrite("cart-new", 1, state(text("x")))), VersionConflictError);
            assert.deepEqual(plainValue(await kv(store).get(PID, "cart-1")), { version: 2, typeUrl: STATE_TYPE, hex: hex(text("v2")) });
            assert.deepEqual(await kv(store).get(PID, "cart-new"), { version: 0, value: undefined });
            assert.deepEqual(await kv(store).entityIds(PID), ["cart-1"]);
            assert.equal(store.stats().writes, writes);
          }));

        test("of concurrent writers expecting the same version, exactly one wins", () =>
          withStore(async (store) => {
            await kv(store).write(valueWrite("cart-1", 0, state(text("v1"))));
            const results = await Promise.allSettled(
              ["a", "b", "c", "d"].map((w) => kv(store).write(valueWrite("cart-1", 1, w === "d" ? undefined : state(text(w))))),
            );
            const winners = results.flatMap((r, i) => (r.status === "fulfilled" ? [i] : []));
            assert.equal(winners.length, 1);
            assert.equal((results[winners[0]!] as PromiseFulfilledResult<number>).value, 2);
            for (const r of results) {
              if (r.status === "rejected") {
                assert.ok(r.reason instanceof VersionConflictError);
                assert.equal(r.reason.actualVersion, 2);
              }
            }
            const stored = await kv(store).get(PID, "cart-1");
            assert.equal(stored.version, 2);
            assert.equal(stored.value && Buffer.from(stored.value.bytes).toString(), ["a", "b", "c", undefined][winners[0]!]);
          }));

        test("writes issued back to back for one entity, without awaiting, all land in call order", () =>
          withStore(async (store) => {
            const versions = await Promise.all(
              ["a", "b", "c"].map((v, i) => kv(store).write(valueWrite("cart-1", i, state(text(v))))),
            );
            assert.deepEqual(versions, [1, 2, 3]);
            assert.deepEqual(plainValue(await kv(store).get(PID, "cart-1")), { version: 3, typeUrl: STATE_TYPE, hex: hex(text("c")) });
          }));

        test("a delete keeps a tombstone: the version goes on, the value is gone, entityIds leaves it out", () =>
          withStore(async (store) => {
            await kv(store).write(valueWrite("cart-1", 0, state(text("v1"))));
            await kv(store).write(valueWrite("cart-2", 0, state(text("other"))));
            assert.equal(await kv(store).write(valueWrite("cart-1", 1, undefined)), 2);
            assert.deepEqual(await kv(store).get(PID, "cart-1"), { version: 2, value: undefined });
            assert.deepEqual(await kv(store).entityIds(PID), ["cart-2"]);

            // No ABA: a writer that saw the entity missing before it existed cannot resurrect it.
            await assert.rejects(kv(store).write(valueWrite("cart-1", 0, state(text("stale")))), (error: unknown) => {
              assert.ok(error instanceof VersionConflictError);
              assert.equal(error.actualVersion, 2);
              return true;
            });
            assert.equal(await kv(store).write(valueWrite("cart-1", 2, undefined)), 3); // deleting again is a write too
            assert.equal(await kv(store).write(valueWrite("cart-1", 3, state(text("back")))), 4);
            assert.deepEqual(plainValue(await kv(store).get(PID, "cart-1")), { version: 4, typeUrl: STATE_TYPE, hex: hex(text("back")) });
            assert.deepEqual(await kv(store).entityIds(PID), ["cart-1", "cart-2"]);

            // Deleting an entity never written leaves a tombstone at version 1.
            assert.equal(await kv(store).write(valueWrite("cart-3", 0, undefined)), 1);
            assert.deepEqual(await kv(store).get(PID, "cart-3"), { version: 1, value: undefined });
            assert.deepEqual(await kv(store).entityIds(PID), ["cart-1", "cart-2"]);
          }));

        test("values are keyed by persistence id and entity id together, apart from the journal and the other namespace", () =>
          withStore(async (store) => {
            const other = namespace === "values" ? store.crdts : store.values;
            await Promise.all([
              kv(store).write({ ...valueWrite("c", 0, state(text("ab/c"))), persistenceId: "ab" }),
              kv(store).write({ ...valueWrite("bc", 0, state(text("a/bc"))), persistenceId: "a" }),
              kv(store).write(valueWrite("cart-1", 0, state(text("mine")))),
              other.write(valueWrite("cart-2", 0, state(text("theirs")))),
              store.journal.append(append("cart-3", 0, [payload("journal")])),
            ]);
            assert.equal(hex((await kv(store).get("ab", "c")).value!.bytes), hex(text("ab/c")));
            assert.equal(hex((await kv(store).get("a", "bc")).value!.bytes), hex(text("a/bc")));
            assert.deepEqual(await kv(store).get("a", "b/c"), { version: 0, value: undefined });
            assert.deepEqual(await kv(store).entityIds(PID), ["cart-1"]);
            assert.deepEqual(await other.entityIds(PID), ["cart-2"]);
            assert.deepEqual(await other.get(PID, "cart-1"), { version: 0, value: undefined });
            assert.deepEqual(await kv(store).get(PID, "cart-3"), { version: 0, value: undefined });
            assert.deepEqual(await store.journal.entityIds(PID), ["cart-3"]);
          }));

        test("entityIds() lists entities with a value in code point order", () =>
          withStore(async (store) => {
            const ids = ["b", "\u{1F600}", "a", "\uFFFD", "A", "a b", "ü"];
            await Promise.all(ids.map((id) => kv(store).write(valueWrite(id, 0, state(text(id))))));
            assert.deepEqual(await kv(store).entityIds(PID), ["A", "a", "a b", "b", "ü", "\uFFFD", "\u{1F600}"]);
            assert.deepEqual(await kv(store).entityIds("nothing.Here"), []);
          }));

        test("a malformed write is rejected with a RangeError and writes nothing", () =>
          withStore(async (store) => {
            for (const expected of [-1, 0.5, Number.NaN, Number.POSITIVE_INFINITY]) {
              await assert.rejects(kv(store).write(valueWrite("cart-1", expected, state(text("a")))), RangeError);
            }
            await assert.rejects(kv(store).write(valueWrite("cart\0", 0, state(text("a")))), RangeError);
            await assert.rejects(kv(store).write({ ...valueWrite("cart-1", 0, state(text("a"))), persistenceId: "\0" }), RangeError);
            await assert.rejects(kv(store).write(valueWrite("cart-1", 0, state(text("a"), "x\0y"))), RangeError);
            assert.deepEqual(await kv(store).get(PID, "cart-1"), { version: 0, value: undefined });
            assert.equal(store.stats().writes, 0);
          }));

        test("close commits the writes still pending, and every later call rejects with StoreUnavailableError", async () => {
          const store = await open();
          try {
            const pending = [
              kv(store).write(valueWrite("cart-1", 0, state(text("a")))),
              kv(store).write(valueWrite("cart-1", 1, state(text("b")))),
              kv(store).write(valueWrite("cart-2", 0, undefined)),
            ];
            await store.close();
            assert.deepEqual(await Promise.all(pending), [1, 2, 1]);
            assert.equal(store.stats().writes, 3);
            await assert.rejects(kv(store).write(valueWrite("cart-1", 2, state(text("late")))), StoreUnavailableError);
            await assert.rejects(kv(store).get(PID, "cart-1"), StoreUnavailableError);
            await assert.rejects(kv(store).entityIds(PID), StoreUnavailableError);
          } finally {
            await store.close();
          }
        });
      });
    }

    describe("reads", () => {
      test("events() reads from a sequence on, including events a snapshot covers", () =>
        withStore(async (store) => {
          await store.journal.append({ ...append("cart-1", 0, ["a", "b", "c"].map(payload)), snapshot: snapshot(text("s")) });
          await store.journal.append(append("cart-1", 3, ["d", "e"].map(payload)));
          const from = async (n?: number) => (await store.journal.events(PID, "cart-1", n)).map((e) => e.sequence);
          assert.deepEqual(await from(), [1, 2, 3, 4, 5]);
          assert.deepEqual(await from(0), [1, 2, 3, 4, 5]);
          assert.deepEqual(await from(1), [1, 2, 3, 4, 5]);
          assert.deepEqual(await from(3), [3, 4, 5]);
          assert.deepEqual(await from(5), [5]);
          assert.deepEqual(await from(6), []);
          assert.deepEqual(plain(await store.journal.events(PID, "cart-1", 4)), [
            { sequence: 4, typeUrl: EVENT_TYPE, hex: hex(text("d")) },
            { sequence: 5, typeUrl: EVENT_TYPE, hex: hex(text("e")) },
          ]);
        }));

      test("entityIds() lists each entity of one persistence id once, in code point order", () =>
        withStore(async (store) => {
          // U+FFFD sorts before U+1F600 by code point, but after it by UTF-16 code unit.
          const ids = ["b", "\u{1F600}", "a", "\uFFFD", "A", "a b", "ü"];
          for (const id of ids) {
            await store.journal.append(append(id, 0, [payload("1")]));
            await store.journal.append(append(id, 1, [payload("2")]));
          }
          await store.journal.append({ ...append("elsewhere", 0, [payload("x")]), persistenceId: "other.Service" });
          assert.deepEqual(await store.journal.entityIds(PID), ["A", "a", "a b", "b", "ü", "\uFFFD", "\u{1F600}"]);
          assert.deepEqual(await store.journal.entityIds("other.Service"), ["elsewhere"]);
          assert.deepEqual(await store.journal.entityIds("nothing.Here"), []);
        }));
    });

    describe("load", () => {
      test("many concurrent appends to many entities all land, each journal contiguous and in order", () =>
        withStore(async (store) => {
          const entities = 100;
          const appendsPerEntity = 5;
          const appends: Promise<void>[] = [];
          for (let round = 0; round < appendsPerEntity; round++) {
            for (let e = 0; e < entities; e++) {
              appends.push(store.journal.append(append(`cart-${e}`, round * 2, [payload(`${e}.${round}.a`), payload(`${e}.${round}.b`)])));
            }
          }
          await Promise.all(appends);

          assert.equal((await store.journal.entityIds(PID)).length, entities);
          for (let e = 0; e < entities; e++) {
            const recovered = await store.journal.recover(PID, `cart-${e}`);
            assert.equal(recovered.sequence, appendsPerEntity * 2);
            assert.deepEqual(
              recovered.events.map((x) => [x.sequence, Buffer.from(x.bytes).toString()]),
              Array.from({ length: appendsPerEntity * 2 }, (_, i) => [i + 1, `${e}.${i >> 1}.${i % 2 === 0 ? "a" : "b"}`]),
            );
          }
          const stats = store.stats();
          assert.equal(stats.writes, entities * appendsPerEntity);
          assert.ok(stats.batches >= 1 && stats.batches <= stats.writes, `batches ${stats.batches}`);
        }));

      test("many concurrent value writes to many entities all land, in call order per entity", () =>
        withStore(async (store) => {
          const entities = 100;
          const rounds = 5;
          const writes: Promise<number>[] = [];
          for (let round = 0; round < rounds; round++) {
            for (let e = 0; e < entities; e++) {
              const kv = e % 2 === 0 ? store.values : store.crdts;
              writes.push(kv.write(valueWrite(`cart-${e}`, round, state(text(`${e}.${round}`)))));
            }
          }
          const versions = await Promise.all(writes);
          assert.deepEqual(
            versions,
            writes.map((_, i) => Math.floor(i / entities) + 1),
          );
          for (let e = 0; e < entities; e++) {
            const kv = e % 2 === 0 ? store.values : store.crdts;
            assert.deepEqual(plainValue(await kv.get(PID, `cart-${e}`)), {
              version: rounds,
              typeUrl: STATE_TYPE,
              hex: hex(text(`${e}.${rounds - 1}`)),
            });
          }
          assert.equal(store.stats().writes, entities * rounds);
        }));

      test("stats count each committed append as one write, and never rejected ones", () =>
        withStore(async (store) => {
          assert.deepEqual(store.stats(), { batches: 0, writes: 0 });
          await store.journal.append(append("cart-1", 0, [payload("a"), payload("b")]));
          await store.journal.append(append("cart-1", 2, [payload("c")]));
          await assert.rejects(store.journal.append(append("cart-1", 0, [payload("x")])), SequenceConflictError);
          assert.deepEqual(store.stats(), { batches: 2, writes: 2 });
        }));

      test("stats count appends and value writes alike when they are issued together, and never rejected ones", () =>
        withStore(async (store) => {
          await store.values.write(valueWrite("cart-v", 0, state(text("v1"))));
          const before = store.stats();
          const results = await Promise.allSettled<unknown>([
            store.journal.append(append("cart-1", 0, [payload("a"), payload("b")])),
            store.values.write(valueWrite("cart-v", 1, state(text("v2")))),
            store.journal.append(append("cart-1", 0, [payload("stale")])), // conflicts
            store.crdts.write(valueWrite("cart-c", 0, state(text("c1")))),
            store.values.write(valueWrite("cart-v", 1, state(text("stale")))), // conflicts
            store.journal.append(append("cart-2", 0, [payload("c")])),
            store.values.write(valueWrite("cart-w", 0, undefined)),
          ]);
          assert.deepEqual(
            results.map((r) => r.status),
            ["fulfilled", "fulfilled", "rejected", "fulfilled", "rejected", "fulfilled", "fulfilled"],
          );
          const after = store.stats();
          assert.equal(after.writes - before.writes, 5);
          const batches = after.batches - before.batches;
          assert.ok(batches >= 1 && batches <= 5, `batches ${batches}`);
        }));

      test("onCommit reports each committed batch once, with its write count and duration, as stats count them", () =>
        withStore(async (store) => {
          const seen: CommittedBatch[] = [];
          const stop = store.onCommit((batch) => seen.push(batch));
          // A throwing listener changes nothing for the writes or the other listeners.
          store.onCommit(() => {
            throw new Error("a broken observer");
          });

          await store.journal.append(append("cart-1", 0, [payload("a"), payload("b")]));
          assert.equal(seen.length, 1);
          assert.equal(seen[0]!.writes, 1);
          assert.ok(Number.isFinite(seen[0]!.seconds) && seen[0]!.seconds >= 0, `seconds ${seen[0]!.seconds}`);
          await assert.rejects(store.journal.append(append("cart-1", 0, [payload("x")])), SequenceConflictError);
          assert.equal(seen.length, 1, "a batch whose only write was rejected committed nothing");

          // Concurrent appends for many entities, issued in one tick.
          seen.length = 0;
          const before = store.stats();
          const entities = 40;
          await Promise.all(
            Array.from({ length: entities }, (_, e) => store.journal.append(append(`cart-c${e}`, 0, [payload(`${e}`)]))),
          );
          const after = store.stats();
          assert.equal(seen.length, after.batches - before.batches);
          assert.equal(
            seen.reduce((sum, b) => sum + b.writes, 0),
            entities,
          );
          for (const batch of seen) {
            assert.ok(Number.isInteger(batch.writes) && batch.writes >= 1, `writes ${batch.writes}`);
            assert.ok(Number.isFinite(batch.seconds) && batch.seconds >= 0, `seconds ${batch.seconds}`);
          }
          const largest = Math.max(...seen.map((b) => b.writes));
          if (options.groupCommit) assert.ok(largest > 1, `no batch of several writes: ${JSON.stringify(seen)}`);
          else assert.equal(largest, 1);

          // Once removed, a listener hears nothing more.
          stop();
          seen.length = 0;
          await store.values.write(valueWrite("cart-v", 0, state(text("v1"))));
          assert.deepEqual(seen, []);
        }));
    });

    describe("close", () => {
      test("close commits the appends still pending, and every later call rejects with StoreUnavailableError", async () => {
        const store = await open();
        try {
          const pending = [
            store.journal.append(append("cart-1", 0, [payload("a")])),
            store.journal.append(append("cart-1", 1, [payload("b")])),
            store.journal.append(append("cart-2", 0, [payload("c")])),
          ];
          await store.close();
          await Promise.all(pending);
          assert.equal(store.stats().writes, 3);

          await assert.rejects(store.journal.append(append("cart-1", 2, [payload("late")])), StoreUnavailableError);
          await assert.rejects(store.journal.recover(PID, "cart-1"), StoreUnavailableError);
          await assert.rejects(store.journal.events(PID, "cart-1"), StoreUnavailableError);
          await assert.rejects(store.journal.entityIds(PID), StoreUnavailableError);
          await store.close(); // closing twice is harmless
        } finally {
          await store.close();
        }
      });
    });
  });
}

function valueWrite(entityId: string, expectedVersion: number, value: StoredPayload | undefined): ValueWrite {
  return { persistenceId: PID, entityId, expectedVersion, value };
}

function state(bytes: Uint8Array, typeUrl = STATE_TYPE): StoredPayload {
  return { typeUrl, bytes };
}

function plainValue(stored: { version: number; value: StoredPayload | undefined }) {
  const v = stored.value;
  return { version: stored.version, typeUrl: v?.typeUrl, hex: v && hex(v.bytes) };
}

function append(entityId: string, expectedSequence: number, events: StoredPayload[]): JournalAppend {
  return { persistenceId: PID, entityId, expectedSequence, events };
}

function payload(value: string): StoredPayload {
  return { typeUrl: EVENT_TYPE, bytes: text(value) };
}

function event(bytes: Uint8Array, typeUrl = EVENT_TYPE): StoredPayload {
  return { typeUrl, bytes };
}

function snapshot(bytes: Uint8Array): StoredPayload {
  return { typeUrl: SNAPSHOT_TYPE, bytes };
}

function text(value: string): Uint8Array {
  return new TextEncoder().encode(value);
}

// Buffer.from copies exactly the view's bytes, whatever its byteOffset.
function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("hex");
}

// Stores may return Buffer or plain Uint8Array: compare what they hold, not their class.
function plain(events: readonly StoredEvent[]): { sequence: number; typeUrl: string; hex: string }[] {
  return events.map((e) => ({ sequence: e.sequence, typeUrl: e.typeUrl, hex: hex(e.bytes) }));
}

function plainSnapshot(recovered: { snapshot: StoredEvent | undefined }) {
  const s = recovered.snapshot;
  return s && { sequence: s.sequence, typeUrl: s.typeUrl, hex: hex(s.bytes) };
}

async function contents(store: Store, entityId: string, persistenceId = PID): Promise<string[]> {
  return (await store.journal.events(persistenceId, entityId)).map((e) => Buffer.from(e.bytes).toString());
}
