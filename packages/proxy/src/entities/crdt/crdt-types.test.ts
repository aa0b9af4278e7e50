// The semantics of each CRDT type: local deltas, validation, joins between replicas, the deltas
// pushed to the user function, and the stored encoding.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Any } from "@bufbuild/protobuf/wkt";
import { CrdtClock, type CrdtDelta } from "@cloudstate-ts/protocol";
import { anyKey, anyOf, applyLocal, CrdtDeltaError, CrdtStateError, deltaOf, RESET, singleNode, type Crdt, type ReplicaContext } from "./crdt.js";
import { decodeState, emptyCrdt, encodeState, mergeCrdts, STATE_TYPE_URL } from "./crdt-state.js";
import { Flag } from "./flag.js";
import { GCounter } from "./gcounter.js";
import { GSet } from "./gset.js";
import { LWWRegister } from "./lwwregister.js";
import { ORMap } from "./ormap.js";
import { ORSet } from "./orset.js";
import { PNCounter } from "./pncounter.js";
import { Vote } from "./vote.js";

const el = (s: string, typeUrl = "type.googleapis.com/test.Element"): Any => anyOf(typeUrl, new TextEncoder().encode(s));
const names = (values: Any[]) => values.map((v) => new TextDecoder().decode(v.value));
let clock = 1000n;
const node = (name: string): ReplicaContext => ({ node: name, isLive: () => true, now: () => clock });
const A = node("a");
const B = node("b");
const encoded = (c: Crdt) => JSON.stringify(c.encode());

const inc = (increment: bigint) => deltaOf({ case: "gcounter", value: { increment } });
const change = (c: bigint) => deltaOf({ case: "pncounter", value: { change: c } });
const orset = (v: { cleared?: boolean; removed?: Any[]; added?: Any[] }) => deltaOf({ case: "orset", value: v });
const flag = (value: boolean) => deltaOf({ case: "flag", value: { value } });
const lww = (value: string, c = CrdtClock.DEFAULT, customClockValue = 0n) => deltaOf({ case: "lwwregister", value: { value: el(value), clock: c, customClockValue } });
const vote = (selfVote: boolean) => deltaOf({ case: "vote", value: { selfVote } });
const ormap = (v: { cleared?: boolean; removed?: Any[]; updated?: [Any, CrdtDelta][]; added?: [Any, CrdtDelta][] }) =>
  deltaOf({
    case: "ormap",
    value: {
      cleared: v.cleared ?? false,
      removed: v.removed ?? [],
      updated: (v.updated ?? []).map(([key, delta]) => ({ key, delta })),
      added: (v.added ?? []).map(([key, delta]) => ({ key, delta })),
    },
  });

/** Joins b into a copy of a. */
const join = <T extends Crdt>(a: T, b: T): T => mergeCrdts(a, b) as T;

function rejects(crdt: Crdt, delta: CrdtDelta, ctx: ReplicaContext, message: RegExp): void {
  const before = encoded(crdt);
  assert.throws(() => applyLocal(crdt, delta, ctx), (e: unknown) => e instanceof CrdtDeltaError && message.test(e.message));
  assert.equal(encoded(crdt), before, "a rejected delta changes nothing");
}

describe("GCounter", () => {
  test("counts each node's increments and joins by the highest count per node", () => {
    const a = new GCounter();
    const b = new GCounter();
    applyLocal(a, inc(3n), A);
    applyLocal(a, inc(2n), A);
    applyLocal(b, inc(7n), B);
    const ab = join(a, b);
    assert.equal(ab.value(), 12n);
    assert.equal(join(ab, a).value(), 12n, "joining a known state again changes nothing");
    assert.deepEqual(ab.toDelta(), inc(12n));
    assert.deepEqual(ab.deltaFrom(a), inc(7n));
    assert.equal(a.deltaFrom(a.clone()), undefined);
    assert.equal(a.deltaFrom(ab), RESET, "a lower count cannot be said as an increment");
  });

  test("a delta of another type is a protocol error that changes nothing", () => {
    const a = new GCounter();
    applyLocal(a, inc(1n), A);
    rejects(a, change(1n), A, /a pncounter delta was sent for a gcounter/);
    rejects(a, deltaOf({ case: undefined }), A, /empty delta/);
  });

  test("an increment that overflows uint64 is rejected", () => {
    const a = new GCounter();
    applyLocal(a, inc((1n << 64n) - 2n), A);
    rejects(a, inc(2n), A, /overflows/);
  });
});

describe("PNCounter", () => {
  test("goes up and down on several nodes", () => {
    const a = new PNCounter();
    const b = new PNCounter();
    applyLocal(a, change(10n), A);
    applyLocal(a, change(-3n), A);
    applyLocal(b, change(-5n), B);
    const ab = join(a, b);
    assert.equal(ab.value(), 2n);
    assert.deepEqual(ab.deltaFrom(a), change(-5n));
    assert.deepEqual(ab.toDelta(), change(2n));
  });
});

describe("GSet", () => {
  test("elements are identified by type URL and bytes", () => {
    const s = new GSet();
    applyLocal(s, deltaOf({ case: "gset", value: { added: [el("x"), el("x"), el("x", "type.googleapis.com/other.Type")] } }), A);
    assert.equal(s.values().length, 2);
  });

  test("joins by union and pushes only the new elements", () => {
    const a = new GSet();
    const b = new GSet();
    applyLocal(a, deltaOf({ case: "gset", value: { added: [el("1"), el("2")] } }), A);
    applyLocal(b, deltaOf({ case: "gset", value: { added: [el("2"), el("3")] } }), B);
    const ab = join(a, b);
    assert.deepEqual(names(ab.values()), ["1", "2", "3"]);
    assert.deepEqual(names((ab.deltaFrom(a) as CrdtDelta & { delta: { case: "gset" } }).delta.value.added), ["3"]);
  });
});

describe("ORSet", () => {
  test("an add concurrent with a remove wins", () => {
    const a = new ORSet();
    applyLocal(a, orset({ added: [el("x")] }), A);
    const b = join(new ORSet(), a);
    applyLocal(a, orset({ removed: [el("x")] }), A);
    applyLocal(b, orset({ added: [el("x")] }), B);
    assert.deepEqual(names(join(a, b).values()), ["x"]);
    assert.deepEqual(names(join(b, a).values()), ["x"]);
  });

  test("a remove takes away the adds it has seen", () => {
    const a = new ORSet();
    applyLocal(a, orset({ added: [el("x"), el("y")] }), A);
    const b = join(new ORSet(), a);
    applyLocal(b, orset({ removed: [el("x")] }), B);
    assert.deepEqual(names(join(a, b).values()), ["y"]);
    applyLocal(b, orset({ cleared: true, added: [el("z")] }), B);
    const ab = join(a, b);
    assert.deepEqual(names(ab.values()), ["z"]);
    assert.deepEqual(ab.deltaFrom(a), orset({ cleared: true, added: [el("z")] }));
  });

  test("the pushed delta names removed and added elements", () => {
    const a = new ORSet();
    applyLocal(a, orset({ added: [el("x"), el("y")] }), A);
    const b = join(new ORSet(), a);
    applyLocal(b, orset({ removed: [el("x")], added: [el("w")] }), B);
    assert.deepEqual(join(a, b).deltaFrom(a), orset({ removed: [el("x")], added: [el("w")] }));
  });
});

describe("Flag", () => {
  test("is enabled once and stays enabled; disabling is a protocol error", () => {
    const f = new Flag();
    applyLocal(f, flag(false), A);
    assert.equal(f.value(), false);
    applyLocal(f, flag(true), A);
    rejects(f, flag(false), A, /cannot be disabled/);
    assert.equal(join(new Flag(), f).value(), true);
    assert.deepEqual(join(new Flag(), f).deltaFrom(new Flag()), flag(true));
  });
});

describe("LWWRegister", () => {
  const value = (r: LWWRegister) => new TextDecoder().decode(r.value()!.value);

  test("DEFAULT: the later wall clock wins; a local write always takes effect locally", () => {
    clock = 5000n;
    const a = new LWWRegister();
    applyLocal(a, lww("first"), A);
    clock = 4000n; // the wall clock went back: the local write still replaces the value
    applyLocal(a, lww("second"), A);
    assert.equal(value(a), "second");
    const b = new LWWRegister();
    clock = 6000n;
    applyLocal(b, lww("other"), B);
    assert.equal(value(join(a, b)), "other");
    assert.equal(value(join(b, a)), "other");
  });

  test("equal clocks are broken by the node id", () => {
    const a = new LWWRegister();
    const b = new LWWRegister();
    applyLocal(a, lww("from-a", CrdtClock.CUSTOM, 7n), A);
    applyLocal(b, lww("from-b", CrdtClock.CUSTOM, 7n), B);
    assert.equal(value(join(a, b)), "from-b");
    assert.equal(value(join(b, a)), "from-b");
  });

  test("REVERSE: the earlier write wins a join", () => {
    clock = 1000n;
    const a = new LWWRegister();
    applyLocal(a, lww("early", CrdtClock.REVERSE), A);
    clock = 2000n;
    const b = new LWWRegister();
    applyLocal(b, lww("late", CrdtClock.REVERSE), B);
    assert.equal(value(join(a, b)), "early");
  });

  test("CUSTOM and CUSTOM_AUTO_INCREMENT", () => {
    const a = new LWWRegister();
    applyLocal(a, lww("v10", CrdtClock.CUSTOM, 10n), A);
    const b = join(new LWWRegister(), a);
    applyLocal(b, lww("v5", CrdtClock.CUSTOM, 5n), B);
    assert.equal(value(join(a, b)), "v10", "a lower custom clock loses a join");
    const c = join(new LWWRegister(), a);
    applyLocal(c, lww("v5+", CrdtClock.CUSTOM_AUTO_INCREMENT, 5n), B);
    assert.equal(value(join(a, c)), "v5+", "auto-increment goes past the current clock (11)");
    assert.deepEqual(join(a, c).deltaFrom(a), deltaOf({ case: "lwwregister", value: { value: el("v5+") } }));
  });

  test("an unknown clock is a protocol error", () => {
    rejects(new LWWRegister(), lww("x", 9 as CrdtClock), A, /unknown clock 9/);
  });
});

describe("Vote", () => {
  test("counts the votes of live nodes; total voters include this node", () => {
    const a = new Vote();
    const b = new Vote();
    applyLocal(a, vote(true), A);
    applyLocal(b, vote(true), B);
    applyLocal(b, vote(false), B);
    applyLocal(b, vote(true), B);
    const ab = join(a, b);
    assert.deepEqual(ab.view(A), { selfVote: true, votesFor: 2, totalVoters: 2 });
    const onlyA = singleNode("a");
    assert.deepEqual(ab.view(onlyA), { selfVote: true, votesFor: 1, totalVoters: 1 }, "a node that left does not count");
    assert.deepEqual(new Vote().view(onlyA), { selfVote: false, votesFor: 0, totalVoters: 1 });
    assert.deepEqual(ab.deltaFrom(a, A), deltaOf({ case: "vote", value: { selfVote: true, votesFor: 2, totalVoters: 2 } }));
  });
});

describe("ORMap", () => {
  const k = (s: string) => el(s, "type.googleapis.com/test.Key");

  test("values of a key updated on two nodes are joined", () => {
    const a = new ORMap();
    applyLocal(a, ormap({ added: [[k("n"), inc(1n)]] }), A);
    const b = join(new ORMap(), a);
    applyLocal(a, ormap({ updated: [[k("n"), inc(2n)]] }), A);
    applyLocal(b, ormap({ updated: [[k("n"), inc(10n)]] }), B);
    const ab = join(a, b);
    assert.equal((ab.view()[0]![1] as GCounter).value(), 13n);
    assert.deepEqual(ab.deltaFrom(a, A), ormap({ updated: [[k("n"), inc(10n)]] }));
    assert.deepEqual(ab.toDelta(A), ormap({ added: [[k("n"), inc(13n)]] }));
  });

  test("a key removed and added again starts from an empty value", () => {
    const m = new ORMap();
    applyLocal(m, ormap({ added: [[k("n"), inc(5n)]] }), A);
    applyLocal(m, ormap({ removed: [k("n")] }), A);
    applyLocal(m, ormap({ added: [[k("n"), inc(1n)]] }), A);
    assert.equal((m.view()[0]![1] as GCounter).value(), 1n);
    applyLocal(m, ormap({ removed: [k("n")], added: [[k("n"), inc(2n)]] }), A);
    assert.equal((m.view()[0]![1] as GCounter).value(), 2n);
  });

  test("an update concurrent with a remove wins; a remove that saw the update removes it", () => {
    const a = new ORMap();
    applyLocal(a, ormap({ added: [[k("x"), flag(true)], [k("y"), flag(true)]] }), A);
    const b = join(new ORMap(), a);
    applyLocal(a, ormap({ cleared: true }), A);
    applyLocal(b, ormap({ updated: [[k("x"), flag(true)]] }), B);
    const ab = join(a, b);
    assert.deepEqual(ab.view().map(([key]) => names([key])[0]), ["x"]);
    assert.deepEqual(ab.deltaFrom(b, B), ormap({ removed: [k("y")] }));
  });

  test("a value removed and written again on another node is pushed as removed and added", () => {
    const a = new ORMap();
    applyLocal(a, ormap({ added: [[k("n"), inc(5n)], [k("other"), flag(true)]] }), A);
    const b = join(new ORMap(), a);
    applyLocal(b, ormap({ removed: [k("n")], added: [[k("n"), inc(1n)]] }), B);
    const ab = join(a, b);
    assert.equal((ab.view().find(([key]) => anyKey(key) === anyKey(k("n")))![1] as GCounter).value(), 1n);
    assert.deepEqual(ab.deltaFrom(a, A), ormap({ removed: [k("n")], added: [[k("n"), inc(1n)]] }));
  });

  test("invalid entries are protocol errors that change nothing", () => {
    const m = new ORMap();
    applyLocal(m, ormap({ added: [[k("f"), flag(true)], [k("c"), inc(1n)]] }), A);
    rejects(m, ormap({ updated: [[k("f"), flag(false)]] }), A, /ORMap key test.Key:Zg==: a Flag cannot be disabled/);
    rejects(m, ormap({ updated: [[k("c"), change(1n)]] }), A, /a pncounter delta was sent for a gcounter/);
    rejects(m, ormap({ updated: [[k("c"), inc(1n)]], added: [[k("c"), inc(1n)]] }), A, /more than once/);
    rejects(m, ormap({ added: [[k("e"), deltaOf({ case: undefined })]] }), A, /has no delta/);
    rejects(m, deltaOf({ case: "ormap", value: { added: [{ delta: inc(1n) }] } }), A, /has no key/);
    // Removed first, the key takes a value of another type.
    applyLocal(m, ormap({ removed: [k("c")], added: [[k("c"), change(-1n)]] }), A);
    assert.equal((m.view().find(([key]) => anyKey(key) === anyKey(k("c")))![1] as PNCounter).value(), -1n);
  });

  test("values may be any CRDT, including maps", () => {
    const m = new ORMap();
    applyLocal(m, ormap({ added: [[k("inner"), ormap({ added: [[k("deep"), lww("v")]] })]] }), A);
    const copy = decodeState(encodeState(m)) as ORMap;
    assert.deepEqual(copy.toDelta(A), m.toDelta(A));
  });
});

describe("stored state", () => {
  test("round-trips every type and names its type URL", () => {
    const m = new ORMap();
    applyLocal(m, ormap({ added: [[el("k"), vote(true)]] }), A);
    for (const crdt of [new GCounter(), m, new Flag(true)]) {
      const stored = encodeState(crdt);
      assert.equal(stored.typeUrl, STATE_TYPE_URL);
      assert.equal(encoded(decodeState(stored)), encoded(crdt));
    }
  });

  test("an unreadable state is a CrdtStateError", () => {
    assert.throws(() => decodeState({ typeUrl: "other", bytes: new Uint8Array() }), CrdtStateError);
    assert.throws(() => decodeState({ typeUrl: STATE_TYPE_URL, bytes: new TextEncoder().encode("{") }), CrdtStateError);
    assert.throws(() => decodeState({ typeUrl: STATE_TYPE_URL, bytes: new TextEncoder().encode('{"kind":"nope","state":{}}') }), /unknown kind/);
    assert.throws(() => decodeState({ typeUrl: STATE_TYPE_URL, bytes: new TextEncoder().encode('{"kind":"gcounter","state":{"counts":[["a","-1"]]}}') }), CrdtStateError);
  });

  test("two replicas that created different types join to the same one either way", () => {
    const g = emptyCrdt("gcounter");
    applyLocal(g, inc(1n), A);
    const f = emptyCrdt("flag");
    applyLocal(f, flag(true), B);
    assert.equal(mergeCrdts(g, f).kind, mergeCrdts(f, g).kind);
  });
});
