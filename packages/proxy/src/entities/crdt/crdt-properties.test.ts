// Properties every CRDT type must have, checked on states reached by random histories of three
// replicas (random local deltas, random joins between them): the join is commutative, associative
// and idempotent; replicas that receive each other's states in any order converge; the delta pushed
// after a join turns the user function's view into the joined view; the stored encoding round-trips.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import type { Any } from "@bufbuild/protobuf/wkt";
import { CrdtClock, type CrdtDelta } from "@cloudstate-ts/protocol";
import { anyKey, anyOf, applyLocal, CrdtDeltaError, deltaOf, RESET, type Crdt, type CrdtKind, type ReplicaContext } from "./crdt.js";
import { decodeState, emptyCrdt, encodeState, mergeCrdts } from "./crdt-state.js";
import type { GCounter } from "./gcounter.js";
import type { PNCounter } from "./pncounter.js";

// ---- Generators of local deltas (some invalid on purpose, e.g. a Flag set back to false: skipped).

const element = fc.constantFrom(
  ...[0, 1, 2, 3].map((i) => anyOf("type.googleapis.com/t.E", new Uint8Array([i]))),
  anyOf("type.googleapis.com/t.Other", new Uint8Array([0])),
);
const elements = fc.uniqueArray(element, { maxLength: 3, selector: anyKey });
const counterDelta = fc.bigInt(0n, 1000n).map((increment) => deltaOf({ case: "gcounter", value: { increment } }));
const flagDelta = fc.boolean().map((value) => deltaOf({ case: "flag", value: { value } }));
const lwwDelta = fc
  .record({ value: element, clock: fc.constantFrom(CrdtClock.DEFAULT, CrdtClock.REVERSE, CrdtClock.CUSTOM, CrdtClock.CUSTOM_AUTO_INCREMENT), custom: fc.bigInt(-5n, 5n) })
  .map(({ value, clock, custom }) => deltaOf({ case: "lwwregister", value: { value, clock, customClockValue: custom } }));
const orsetDelta = fc
  .record({ cleared: fc.integer({ min: 0, max: 5 }).map((n) => n === 0), removed: elements, added: elements })
  .map((v) => deltaOf({ case: "orset", value: v }));

const mapKeys = [0, 1, 2, 3, 4, 5].map((i) => anyOf("type.googleapis.com/t.Key", new Uint8Array([i])));
/** Each key holds one type, so most map deltas are valid; key 5 holds a nested map. */
function valueDelta(key: number, depth: number): fc.Arbitrary<CrdtDelta> {
  switch (key) {
    case 0:
    case 1:
      return counterDelta;
    case 2:
      return orsetDelta;
    case 3:
      return flagDelta;
    case 4:
      return lwwDelta;
    default:
      return depth > 0 ? ormapDelta(depth - 1, 2) : counterDelta;
  }
}
function ormapDelta(depth: number, keyCount = mapKeys.length): fc.Arbitrary<CrdtDelta> {
  const keyIndex = fc.integer({ min: 0, max: keyCount - 1 });
  return fc
    .record({
      cleared: fc.integer({ min: 0, max: 9 }).map((n) => n === 0),
      removed: fc.uniqueArray(keyIndex, { maxLength: 2 }),
      written: fc.uniqueArray(fc.tuple(keyIndex, fc.boolean()), { maxLength: 3, selector: ([k]) => k }),
    })
    .chain(({ cleared, removed, written }) =>
      fc.tuple(...written.map(([k]) => valueDelta(k, depth))).map((deltas) => {
        const entries = written.map(([k, isAdd], i) => ({ isAdd, entry: { key: mapKeys[k]!, delta: deltas[i]! } }));
        return deltaOf({
          case: "ormap",
          value: {
            cleared,
            removed: removed.map((k) => mapKeys[k]!),
            updated: entries.filter((e) => !e.isAdd).map((e) => e.entry),
            added: entries.filter((e) => e.isAdd).map((e) => e.entry),
          },
        });
      }),
    );
}

const deltas: Record<CrdtKind, fc.Arbitrary<CrdtDelta>> = {
  gcounter: counterDelta,
  pncounter: fc.bigInt(-1000n, 1000n).map((change) => deltaOf({ case: "pncounter", value: { change } })),
  gset: elements.map((added) => deltaOf({ case: "gset", value: { added } })),
  orset: orsetDelta,
  lwwregister: lwwDelta,
  flag: flagDelta,
  ormap: ormapDelta(1),
  vote: fc.boolean().map((selfVote) => deltaOf({ case: "vote", value: { selfVote } })),
};

// ---- Histories: three replicas, random local deltas and joins.

const REPLICAS = 3;
type Op = { readonly local: number; readonly delta: CrdtDelta } | { readonly into: number; readonly from: number };
const replicaIndex = fc.integer({ min: 0, max: REPLICAS - 1 });
const ops = (kind: CrdtKind) =>
  fc.array(
    fc.oneof(
      { weight: 3, arbitrary: fc.record({ local: replicaIndex, delta: deltas[kind] }) },
      { weight: 1, arbitrary: fc.record({ into: replicaIndex, from: replicaIndex }) },
    ),
    { maxLength: 25 },
  );

interface History {
  readonly replicas: Crdt[];
  readonly contexts: ReplicaContext[];
  /** Sum of the accepted counter deltas (counters only). */
  readonly total: bigint;
}

function run(kind: CrdtKind, history: readonly Op[]): History {
  let clock = 0n;
  const contexts = Array.from({ length: REPLICAS }, (_, i): ReplicaContext => ({ node: `node-${i}`, isLive: () => true, now: () => (clock += 1n) }));
  const replicas = contexts.map(() => emptyCrdt(kind));
  let total = 0n;
  for (const op of history) {
    if ("local" in op) {
      try {
        applyLocal(replicas[op.local]!, op.delta, contexts[op.local]!);
      } catch (e) {
        if (e instanceof CrdtDeltaError) continue;
        throw e;
      }
      if (op.delta.delta.case === "gcounter") total += op.delta.delta.value.increment;
      if (op.delta.delta.case === "pncounter") total += op.delta.delta.value.change;
    } else {
      replicas[op.into] = mergeCrdts(replicas[op.into]!, replicas[op.from]!);
    }
  }
  return { replicas, contexts, total };
}

const enc = (c: Crdt) => JSON.stringify(c.encode());

// ---- The user function's view, as an SDK keeps it: built from init, changed by pushed deltas.

type View = bigint | boolean | string | undefined | string[] | { selfVote: boolean; votesFor: number; totalVoters: number } | Map<string, View>;

function viewOf(delta: CrdtDelta): View {
  const empty: Record<CrdtKind, View> = {
    gcounter: 0n,
    pncounter: 0n,
    gset: [],
    orset: [],
    flag: false,
    lwwregister: undefined,
    vote: undefined,
    ormap: new Map(),
  };
  return applyView(empty[delta.delta.case!], delta);
}

/** Applies a pushed delta strictly: removing an absent element or adding a present key fails. */
function applyView(view: View, delta: CrdtDelta): View {
  const d = delta.delta;
  switch (d.case) {
    case "gcounter":
      return (view as bigint) + d.value.increment;
    case "pncounter":
      return (view as bigint) + d.value.change;
    case "flag":
      return d.value.value;
    case "lwwregister":
      return d.value.value && anyKey(d.value.value);
    case "vote":
      return { selfVote: d.value.selfVote, votesFor: d.value.votesFor, totalVoters: d.value.totalVoters };
    case "gset":
    case "orset": {
      let set = new Set(view as string[]);
      if (d.case === "orset") {
        if (d.value.cleared) set = new Set();
        for (const e of d.value.removed) assert.ok(set.delete(anyKey(e)), "removed an element the view did not have");
      }
      for (const e of d.value.added as Any[]) {
        assert.ok(!set.has(anyKey(e)), "added an element the view already had");
        set.add(anyKey(e));
      }
      return [...set].sort();
    }
    case "ormap": {
      let map = new Map(view as Map<string, View>);
      if (d.value.cleared) map = new Map();
      for (const k of d.value.removed) assert.ok(map.delete(anyKey(k)), "removed a key the view did not have");
      for (const e of d.value.updated) {
        const key = anyKey(e.key!);
        assert.ok(map.has(key), "updated a key the view did not have");
        map.set(key, applyView(map.get(key), e.delta!));
      }
      for (const e of d.value.added) {
        assert.ok(!map.has(anyKey(e.key!)), "added a key the view already had");
        map.set(anyKey(e.key!), viewOf(e.delta!));
      }
      return new Map([...map].sort(([a], [b]) => (a < b ? -1 : 1)));
    }
    default:
      throw new Error("empty delta");
  }
}

const view = (c: Crdt, ctx: ReplicaContext) => viewOf(c.toDelta(ctx));

// ---- The properties, for every type.

const KINDS: CrdtKind[] = ["gcounter", "pncounter", "gset", "orset", "lwwregister", "flag", "ormap", "vote"];
const numRuns = Number(process.env.CRDT_PROPERTY_RUNS ?? 150);

for (const kind of KINDS) {
  describe(`${kind} properties`, () => {
    const histories = ops(kind).map((h) => run(kind, h));

    test("the join is commutative, associative and idempotent", () => {
      fc.assert(
        fc.property(histories, ({ replicas: [a, b, c] }) => {
          assert.equal(enc(mergeCrdts(a!, b!)), enc(mergeCrdts(b!, a!)), "commutative");
          assert.equal(enc(mergeCrdts(mergeCrdts(a!, b!), c!)), enc(mergeCrdts(a!, mergeCrdts(b!, c!))), "associative");
          assert.equal(enc(mergeCrdts(a!, a!)), enc(a!), "idempotent");
          const ab = mergeCrdts(a!, b!);
          assert.equal(enc(mergeCrdts(ab, b!)), enc(ab), "joining a state already included changes nothing");
        }),
        { numRuns },
      );
    });

    test("replicas that receive each other's states in any order converge", () => {
      fc.assert(
        fc.property(
          histories,
          fc.array(fc.tuple(replicaIndex, replicaIndex), { maxLength: 10 }),
          fc.array(fc.constantFrom(...permutations([0, 1, 2])), { minLength: REPLICAS, maxLength: REPLICAS }),
          ({ replicas, contexts, total }, gossip, orders) => {
            const states = [...replicas];
            for (const [into, from] of gossip) states[into] = mergeCrdts(states[into]!, states[from]!);
            // Then every replica receives every final state, each in its own order.
            const snapshot = [...states];
            const converged = states.map((s, i) => orders[i]!.reduce((acc, j) => mergeCrdts(acc, snapshot[j]!), s));
            for (const s of converged) assert.equal(enc(s), enc(converged[0]!));
            if (kind === "gcounter" || kind === "pncounter") {
              assert.equal((converged[0] as GCounter | PNCounter).value(), total, "every accepted change is counted once");
            }
            for (let i = 0; i < REPLICAS; i++) assert.deepEqual(view(converged[i]!, contexts[0]!), view(converged[0]!, contexts[0]!));
          },
        ),
        { numRuns },
      );
    });

    test("the delta pushed after a join turns the user function's view into the joined view", () => {
      fc.assert(
        fc.property(histories, ({ replicas: [a, b], contexts }) => {
          const ctx = contexts[0]!;
          const joined = mergeCrdts(a!, b!);
          const delta = joined.deltaFrom(a!, ctx);
          const before = view(a!, ctx);
          const after = view(joined, ctx);
          assert.notEqual(delta, RESET, "a join only grows a state: a delta can always say the change");
          if (delta === undefined || delta === RESET) assert.deepEqual(after, before, "no delta: the view did not change");
          else assert.deepEqual(applyView(before, delta), after);
        }),
        { numRuns },
      );
    });

    test("the stored encoding round-trips", () => {
      fc.assert(
        fc.property(histories, ({ replicas, contexts }) => {
          for (const r of replicas) {
            const copy = decodeState(encodeState(r));
            assert.equal(enc(copy), enc(r));
            assert.deepEqual(view(copy, contexts[0]!), view(r, contexts[0]!));
          }
        }),
        { numRuns },
      );
    });
  });
}

function permutations<T>(items: T[]): T[][] {
  if (items.length <= 1) return [items];
  return items.flatMap((x, i) => permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [x, ...rest]));
}
