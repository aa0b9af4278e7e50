// The one test suite every store runs (invariants 1 and 2 as the store sees them). Each test opens
// a fresh store and tries to break a rule of the contract in store.ts.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import {
  SequenceConflictError,
  StoreUnavailableError,
  VersionConflictError,
  type DeadLetter,
  type DeadLetterInput,
  type JournalAppend,
  type CommittedBatch,
  type KeyValueStore,
  type Store,
  type StoredEvent,
  type StoredPayload,
  type TopicMessage,
  type TopicPublish,
  type ValueWrite,
} from "./store.js";

const PID = "shop.ShoppingCart";
const EVENT_TYPE = "type.googleapis.com/shop.ItemAdded";
const SNAPSHOT_TYPE = "type.googleapis.com/shop.Cart";
const STATE_TYPE = "type.googleapis.com/shop.CartState";
const SOURCE = "shop.ShoppingCart/cart-1";
const MESSAGE_TYPE = "shop.ItemAdded";

export interface ContractOptions {
  /** The store commits concurrent writes together (SQLite, PostgreSQL); the memory store does not. */
  readonly groupCommit?: boolean;
  /**
   * Other processes may write to the store (PostgreSQL): onExternalWrite may call its listeners,
   * also for this store's own writes. Without it (memory, SQLite), it must never call them.
   */
  readonly sharedByProcesses?: boolean;
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

    describe("event log", () => {
      test("an unknown persistence id has an empty event log with head 0", () =>
        withStore(async (store) => {
          assert.deepEqual(await store.journal.eventLog(PID, 0, 100), []);
          assert.equal(await store.journal.eventLogHead(PID), 0);
        }));

      test("the event log holds every event of the persistence id's entities in commit order, with entity, sequence, type, exact bytes, offset and commit time", () =>
        withStore(async (store) => {
          const everyByte = new Uint8Array(256).map((_, i) => i);
          const view = new Uint8Array([0xee, 1, 2, 3, 0xee]).subarray(1, 4);
          const before = Date.now();
          await store.journal.append({ ...append("cart-1", 0, [payload("a"), event(everyByte)]), snapshot: snapshot(text("s")) });
          await store.journal.append(append("cart-2", 0, [event(view, "type.googleapis.com/shop.ItemRemoved")]));
          await store.journal.append({ ...append("cart-9", 0, [payload("elsewhere")]), persistenceId: "other.Service" });
          await store.journal.append(append("cart-1", 2, [event(new Uint8Array(0))]));
          const after = Date.now();

          const log = await store.journal.eventLog(PID, 0, 100);
          assert.deepEqual(
            log.map((e) => [e.entityId, e.sequence, e.typeUrl, hex(e.bytes)]),
            [
              ["cart-1", 1, EVENT_TYPE, hex(text("a"))],
              ["cart-1", 2, EVENT_TYPE, hex(everyByte)],
              ["cart-2", 1, "type.googleapis.com/shop.ItemRemoved", "010203"],
              ["cart-1", 3, EVENT_TYPE, ""],
            ],
          );
          for (const e of log) {
            assert.ok(e.bytes instanceof Uint8Array);
            assert.ok(Number.isSafeInteger(e.offset) && e.offset > 0, `offset ${e.offset}`);
            // The store's clock may be the database's: allow for a little skew.
            assert.ok(Number.isSafeInteger(e.timestamp), `timestamp ${e.timestamp}`);
            assert.ok(e.timestamp >= before - 1_000 && e.timestamp <= after + 1_000, `timestamp ${e.timestamp} not in [${before}, ${after}]`);
          }
          assertIncreasing(log.map((e) => e.offset));
          for (let i = 1; i < log.length; i++) assert.ok(log[i]!.timestamp >= log[i - 1]!.timestamp, "commit times go back");
          assert.equal(await store.journal.eventLogHead(PID), log.at(-1)!.offset);

          const other = await store.journal.eventLog("other.Service", 0, 100);
          assert.deepEqual(
            other.map((e) => [e.entityId, e.sequence, hex(e.bytes)]),
            [["cart-9", 1, hex(text("elsewhere"))]],
          );
          assert.equal(await store.journal.eventLogHead("other.Service"), other[0]!.offset);
          assert.ok(!log.some((e) => e.offset === other[0]!.offset), "an offset was given twice");
          // Between cart-2's event and cart-1's third: offsets follow commit order across persistence ids.
          assert.ok(other[0]!.offset > log[2]!.offset && other[0]!.offset < log[3]!.offset);
        }));

      test("reading after an offset, at most `limit` events at a time, pages through the log without gaps or repeats", () =>
        withStore(async (store) => {
          for (let round = 0; round < 4; round++) {
            for (const entityId of ["cart-a", "cart-b", "cart-c"]) {
              await store.journal.append(append(entityId, round * 2, [payload(`${entityId}.${round}.1`), payload(`${entityId}.${round}.2`)]));
            }
          }
          const full = await store.journal.eventLog(PID, 0, 1_000);
          assert.equal(full.length, 24);
          assert.deepEqual(
            full.map((e) => Buffer.from(e.bytes).toString()),
            [0, 1, 2, 3].flatMap((round) => ["cart-a", "cart-b", "cart-c"].flatMap((id) => [`${id}.${round}.1`, `${id}.${round}.2`])),
          );
          const paged: number[] = [];
          let last = 0;
          for (;;) {
            const page = await store.journal.eventLog(PID, last, 5);
            assert.ok(page.length <= 5);
            if (page.length === 0) break;
            paged.push(...page.map((e) => e.offset));
            last = page.at(-1)!.offset;
          }
          assert.deepEqual(
            paged,
            full.map((e) => e.offset),
          );
          assert.deepEqual(
            (await store.journal.eventLog(PID, full[9]!.offset, 3)).map((e) => e.offset),
            full.slice(10, 13).map((e) => e.offset),
          );
          assert.equal((await store.journal.eventLog(PID, full[9]!.offset, 100)).length, 14);
          assert.deepEqual(await store.journal.eventLog(PID, full.at(-1)!.offset, 10), []);
          assert.deepEqual(await store.journal.eventLog(PID, full.at(-1)!.offset + 1_000, 10), []);
          assert.deepEqual(await store.journal.eventLog(PID, 0, 0), []);
        }));

      test("a reader that remembers its last offset sees every later append exactly once, whatever the entity or persistence id", () =>
        withStore(async (store) => {
          const pids = [PID, "other.Service"];
          const seen = new Map<string, string[]>(pids.map((p) => [p, []]));
          const last = new Map<string, number>(pids.map((p) => [p, 0]));
          const heads = new Map<string, number>();
          const follow = async (persistenceId: string) => {
            for (const e of await store.journal.eventLog(persistenceId, last.get(persistenceId)!, 1_000)) {
              assert.ok(e.offset > last.get(persistenceId)!);
              last.set(persistenceId, e.offset);
              seen.get(persistenceId)!.push(`${e.entityId}:${e.sequence}`);
            }
          };
          const written = new Map<string, string[]>(pids.map((p) => [p, []]));
          let previousOffset = 0;
          for (let i = 0; i < 24; i++) {
            const persistenceId = pids[i % 2]!;
            const entityId = `cart-${i % 5}`;
            const sequence = heads.get(`${persistenceId}/${entityId}`) ?? 0;
            await store.journal.append({ ...append(entityId, sequence, [payload(`${i}`)]), persistenceId });
            heads.set(`${persistenceId}/${entityId}`, sequence + 1);
            written.get(persistenceId)!.push(`${entityId}:${sequence + 1}`);
            // An acknowledged append is at the head of its log, after every offset given before.
            const head = await store.journal.eventLogHead(persistenceId);
            assert.ok(head > previousOffset, `head ${head} after ${previousOffset}`);
            previousOffset = head;
            if (i % 3 === 0) await follow(pids[i % 2]!);
          }
          // Concurrent appends for many entities: each lands in the log once.
          await Promise.all(
            Array.from({ length: 20 }, (_, e) => store.journal.append({ ...append(`burst-${e}`, 0, [payload("x"), payload("y")]), persistenceId: PID })),
          );
          for (let e = 0; e < 20; e++) written.get(PID)!.push(`burst-${e}:1`, `burst-${e}:2`);
          for (const p of pids) await follow(p);
          for (const p of pids) {
            assert.deepEqual([...seen.get(p)!].sort(), [...written.get(p)!].sort());
            assert.equal(new Set(seen.get(p)).size, seen.get(p)!.length, "an event was read twice");
          }
          // Within an entity, the log has the events in sequence order.
          const log = await store.journal.eventLog(PID, 0, 1_000);
          for (let e = 0; e < 20; e++) {
            assert.deepEqual(
              log.filter((x) => x.entityId === `burst-${e}`).map((x) => x.sequence),
              [1, 2],
            );
          }
        }));

      test("appends that were rejected leave nothing in the event log", () =>
        withStore(async (store) => {
          await store.journal.append(append("cart-1", 0, [payload("a")]));
          const head = await store.journal.eventLogHead(PID);
          await assert.rejects(store.journal.append(append("cart-1", 0, [payload("stale")])), SequenceConflictError);
          await assert.rejects(store.journal.append(append("cart\0", 0, [payload("bad")])), RangeError);
          await assert.rejects(store.journal.append(append("cart-2", 0, [])), RangeError);
          assert.equal(await store.journal.eventLogHead(PID), head);
          assert.deepEqual(
            (await store.journal.eventLog(PID, 0, 100)).map((e) => Buffer.from(e.bytes).toString()),
            ["a"],
          );
          await store.journal.append(append("cart-1", 1, [payload("b")]));
          assert.ok((await store.journal.eventLogHead(PID)) > head);
        }));

      test("a malformed offset or limit, or a NUL in the persistence id, is rejected with a RangeError", () =>
        withStore(async (store) => {
          await store.journal.append(append("cart-1", 0, [payload("a")]));
          for (const bad of [-1, 0.5, Number.NaN, Number.POSITIVE_INFINITY]) {
            await assert.rejects(store.journal.eventLog(PID, bad, 10), RangeError, `afterOffset ${bad}`);
            await assert.rejects(store.journal.eventLog(PID, 0, bad), RangeError, `limit ${bad}`);
          }
          await assert.rejects(store.journal.eventLog("shop\0", 0, 10), RangeError);
          await assert.rejects(store.journal.eventLogHead("shop\0"), RangeError);
          assert.equal((await store.journal.eventLog(PID, 0, 10)).length, 1);
        }));

      test("callers cannot change the journal by mutating bytes the event log gave them", () =>
        withStore(async (store) => {
          await store.journal.append(append("cart-1", 0, [payload("original")]));
          (await store.journal.eventLog(PID, 0, 10))[0]!.bytes.fill(0);
          assert.equal(hex((await store.journal.eventLog(PID, 0, 10))[0]!.bytes), hex(text("original")));
          assert.deepEqual(await contents(store, "cart-1"), ["original"]);
        }));
    });

    describe("topics", () => {
      test("publish resolves with increasing offsets, and read returns each message with every field exactly, in offset order", () =>
        withStore(async (store) => {
          const everyByte = new Uint8Array(256).map((_, i) => i);
          const view = new Uint8Array([0xee, 1, 2, 3, 0xee]).subarray(1, 4);
          const first = message("orders", "m-1", { data: everyByte, subject: "", time: 1_700_000_000_123 });
          const second = message("orders", "m-2", { data: view, type: "shop.Other", contentType: "application/json", subject: "cart-2" });
          const third = message("payments", "m-1", { data: new Uint8Array(0), source: "other-source" });
          const offsets = await store.topics.publish([first, second, third]);
          assert.equal(offsets.length, 3);
          for (const offset of offsets) assert.ok(Number.isSafeInteger(offset) && offset > 0, `offset ${offset}`);
          assertIncreasing(offsets.slice(0, 2));
          const more = await store.topics.publish([message("orders", "m-3")]);
          assert.ok(more[0]! > offsets[1]!);

          const orders = await store.topics.read("orders", 0, 10);
          assert.deepEqual(orders.map(plainMessage), [
            plainMessage({ ...first, offset: offsets[0]! }),
            plainMessage({ ...second, offset: offsets[1]! }),
            plainMessage({ ...message("orders", "m-3"), offset: more[0]! }),
          ]);
          assert.equal(hex(orders[1]!.data), "010203");
          for (const m of orders) assert.ok(m.data instanceof Uint8Array);
          assert.deepEqual((await store.topics.read("payments", 0, 10)).map(plainMessage), [plainMessage({ ...third, offset: offsets[2]! })]);
          assert.deepEqual(await store.topics.read("nothing-here", 0, 10), []);
        }));

      test("read pages through a topic after an offset, at most `limit` messages at a time", () =>
        withStore(async (store) => {
          const offsets: number[] = [];
          for (let i = 0; i < 4; i++) {
            offsets.push(...(await store.topics.publish([0, 1, 2].map((j) => message("t", `${i}.${j}`)))));
            await store.topics.publish([message("other", `${i}`)]);
          }
          assertIncreasing(offsets);
          const paged: number[] = [];
          let last = 0;
          for (;;) {
            const page = await store.topics.read("t", last, 5);
            assert.ok(page.length <= 5);
            if (page.length === 0) break;
            assert.deepEqual(
              page.map((m) => m.topic),
              page.map(() => "t"),
            );
            paged.push(...page.map((m) => m.offset));
            last = page.at(-1)!.offset;
          }
          assert.deepEqual(paged, offsets);
          assert.deepEqual(
            (await store.topics.read("t", offsets[3]!, 2)).map((m) => m.id),
            ["1.1", "1.2"],
          );
          assert.deepEqual(await store.topics.read("t", offsets.at(-1)!, 10), []);
          assert.deepEqual(await store.topics.read("t", 0, 0), []);
        }));

      test("publishing a (topic, source, id) again stores nothing and resolves with the stored offset, also within one call", () =>
        withStore(async (store) => {
          const [original] = await store.topics.publish([message("t", "m-1", { data: text("original") })]);
          assert.deepEqual(await store.topics.publish([message("t", "m-1", { data: text("changed"), type: "shop.Changed" })]), [original]);

          const [b, again, bAgain, c] = await store.topics.publish([
            message("t", "m-2", { data: text("b") }),
            message("t", "m-1", { data: text("again") }),
            message("t", "m-2", { data: text("b twice") }),
            message("t", "m-3", { data: text("c") }),
          ]);
          assert.equal(again, original);
          assert.equal(bAgain, b);
          assert.ok(original! < b! && b! < c!);

          // The same id from another source, or in another topic, is another message.
          const [otherSource, otherTopic] = await store.topics.publish([
            message("t", "m-1", { source: "elsewhere", data: text("other source") }),
            message("u", "m-1", { data: text("other topic") }),
          ]);
          assert.ok(otherSource! > c! && otherTopic! > c!);
          assert.notEqual(otherSource, otherTopic);

          assert.deepEqual(
            (await store.topics.read("t", 0, 10)).map((m) => [m.offset, m.source, m.id, Buffer.from(m.data).toString(), m.type]),
            [
              [original, SOURCE, "m-1", "original", MESSAGE_TYPE],
              [b, SOURCE, "m-2", "b", MESSAGE_TYPE],
              [c, SOURCE, "m-3", "c", MESSAGE_TYPE],
              [otherSource, "elsewhere", "m-1", "other source", MESSAGE_TYPE],
            ],
          );
          assert.deepEqual(await store.topics.topics(), [
            { topic: "t", messages: 4, head: otherSource },
            { topic: "u", messages: 1, head: otherTopic },
          ]);
        }));

      test("a publish with a malformed message is rejected with a RangeError and stores none of its messages", () =>
        withStore(async (store) => {
          const bad: Partial<TopicPublish>[] = [
            { topic: "" },
            { topic: "t\0" },
            { id: "m\0" },
            { source: "\0" },
            { type: "shop.\0" },
            { subject: "a\0b" },
            { contentType: "text/plain\0" },
            { time: 1.5 },
            { time: Number.NaN },
            { time: Number.POSITIVE_INFINITY },
          ];
          for (const fields of bad) {
            await assert.rejects(
              store.topics.publish([message("t", "good-1"), message("t", "bad", fields), message("t", "good-2")]),
              RangeError,
              JSON.stringify(fields),
            );
          }
          assert.deepEqual(await store.topics.read("t", 0, 10), []);
          assert.deepEqual(await store.topics.topics(), []);
          assert.deepEqual(store.stats(), { batches: 0, writes: 0 });
          // A bad publish issued together with good ones fails alone.
          const results = await Promise.allSettled([
            store.topics.publish([message("t", "good-1")]),
            store.topics.publish([message("t", "bad", { id: "\0" })]),
            store.topics.publish([message("t", "good-2")]),
          ]);
          assert.deepEqual(
            results.map((r) => r.status),
            ["fulfilled", "rejected", "fulfilled"],
          );
          assert.deepEqual(
            (await store.topics.read("t", 0, 10)).map((m) => m.id),
            ["good-1", "good-2"],
          );
        }));

      test("a publish of no messages resolves with no offsets and writes nothing", () =>
        withStore(async (store) => {
          const seen: CommittedBatch[] = [];
          store.onCommit((batch) => seen.push(batch));
          assert.deepEqual(await store.topics.publish([]), []);
          assert.deepEqual(store.stats(), { batches: 0, writes: 0 });
          assert.deepEqual(seen, []);
          assert.deepEqual(await store.topics.topics(), []);
        }));

      test("each publish call counts as one write in stats and onCommit; concurrent publishes all land, with distinct offsets in call order", () =>
        withStore(async (store) => {
          const seen: CommittedBatch[] = [];
          store.onCommit((batch) => seen.push(batch));
          const calls = 30;
          const results = await Promise.all(
            Array.from({ length: calls }, (_, i) =>
              store.topics.publish([message("t", `${i}.a`), message(i % 2 === 0 ? "t" : "u", `${i}.b`), message("t", `${i}.a`)]),
            ),
          );
          for (const [a, b, aAgain] of results) {
            assert.ok(a! < b!);
            assert.equal(aAgain, a);
          }
          // Publishes issued back to back apply in call order.
          for (const topic of ["t", "u"]) {
            assertIncreasing(results.flatMap(([a, b], i) => [...(topic === "t" ? [a!] : []), ...((i % 2 === 0 ? "t" : "u") === topic ? [b!] : [])]));
          }
          const all = results.flatMap(([a, b]) => [a!, b!]);
          assert.equal(new Set(all).size, all.length);

          assert.deepEqual(store.stats().writes, calls);
          assert.equal(
            seen.reduce((n, batch) => n + batch.writes, 0),
            calls,
          );
          assert.equal(seen.length, store.stats().batches);
          if (options.groupCommit) assert.ok(seen.length < calls, `${seen.length} batches for ${calls} publishes`);

          const t = await store.topics.read("t", 0, 1_000);
          assert.deepEqual(
            t.map((m) => m.id),
            results.flatMap((_, i) => (i % 2 === 0 ? [`${i}.a`, `${i}.b`] : [`${i}.a`])),
          );
          assertIncreasing(t.map((m) => m.offset));
          assert.equal((await store.topics.read("u", 0, 1_000)).length, calls / 2);
        }));

      test("publishes, appends and value writes issued together all land, and a publish acknowledged later gets a larger offset", () =>
        withStore(async (store) => {
          const results = await Promise.all<unknown>([
            store.journal.append(append("cart-1", 0, [payload("a")])),
            store.topics.publish([message("t", "1")]),
            store.values.write(valueWrite("cart-1", 0, state(text("v")))),
            store.topics.publish([message("t", "2")]),
            store.crdts.write(valueWrite("cart-1", 0, state(text("c")))),
          ]);
          assert.equal(store.stats().writes, 5);
          let last = (results[3] as number[])[0]!;
          for (let i = 3; i < 8; i++) {
            const [offset] = await store.topics.publish([message(i % 2 === 0 ? "t" : "u", `${i}`)]);
            assert.ok(offset! > last, `${offset} after ${last}`);
            last = offset!;
          }
          assert.deepEqual(await contents(store, "cart-1"), ["a"]);
          assert.equal((await store.values.get(PID, "cart-1")).version, 1);
        }));

      test("trim deletes the messages of every topic older than a time, and keeps each topic's head: offsets are never reused", () =>
        withStore(async (store) => {
          const [o1, o2, o3] = await store.topics.publish([
            message("t", "1", { time: 1_000 }),
            message("t", "2", { time: 2_000 }),
            message("t", "3", { time: 3_000 }),
          ]);
          const [u1] = await store.topics.publish([message("u", "1", { time: 1_500 })]);
          assert.equal(await store.topics.trim(0), 0);
          assert.equal(await store.topics.trim(2_000), 2);
          assert.deepEqual(
            (await store.topics.read("t", 0, 10)).map((m) => m.offset),
            [o2, o3],
          );
          assert.deepEqual(await store.topics.read("u", 0, 10), []);
          assert.deepEqual(await store.topics.topics(), [
            { topic: "t", messages: 2, head: o3 },
            { topic: "u", messages: 0, head: u1 },
          ]);

          assert.equal(await store.topics.trim(Date.now()), 2);
          assert.deepEqual(await store.topics.topics(), [
            { topic: "t", messages: 0, head: o3 },
            { topic: "u", messages: 0, head: u1 },
          ]);
          // A new message, and a trimmed one published again, get offsets past the old head.
          const [o4, again] = await store.topics.publish([message("t", "4", { time: 4_000 }), message("t", "1", { time: 5_000 })]);
          assert.ok(o4! > o3! && o4! > u1!, `${o4} after ${o3}`);
          assert.ok(again! > o4!);
          assert.notEqual(again, o1);
          assert.deepEqual(
            (await store.topics.read("t", 0, 10)).map((m) => [m.id, m.time]),
            [
              ["4", 4_000],
              ["1", 5_000],
            ],
          );
          assert.deepEqual(await store.topics.topics(), [
            { topic: "t", messages: 2, head: again },
            { topic: "u", messages: 0, head: u1 },
          ]);
          for (const bad of [1.5, Number.NaN, Number.NEGATIVE_INFINITY]) await assert.rejects(store.topics.trim(bad), RangeError);
          assert.equal((await store.topics.read("t", 0, 10)).length, 2);
        }));

      test("topics() lists every topic in code point order, with its message count and head", () =>
        withStore(async (store) => {
          const names = ["b", "\u{1F600}", "a", "\uFFFD", "A", "a b", "ü"];
          const heads = new Map<string, number>();
          for (const [i, name] of names.entries()) {
            const offsets = await store.topics.publish(Array.from({ length: i + 1 }, (_, j) => message(name, `${j}`)));
            heads.set(name, offsets.at(-1)!);
          }
          assert.deepEqual(
            await store.topics.topics(),
            ["A", "a", "a b", "b", "ü", "\uFFFD", "\u{1F600}"].map((topic) => ({
              topic,
              messages: names.indexOf(topic) + 1,
              head: heads.get(topic),
            })),
          );
        }));

      test("callers cannot change stored messages by mutating bytes they passed in or got back", () =>
        withStore(async (store) => {
          const data = text("original");
          await store.topics.publish([message("t", "1", { data })]);
          data.fill(0);
          (await store.topics.read("t", 0, 10))[0]!.data.fill(0);
          assert.equal(hex((await store.topics.read("t", 0, 10))[0]!.data), hex(text("original")));
        }));

      test("a malformed offset or limit, or a NUL in the topic name, is rejected with a RangeError", () =>
        withStore(async (store) => {
          await store.topics.publish([message("t", "1")]);
          for (const bad of [-1, 0.5, Number.NaN, Number.POSITIVE_INFINITY]) {
            await assert.rejects(store.topics.read("t", bad, 10), RangeError, `afterOffset ${bad}`);
            await assert.rejects(store.topics.read("t", 0, bad), RangeError, `limit ${bad}`);
          }
          await assert.rejects(store.topics.read("t\0", 0, 10), RangeError);
          assert.equal((await store.topics.read("t", 0, 10)).length, 1);
        }));
    });

    describe("consumer offsets", () => {
      const TTL = 60_000;

      test("a group that never committed is at offset 0, and list() is empty", () =>
        withStore(async (store) => {
          assert.equal(await store.offsets.get("g", "topic:t"), 0);
          assert.deepEqual(await store.offsets.list(), []);
        }));

      test("one owner holds a lease at a time: others are refused until it releases it", () =>
        withStore(async (store) => {
          assert.equal(await store.offsets.claim("g", "s", "proxy-a", TTL), true);
          assert.equal(await store.offsets.claim("g", "s", "proxy-b", TTL), false);
          assert.equal(await store.offsets.claim("g", "s", "proxy-a", TTL), true, "renewing");
          await store.offsets.release("g", "s", "proxy-b"); // not its lease: changes nothing
          assert.equal(await store.offsets.claim("g", "s", "proxy-b", TTL), false);
          assert.deepEqual(await store.offsets.list(), [{ group: "g", source: "s", offset: 0, owner: "proxy-a" }]);

          await store.offsets.release("g", "s", "proxy-a");
          assert.deepEqual(await store.offsets.list(), [{ group: "g", source: "s", offset: 0, owner: undefined }]);
          assert.equal(await store.offsets.claim("g", "s", "proxy-b", TTL), true);
          assert.equal(await store.offsets.claim("g", "s", "proxy-a", TTL), false);
          assert.deepEqual(await store.offsets.list(), [{ group: "g", source: "s", offset: 0, owner: "proxy-b" }]);
          // Another group, or another source, is another lease.
          assert.equal(await store.offsets.claim("g2", "s", "proxy-a", TTL), true);
          assert.equal(await store.offsets.claim("g", "s2", "proxy-a", TTL), true);
        }));

      test("commit stores the offset only for the lease holder, and never moves it back", () =>
        withStore(async (store) => {
          assert.equal(await store.offsets.commit("g", "s", "proxy-a", 5), false, "without a lease");
          assert.equal(await store.offsets.get("g", "s"), 0);
          assert.deepEqual(await store.offsets.list(), []);

          assert.equal(await store.offsets.claim("g", "s", "proxy-a", TTL), true);
          assert.equal(await store.offsets.commit("g", "s", "proxy-a", 10), true);
          assert.equal(await store.offsets.get("g", "s"), 10);
          assert.equal(await store.offsets.commit("g", "s", "proxy-a", 4), true);
          assert.equal(await store.offsets.get("g", "s"), 10, "moved back");
          assert.equal(await store.offsets.commit("g", "s", "proxy-b", 20), false, "not the holder");
          assert.equal(await store.offsets.get("g", "s"), 10);
          assert.equal(await store.offsets.commit("g", "s", "proxy-a", 11), true);

          await store.offsets.release("g", "s", "proxy-a");
          assert.equal(await store.offsets.commit("g", "s", "proxy-a", 12), false, "after release");
          assert.equal(await store.offsets.get("g", "s"), 11);
          // The position stays with the group when the lease changes hands.
          assert.equal(await store.offsets.claim("g", "s", "proxy-b", TTL), true);
          assert.equal(await store.offsets.get("g", "s"), 11);
          assert.equal(await store.offsets.commit("g", "s", "proxy-b", 12), true);
          assert.equal(await store.offsets.get("g", "s"), 12);
          assert.equal(await store.offsets.get("g", "other"), 0);
          assert.equal(await store.offsets.get("other", "s"), 0);
        }));

      test("an expired lease can be taken by another owner; until then its old owner may still commit", () =>
        withStore(async (store) => {
          assert.equal(await store.offsets.claim("g", "s", "proxy-a", 1), true);
          await sleep(30);
          assert.deepEqual(await store.offsets.list(), [{ group: "g", source: "s", offset: 0, owner: undefined }]);
          assert.equal(await store.offsets.commit("g", "s", "proxy-a", 5), true, "expired, but nobody took it");
          assert.equal(await store.offsets.get("g", "s"), 5);

          assert.equal(await store.offsets.claim("g", "s", "proxy-b", TTL), true);
          assert.equal(await store.offsets.commit("g", "s", "proxy-a", 6), false, "taken over");
          assert.equal(await store.offsets.claim("g", "s", "proxy-a", TTL), false);
          assert.equal(await store.offsets.get("g", "s"), 5);
          assert.deepEqual(await store.offsets.list(), [{ group: "g", source: "s", offset: 5, owner: "proxy-b" }]);

          // A lease of 0 ms is free for anyone at once.
          assert.equal(await store.offsets.claim("g", "zero", "proxy-a", 0), true);
          await sleep(5);
          assert.equal(await store.offsets.claim("g", "zero", "proxy-b", TTL), true);
        }));

      test("of owners claiming one lease at once, exactly one holds it", () =>
        withStore(async (store) => {
          const owners = Array.from({ length: 8 }, (_, i) => `proxy-${i}`);
          const results = await Promise.all(owners.map((owner) => store.offsets.claim("g", "s", owner, TTL)));
          assert.equal(results.filter(Boolean).length, 1);
          const winner = owners[results.indexOf(true)]!;
          assert.deepEqual(await store.offsets.list(), [{ group: "g", source: "s", offset: 0, owner: winner }]);
        }));

      test("list() has every (group, source), sorted, with its offset and current owner; positions are keyed by group and source together", () =>
        withStore(async (store) => {
          for (const [group, source, owner, offset] of [
            ["ab", "c", "p1", 3],
            ["a", "bc", "p2", 7],
            ["b", "s", "p3", 0],
            ["a", "a", "p1", 1],
          ] as const) {
            assert.equal(await store.offsets.claim(group, source, owner, TTL), true);
            if (offset > 0) assert.equal(await store.offsets.commit(group, source, owner, offset), true);
          }
          await store.offsets.release("b", "s", "p3");
          assert.deepEqual(await store.offsets.list(), [
            { group: "a", source: "a", offset: 1, owner: "p1" },
            { group: "a", source: "bc", offset: 7, owner: "p2" },
            { group: "ab", source: "c", offset: 3, owner: "p1" },
            { group: "b", source: "s", offset: 0, owner: undefined },
          ]);
          assert.equal(await store.offsets.get("a", "bc"), 7);
          assert.equal(await store.offsets.get("ab", "c"), 3);
          assert.equal(await store.offsets.get("a", "b/c"), 0);
        }));

      test("malformed calls are rejected with a RangeError and change nothing; offsets are not counted as store writes", () =>
        withStore(async (store) => {
          assert.equal(await store.offsets.claim("g", "s", "proxy-a", TTL), true);
          assert.equal(await store.offsets.commit("g", "s", "proxy-a", 3), true);
          const before = await store.offsets.list();
          for (const [group, source, owner] of [
            ["g\0", "s", "proxy-b"],
            ["g", "s\0", "proxy-b"],
            ["g", "s", "proxy-b\0"],
          ] as const) {
            await assert.rejects(store.offsets.claim(group, source, owner, TTL), RangeError);
            await assert.rejects(store.offsets.commit(group, source, owner, 9), RangeError);
            await assert.rejects(store.offsets.release(group, source, owner), RangeError);
          }
          await assert.rejects(store.offsets.get("g\0", "s"), RangeError);
          await assert.rejects(store.offsets.get("g", "\0"), RangeError);
          for (const bad of [-1, 0.5, Number.NaN, Number.POSITIVE_INFINITY]) {
            await assert.rejects(store.offsets.claim("g", "s2", "proxy-a", bad), RangeError, `ttlMs ${bad}`);
            await assert.rejects(store.offsets.commit("g", "s", "proxy-a", bad), RangeError, `offset ${bad}`);
          }
          assert.deepEqual(await store.offsets.list(), before);
          assert.deepEqual(store.stats(), { batches: 0, writes: 0 });
        }));
    });

    describe("dead letters", () => {
      test("add resolves with increasing ids; list has the newest first with every field; count and remove", () =>
        withStore(async (store) => {
          assert.equal(await store.deadLetters.count(), 0);
          assert.deepEqual(await store.deadLetters.list(10), []);
          const everyByte = new Uint8Array(256).map((_, i) => i);
          const inputs = [
            deadLetter({ offset: 3, data: everyByte }),
            deadLetter({ group: "g2", source: "event-log:shop.ShoppingCart", offset: 9, messageId: "9", subject: "cart-1", data: new Uint8Array(0) }),
            deadLetter({ offset: 4, error: "boom: ünïcode \u{1F600}", attempts: 1, contentType: "application/json", data: new Uint8Array([0xee, 1, 2, 0xee]).subarray(1, 3) }),
          ];
          const ids: number[] = [];
          for (const letter of inputs) ids.push(await store.deadLetters.add(letter));
          for (const id of ids) assert.ok(Number.isSafeInteger(id) && id > 0);
          assertIncreasing(ids);
          assert.equal(await store.deadLetters.count(), 3);

          const expected = inputs.map((letter, i) => plainLetter({ ...letter, id: ids[i]! })).reverse();
          const listed = await store.deadLetters.list(10);
          assert.deepEqual(listed.map(plainLetter), expected);
          for (const letter of listed) assert.ok(letter.data instanceof Uint8Array);
          assert.deepEqual((await store.deadLetters.list(2)).map(plainLetter), expected.slice(0, 2));
          assert.deepEqual(await store.deadLetters.list(0), []);

          assert.equal(await store.deadLetters.remove(ids[1]!), true);
          assert.equal(await store.deadLetters.remove(ids[1]!), false);
          assert.equal(await store.deadLetters.remove(ids[2]! + 100), false);
          assert.equal(await store.deadLetters.count(), 2);
          assert.deepEqual(
            (await store.deadLetters.list(10)).map((l) => l.id),
            [ids[2], ids[0]],
          );
          // Ids are not reused.
          const next = await store.deadLetters.add(deadLetter({ offset: 10 }));
          assert.ok(next > ids[2]!);
          assert.deepEqual(store.stats(), { batches: 0, writes: 0 });
        }));

      test("a malformed dead letter is rejected with a RangeError and stores nothing", () =>
        withStore(async (store) => {
          const bad: Partial<DeadLetterInput>[] = [
            { group: "g\0" },
            { source: "\0" },
            { messageId: "m\0" },
            { type: "t\0" },
            { subject: "s\0" },
            { contentType: "c\0" },
            { error: "failed: \0" },
            { offset: -1 },
            { offset: 1.5 },
            { attempts: Number.NaN },
            { time: 0.5 },
            { time: Number.POSITIVE_INFINITY },
          ];
          for (const fields of bad) await assert.rejects(store.deadLetters.add(deadLetter(fields)), RangeError, JSON.stringify(fields));
          for (const limit of [-1, 0.5, Number.NaN]) await assert.rejects(store.deadLetters.list(limit), RangeError);
          for (const id of [-1, 0.5, Number.NaN]) await assert.rejects(store.deadLetters.remove(id), RangeError);
          assert.equal(await store.deadLetters.count(), 0);
        }));

      test("callers cannot change a dead letter by mutating bytes they passed in or got back", () =>
        withStore(async (store) => {
          const data = text("original");
          await store.deadLetters.add(deadLetter({ data }));
          data.fill(0);
          (await store.deadLetters.list(1))[0]!.data.fill(0);
          assert.equal(hex((await store.deadLetters.list(1))[0]!.data), hex(text("original")));
        }));
    });

    describe("onExternalWrite", () => {
      test("listeners can be added and removed (twice is harmless), and a store with a listener still registered closes cleanly", async () => {
        const store = await open();
        let calls = 0;
        try {
          const removeFirst = store.onExternalWrite(() => calls++);
          const removeSecond = store.onExternalWrite(() => {
            calls++;
            throw new Error("a broken listener");
          });
          await store.journal.append(append("cart-1", 0, [payload("a")]));
          await store.topics.publish([message("t", "1")]);
          await store.values.write(valueWrite("cart-v", 0, state(text("v1"))));
          removeSecond();
          removeSecond();
          await sleep(50);
          if (!options.sharedByProcesses) assert.equal(calls, 0, "one process owns this store: nobody else writes to it");
          removeFirst();
          removeFirst();
          store.onExternalWrite(() => calls++); // left registered: close must not wait for it, nor leak it
          await store.close();
          const late = calls;
          const removeLate = store.onExternalWrite(() => calls++); // after close: accepted, never called
          removeLate();
          await sleep(50);
          assert.equal(calls, late, "a closed store called a listener");
        } finally {
          await store.close();
        }
      });
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

      test("close commits the publishes still pending; later the event log, topics, offsets and dead letters reject with StoreUnavailableError", async () => {
        const store = await open();
        try {
          await store.journal.append(append("cart-1", 0, [payload("a")]));
          const pending = [store.topics.publish([message("t", "1"), message("t", "2")]), store.topics.publish([message("t", "1")])];
          await store.close();
          const [[first, second], [again]] = await Promise.all(pending);
          assert.ok(first! < second!);
          assert.equal(again, first);
          assert.equal(store.stats().writes, 3);

          const calls: [string, () => Promise<unknown>][] = [
            ["eventLog", () => store.journal.eventLog(PID, 0, 10)],
            ["eventLogHead", () => store.journal.eventLogHead(PID)],
            ["publish", () => store.topics.publish([message("t", "3")])],
            ["publish []", () => store.topics.publish([])],
            ["read", () => store.topics.read("t", 0, 10)],
            ["trim", () => store.topics.trim(Date.now())],
            ["topics", () => store.topics.topics()],
            ["get", () => store.offsets.get("g", "s")],
            ["claim", () => store.offsets.claim("g", "s", "o", 1_000)],
            ["release", () => store.offsets.release("g", "s", "o")],
            ["commit", () => store.offsets.commit("g", "s", "o", 1)],
            ["list", () => store.offsets.list()],
            ["add", () => store.deadLetters.add(deadLetter({}))],
            ["dead letter list", () => store.deadLetters.list(10)],
            ["count", () => store.deadLetters.count()],
            ["remove", () => store.deadLetters.remove(1)],
          ];
          for (const [name, call] of calls) await assert.rejects(call(), StoreUnavailableError, name);
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

function message(topic: string, id: string, fields: Partial<TopicPublish> = {}): TopicPublish {
  return {
    topic,
    id,
    source: SOURCE,
    type: MESSAGE_TYPE,
    subject: "cart-1",
    contentType: "application/protobuf",
    time: 1_700_000_000_000,
    data: text(`${topic}/${id}`),
    ...fields,
  };
}

function plainMessage(m: TopicMessage) {
  const { offset, topic, id, source, type, subject, contentType, time } = m;
  return { offset, topic, id, source, type, subject, contentType, time, hex: hex(m.data) };
}

function deadLetter(fields: Partial<DeadLetterInput>): DeadLetterInput {
  return {
    group: "g",
    source: "topic:t",
    offset: 1,
    messageId: "m-1",
    type: MESSAGE_TYPE,
    subject: "cart-1",
    contentType: "application/protobuf",
    data: text("data"),
    attempts: 5,
    error: "the subscriber failed",
    time: 1_700_000_000_000,
    ...fields,
  };
}

function plainLetter(l: DeadLetter) {
  const { id, group, source, offset, messageId, type, subject, contentType, attempts, error, time } = l;
  return { id, group, source, offset, messageId, type, subject, contentType, attempts, error, time, hex: hex(l.data) };
}

function assertIncreasing(values: readonly number[]): void {
  for (let i = 1; i < values.length; i++) assert.ok(values[i]! > values[i - 1]!, `not increasing at ${i}: ${values.join(", ")}`);
}
