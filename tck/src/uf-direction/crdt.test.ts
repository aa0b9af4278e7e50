// Direction (a), CRDT entities: the suite plays one proxy node on Crdt.handle streams — init with or
// without a state, commands, other replicas' deltas, deletes, cancellations of streamed calls — and
// checks each answer: the delta sent back (state_action.update), the reply's state, forwards, side
// effects, failures, and the messages of streamed calls.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { JsonValue } from "@bufbuild/protobuf";
import { crdtDelta, crdtMessageOf, type CrdtDelta, type CrdtStreamDriver } from "@cloudstate-ts/sdk/testing";
import { CrdtConfigured, CrdtTckModel, CrdtTwo, RequestSchema, ResponseSchema, type StreamedRequestSchema } from "../gen/cloudstate/tck/model/crdt_pb.js";
import { act, ClockType, st, stateJson, up, WriteConsistency, type ActionInit, type StateInit, type UpdateInit } from "../model/crdt-requests.js";
import type { CrdtTypeName } from "../model/index.js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { expectFailure, expectForward, expectReply, sideEffectsOf } from "./replies.js";
import { startUserFunction, type UserFunctionUnderTest } from "./user-function.js";

type Reply = ReturnType<typeof crdtMessageOf<"reply">>;
type StreamedInit = MessageInitShape<typeof StreamedRequestSchema>;

const MODEL = CrdtTckModel.typeName;
const TWO = CrdtTwo.typeName;
const TWO_CALL = `${TWO}.Call`;
const S = "string" as const;
/** CrdtTwo.Call(Request{id, [update{gset{add: mark}}]}) as proto3 JSON. */
const twoRequest = (id: string, mark: string): JsonValue => ({ id, actions: [{ update: { gset: { add: mark } } }] });

// ---- deltas: compared as readable JSON, with lists sorted and a Vote's counts left out (the proxy
// reads only self_vote from the user function, so an SDK may send its counts or not).
function normalize(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(normalize).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
  if (value && typeof value === "object") {
    const o = value as Record<string, unknown>;
    if (o["case"] === "vote") return { case: "vote", value: { selfVote: (o["value"] as { selfVote: boolean }).selfVote } };
    return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, normalize(v)]));
  }
  return value;
}
const deltaJson = (d: CrdtDelta | undefined): unknown => (d === undefined ? "no delta" : normalize(JSON.parse(crdtDelta.describe(d))));

/** One step of a history: a local update (with the delta it must send) or another replica's delta; then the state. */
type Step = { local: UpdateInit; sends: CrdtDelta | undefined; state: StateInit } | { remote: CrdtDelta; state: StateInit };

interface TypeCase {
  type: CrdtTypeName;
  empty: StateInit;
  /** Local updates, each sending its delta. */
  changes: Step[];
  /** What the proxy's init carries after `changes` (the whole state), for rehydration. */
  afterChanges: CrdtDelta;
  /** A state in init, and how it reads. */
  init: [CrdtDelta, StateInit];
  /** Other replicas' deltas, from the empty state. */
  replicated: Step[];
  /** Local and replicated changes interleaved, from the empty state. */
  interleaved: Step[];
}

const gc = crdtDelta.gcounter;
const pn = crdtDelta.pncounter;
const gs = (...added: string[]) => crdtDelta.gset(S, added);
const ors = (change: { cleared?: boolean; removed?: string[]; added?: string[] }) => crdtDelta.orset(S, change);
const lww = (value: string, clock = 0, custom = 0) => crdtDelta.lwwregister(S, value, clock, custom);
const om = (change: Parameters<typeof crdtDelta.ormap<typeof S>>[1]) => crdtDelta.ormap(S, change);

const CASES: TypeCase[] = [
  {
    type: "GCounter",
    empty: st.gcounter(0),
    changes: [
      { local: up.gcounter(5), sends: gc(5), state: st.gcounter(5) },
      { local: up.gcounter(7), sends: gc(7), state: st.gcounter(12) },
    ],
    afterChanges: gc(12),
    init: [gc(42), st.gcounter(42)],
    replicated: [
      { remote: gc(3), state: st.gcounter(3) },
      { remote: gc(4), state: st.gcounter(7) },
    ],
    interleaved: [
      { local: up.gcounter(1), sends: gc(1), state: st.gcounter(1) },
      { remote: gc(10), state: st.gcounter(11) },
      { local: up.gcounter(2), sends: gc(2), state: st.gcounter(13) },
      { remote: gc(3), state: st.gcounter(16) },
    ],
  },
  {
    type: "PNCounter",
    empty: st.pncounter(0),
    changes: [
      { local: up.pncounter(5), sends: pn(5), state: st.pncounter(5) },
      { local: up.pncounter(-7), sends: pn(-7), state: st.pncounter(-2) },
    ],
    afterChanges: pn(-2),
    init: [pn(-3), st.pncounter(-3)],
    replicated: [
      { remote: pn(4), state: st.pncounter(4) },
      { remote: pn(-6), state: st.pncounter(-2) },
    ],
    interleaved: [
      { local: up.pncounter(1), sends: pn(1), state: st.pncounter(1) },
      { remote: pn(-10), state: st.pncounter(-9) },
      { local: up.pncounter(-2), sends: pn(-2), state: st.pncounter(-11) },
      { remote: pn(3), state: st.pncounter(-8) },
    ],
  },
  {
    type: "GSet",
    empty: st.gset(),
    changes: [
      { local: up.gset("a"), sends: gs("a"), state: st.gset("a") },
      { local: up.gset("b"), sends: gs("b"), state: st.gset("a", "b") },
      { local: up.gset("a"), sends: undefined, state: st.gset("a", "b") },
    ],
    afterChanges: gs("a", "b"),
    init: [gs("x", "y"), st.gset("x", "y")],
    replicated: [
      { remote: gs("c"), state: st.gset("c") },
      { remote: gs("a", "c"), state: st.gset("a", "c") },
    ],
    interleaved: [
      { local: up.gset("a"), sends: gs("a"), state: st.gset("a") },
      { remote: gs("b"), state: st.gset("a", "b") },
      { local: up.gset("c"), sends: gs("c"), state: st.gset("a", "b", "c") },
      { remote: gs("a"), state: st.gset("a", "b", "c") },
    ],
  },
  {
    type: "ORSet",
    empty: st.orset(),
    changes: [
      { local: up.orsetAdd("a"), sends: ors({ added: ["a"] }), state: st.orset("a") },
      { local: up.orsetAdd("b"), sends: ors({ added: ["b"] }), state: st.orset("a", "b") },
      { local: up.orsetRemove("a"), sends: ors({ removed: ["a"] }), state: st.orset("b") },
      { local: up.orsetAdd("c"), sends: ors({ added: ["c"] }), state: st.orset("b", "c") },
      { local: up.orsetClear(), sends: ors({ cleared: true }), state: st.orset() },
      { local: up.orsetAdd("d"), sends: ors({ added: ["d"] }), state: st.orset("d") },
    ],
    afterChanges: ors({ added: ["d"] }),
    init: [ors({ added: ["x", "y"] }), st.orset("x", "y")],
    replicated: [
      { remote: ors({ added: ["a", "b"] }), state: st.orset("a", "b") },
      { remote: ors({ removed: ["a"] }), state: st.orset("b") },
      { remote: ors({ cleared: true, added: ["c"] }), state: st.orset("c") },
    ],
    interleaved: [
      { local: up.orsetAdd("a"), sends: ors({ added: ["a"] }), state: st.orset("a") },
      { remote: ors({ added: ["b"] }), state: st.orset("a", "b") },
      { local: up.orsetRemove("b"), sends: ors({ removed: ["b"] }), state: st.orset("a") },
      { remote: ors({ removed: ["a"], added: ["c"] }), state: st.orset("c") },
    ],
  },
  {
    type: "LWWRegister",
    empty: st.lww(""),
    changes: [
      { local: up.lww("one"), sends: lww("one"), state: st.lww("one") },
      { local: up.lww("two"), sends: lww("two"), state: st.lww("two") },
    ],
    afterChanges: lww("two"),
    init: [lww("init"), st.lww("init")],
    replicated: [
      { remote: lww("r1"), state: st.lww("r1") },
      { remote: lww("r2"), state: st.lww("r2") },
    ],
    interleaved: [
      { local: up.lww("l1"), sends: lww("l1"), state: st.lww("l1") },
      { remote: lww("r1"), state: st.lww("r1") },
      { local: up.lww("l2"), sends: lww("l2"), state: st.lww("l2") },
      { remote: lww("r2"), state: st.lww("r2") },
    ],
  },
  {
    type: "Flag",
    empty: st.flag(false),
    changes: [
      { local: up.flag(), sends: crdtDelta.flag(true), state: st.flag(true) },
      { local: up.flag(), sends: undefined, state: st.flag(true) },
    ],
    afterChanges: crdtDelta.flag(true),
    init: [crdtDelta.flag(true), st.flag(true)],
    replicated: [{ remote: crdtDelta.flag(true), state: st.flag(true) }],
    interleaved: [
      { local: up.flag(), sends: crdtDelta.flag(true), state: st.flag(true) },
      { remote: crdtDelta.flag(true), state: st.flag(true) },
    ],
  },
  {
    type: "ORMap",
    empty: st.ormap(),
    changes: [
      { local: up.ormapUpdate("GCounter-a", up.gcounter(2)), sends: om({ added: [["GCounter-a", gc(2)]] }), state: st.ormap(["GCounter-a", st.gcounter(2)]) },
      { local: up.ormapUpdate("GCounter-a", up.gcounter(3)), sends: om({ updated: [["GCounter-a", gc(3)]] }), state: st.ormap(["GCounter-a", st.gcounter(5)]) },
      {
        local: up.ormapAdd("ORSet-b"),
        sends: om({ added: [["ORSet-b", ors({})]] }),
        state: st.ormap(["GCounter-a", st.gcounter(5)], ["ORSet-b", st.orset()]),
      },
      {
        local: up.ormapUpdate("ORSet-b", up.orsetAdd("x")),
        sends: om({ updated: [["ORSet-b", ors({ added: ["x"] })]] }),
        state: st.ormap(["GCounter-a", st.gcounter(5)], ["ORSet-b", st.orset("x")]),
      },
      { local: up.ormapRemove("GCounter-a"), sends: om({ removed: ["GCounter-a"] }), state: st.ormap(["ORSet-b", st.orset("x")]) },
      { local: up.ormapClear(), sends: om({ cleared: true }), state: st.ormap() },
      { local: up.ormapUpdate("LWWRegister-c", up.lww("v")), sends: om({ added: [["LWWRegister-c", lww("v")]] }), state: st.ormap(["LWWRegister-c", st.lww("v")]) },
    ],
    afterChanges: om({ added: [["LWWRegister-c", lww("v")]] }),
    init: [
      om({ added: [["LWWRegister-x", lww("v")], ["Flag-y", crdtDelta.flag(true)], ["Vote-z", crdtDelta.vote({ selfVote: true, votesFor: 2, totalVoters: 3 })]] }),
      st.ormap(["Flag-y", st.flag(true)], ["LWWRegister-x", st.lww("v")], ["Vote-z", st.vote(true, 2, 3)]),
    ],
    replicated: [
      { remote: om({ added: [["PNCounter-p", pn(3)]] }), state: st.ormap(["PNCounter-p", st.pncounter(3)]) },
      { remote: om({ updated: [["PNCounter-p", pn(-1)]] }), state: st.ormap(["PNCounter-p", st.pncounter(2)]) },
      { remote: om({ added: [["GSet-q", gs("e")]] }), state: st.ormap(["GSet-q", st.gset("e")], ["PNCounter-p", st.pncounter(2)]) },
      { remote: om({ removed: ["PNCounter-p"] }), state: st.ormap(["GSet-q", st.gset("e")]) },
      { remote: om({ cleared: true }), state: st.ormap() },
    ],
    interleaved: [
      { local: up.ormapUpdate("PNCounter-a", up.pncounter(1)), sends: om({ added: [["PNCounter-a", pn(1)]] }), state: st.ormap(["PNCounter-a", st.pncounter(1)]) },
      { remote: om({ updated: [["PNCounter-a", pn(5)]] }), state: st.ormap(["PNCounter-a", st.pncounter(6)]) },
      {
        local: up.ormapUpdate("PNCounter-a", up.pncounter(-2)),
        sends: om({ updated: [["PNCounter-a", pn(-2)]] }),
        state: st.ormap(["PNCounter-a", st.pncounter(4)]),
      },
      { remote: om({ added: [["Flag-b", crdtDelta.flag(true)]] }), state: st.ormap(["Flag-b", st.flag(true)], ["PNCounter-a", st.pncounter(4)]) },
    ],
  },
  {
    type: "Vote",
    empty: st.vote(false, 0, 1),
    changes: [
      { local: up.vote(true), sends: crdtDelta.vote({ selfVote: true }), state: st.vote(true, 1, 1) },
      { local: up.vote(true), sends: undefined, state: st.vote(true, 1, 1) },
      { local: up.vote(false), sends: crdtDelta.vote({ selfVote: false }), state: st.vote(false, 0, 1) },
    ],
    afterChanges: crdtDelta.vote({ selfVote: false, votesFor: 0, totalVoters: 1 }),
    init: [crdtDelta.vote({ selfVote: true, votesFor: 2, totalVoters: 3 }), st.vote(true, 2, 3)],
    replicated: [
      { remote: crdtDelta.vote({ selfVote: false, votesFor: 1, totalVoters: 2 }), state: st.vote(false, 1, 2) },
      { remote: crdtDelta.vote({ selfVote: false, votesFor: 2, totalVoters: 3 }), state: st.vote(false, 2, 3) },
    ],
    interleaved: [
      { local: up.vote(true), sends: crdtDelta.vote({ selfVote: true }), state: st.vote(true, 1, 1) },
      { remote: crdtDelta.vote({ selfVote: true, votesFor: 2, totalVoters: 3 }), state: st.vote(true, 2, 3) },
      { local: up.vote(false), sends: crdtDelta.vote({ selfVote: false }), state: st.vote(false, 1, 3) },
      { remote: crdtDelta.vote({ selfVote: false, votesFor: 0, totalVoters: 3 }), state: st.vote(false, 0, 3) },
    ],
  },
];

describe("direction (a) — CRDT", () => {
  let uf: UserFunctionUnderTest;
  const open: CrdtStreamDriver[] = [];

  before(async () => {
    uf = await startUserFunction();
  });
  after(async () => {
    for (const stream of open) stream.cancel();
    await uf.close();
  });

  /** A new entity stream, initialised with the proxy's state (none: a new entity). */
  function entity(id: string, state?: CrdtDelta, service = MODEL): CrdtStreamDriver {
    const stream = uf.driver.crdt();
    open.push(stream);
    stream.init(service, id, state);
    return stream;
  }

  async function process(stream: CrdtStreamDriver, id: string, ...actions: ActionInit[]): Promise<Reply> {
    return crdtMessageOf(await stream.command(CrdtTckModel.method.process, { id, actions }), "reply");
  }
  const update = (stream: CrdtStreamDriver, id: string, u: UpdateInit) => process(stream, id, act.update(u));

  const stateOfReply = (reply: { clientAction?: { action: unknown } }, what: string) =>
    stateJson(expectReply(reply.clientAction?.action as never, ResponseSchema, what).state);
  /** The delta of a state action: its update, "delete", or undefined for none. */
  function sentDelta(stateAction: Reply["stateAction"]): CrdtDelta | "delete" | undefined {
    const action = stateAction?.action;
    if (action?.case === "delete") return "delete";
    return action?.case === "update" ? action.value : undefined;
  }
  function assertSends(reply: Reply, expected: CrdtDelta | undefined, what: string): void {
    const sent = sentDelta(reply.stateAction);
    assert.notEqual(sent, "delete", `${what}: expected ${crdtDelta.describe(expected)}, got a delete`);
    assert.deepEqual(deltaJson(sent as CrdtDelta | undefined), deltaJson(expected), `${what}: the delta sent with the reply`);
  }
  async function read(stream: CrdtStreamDriver, id: string, what: string): Promise<JsonValue> {
    const reply = await process(stream, id);
    assert.equal(sentDelta(reply.stateAction), undefined, `${what}: a read sends no state action`);
    return stateOfReply(reply, what);
  }

  /** Runs steps; each local step checks its delta and reply, each remote one a read. */
  async function run(stream: CrdtStreamDriver, id: string, steps: Step[], what: string): Promise<void> {
    for (const [i, step] of steps.entries()) {
      const where = `${what}, step ${i + 1}`;
      if ("local" in step) {
        const reply = await update(stream, id, step.local);
        assertSends(reply, step.sends, where);
        assert.deepEqual(stateOfReply(reply, where), stateJson(step.state), `${where}: the state in the reply`);
      } else {
        stream.delta(step.remote);
        assert.deepEqual(await read(stream, id, where), stateJson(step.state), `${where}: the state after the replicated delta ${crdtDelta.describe(step.remote)}`);
      }
    }
  }

  for (const c of CASES) {
    const id = (name: string) => `${c.type}-${name}`;

    test(`crdt ${c.type}: a new entity (no state in init) starts empty`, async () => {
      const reply = await process(entity(id("empty")), id("empty"));
      assert.equal(reply.commandId, 1n, `${c.type}: the reply's command id matches the command's (ids start at 1)`);
      assert.deepEqual(stateOfReply(reply, "the initial state"), stateJson(c.empty), `${c.type}: the initial, empty state`);
      assert.equal(sentDelta(reply.stateAction), undefined, `${c.type}: a command that changes nothing sends no state action`);
    });

    test(`crdt ${c.type}: state changes are sent as deltas with the replies`, async () => {
      await run(entity(id("changes")), id("changes"), c.changes, `${c.type} changes`);
    });

    test(`crdt ${c.type}: the state in init is the starting state`, async () => {
      const stream = entity(id("init"), c.init[0]);
      assert.deepEqual(await read(stream, id("init"), "init"), stateJson(c.init[1]), `${c.type}: the state from init ${crdtDelta.describe(c.init[0])}`);
    });

    test(`crdt ${c.type}: replicated deltas change the state`, async () => {
      await run(entity(id("replicated")), id("replicated"), c.replicated, `${c.type} replicated deltas`);
    });

    test(`crdt ${c.type}: local and replicated changes interleaved`, async () => {
      await run(entity(id("interleaved")), id("interleaved"), c.interleaved, `${c.type} interleaved changes`);
    });

    test(`crdt ${c.type}: rehydration — a new stream whose init carries the replica's state reads as before`, async () => {
      const first = entity(id("rehydrated"));
      await run(first, id("rehydrated"), c.changes, `${c.type} changes before rehydration`);
      first.end();
      const end = await first.ended;
      assert.equal(end.code, 0, `${c.type}: the user function completes a stream the proxy closes (status ${end.code}: ${end.details})`);
      const second = entity(id("rehydrated"), c.afterChanges);
      const last = c.changes.at(-1)!.state;
      assert.deepEqual(await read(second, id("rehydrated"), "rehydrated"), stateJson(last), `${c.type}: the rehydrated state`);
    });

    test(`crdt ${c.type}: delete from the entity — the reply asks to delete the CRDT`, async () => {
      const stream = entity(id("deleted"), c.init[0]);
      const reply = await process(stream, id("deleted"), act.delete());
      assert.equal(sentDelta(reply.stateAction), "delete", `${c.type}: the state action is a delete`);
      stateOfReply(reply, "a delete");
      stream.end(); // the proxy completes the stream of a deleted entity
      const end = await stream.ended;
      assert.equal(end.code, 0, `${c.type}: the stream ends normally after the delete (status ${end.code}: ${end.details})`);
    });

    test(`crdt ${c.type}: delete towards the entity — the user function ends the stream`, async () => {
      const stream = entity(id("deleted-by-proxy"), c.init[0]);
      await read(stream, id("deleted-by-proxy"), "before the delete");
      stream.delete();
      assert.equal(await stream.next(2_000), undefined, `${c.type}: nothing is answered to a delete; the stream ends`);
      const end = await stream.ended;
      assert.equal(end.code, 0, `${c.type}: the user function completes the stream after the proxy's delete (status ${end.code}: ${end.details})`);
    });
  }

  test("crdt LWWRegister: the clock settings are sent with the value", async () => {
    const stream = entity("LWWRegister-clocks");
    const cases: [string, UpdateInit, CrdtDelta][] = [
      ["DEFAULT", up.lww("a"), lww("a", 0)],
      ["REVERSE", up.lww("b", ClockType.REVERSE), lww("b", 1)],
      ["CUSTOM", up.lww("c", ClockType.CUSTOM, 7), lww("c", 2, 7)],
      ["CUSTOM_AUTO_INCREMENT", up.lww("d", ClockType.CUSTOM_AUTO_INCREMENT, 9), lww("d", 3, 9)],
    ];
    for (const [clock, u, delta] of cases) {
      const reply = await update(stream, "LWWRegister-clocks", u);
      assertSends(reply, delta, `LWWRegister with clock ${clock}`);
    }
    assert.deepEqual(await read(stream, "LWWRegister-clocks", "after the clocks"), stateJson(st.lww("d")), "LWWRegister: the last value set");
  });

  test("crdt: the write consistency of an update goes with its state action (LOCAL by default, MAJORITY, ALL)", async () => {
    const stream = entity("GCounter-consistency");
    for (const [name, consistency] of [
      ["LOCAL", WriteConsistency.LOCAL],
      ["MAJORITY", WriteConsistency.MAJORITY],
      ["ALL", WriteConsistency.ALL],
    ] as const) {
      const reply = await update(stream, "GCounter-consistency", up.consistent(up.gcounter(1), consistency));
      assert.equal(reply.stateAction?.writeConsistency, consistency, `crdt: the state action's write consistency for ${name}`);
    }
    const del = await process(stream, "GCounter-consistency", act.update(up.consistent(up.gcounter(1), WriteConsistency.MAJORITY)), act.delete());
    assert.equal(sentDelta(del.stateAction), "delete", "crdt: a delete after an update is the state action");
  });

  test("crdt: a forward to CrdtTwo, with the command's delta", async () => {
    const reply = await process(entity("GCounter-forward"), "GCounter-forward", act.update(up.gcounter(3)), act.forward("two-f"));
    assert.deepEqual(expectForward(reply.clientAction?.action, { service: TWO, method: "Call", input: RequestSchema }, "a forward"), twoRequest("two-f", "forward"));
    assertSends(reply, gc(3), "a forward with an update");
  });

  test("crdt: side effects to CrdtTwo (asynchronous and synchronous, in order), with the command's delta", async () => {
    const reply = await process(entity("ORSet-effects"), "ORSet-effects", act.update(up.orsetAdd("a")), act.effect("e1"), act.effect("e2", true));
    assert.deepEqual(sideEffectsOf(reply.sideEffects, RequestSchema, "side effects"), [
      [TWO_CALL, twoRequest("e1", "effect"), false],
      [TWO_CALL, twoRequest("e2", "sync-effect"), true],
    ]);
    assertSends(reply, ors({ added: ["a"] }), "a command with side effects");
    assert.deepEqual(stateOfReply(reply, "side effects"), stateJson(st.orset("a")));
  });

  test("crdt: a forward with a side effect", async () => {
    const reply = await process(entity("Flag-forward-effect"), "Flag-forward-effect", act.effect("e1", true), act.forward("f1"));
    expectForward(reply.clientAction?.action, { service: TWO, method: "Call", input: RequestSchema }, "forward + effect");
    assert.deepEqual(sideEffectsOf(reply.sideEffects, RequestSchema, "forward + effect"), [[TWO_CALL, twoRequest("e1", "sync-effect"), true]]);
  });

  test("crdt: CrdtTwo holds a GSet of the marks it is sent, and the configured service works as Process", async () => {
    const two = entity("any-id", undefined, TWO);
    const reply = crdtMessageOf(await two.command(CrdtTwo.method.call, { id: "any-id", actions: [act.update(up.gset("effect"))] }), "reply");
    assertSends(reply, gs("effect"), "CrdtTwo");
    assert.deepEqual(stateOfReply(reply, "CrdtTwo"), stateJson(st.gset("effect")));
    const configured = entity("PNCounter-configured", pn(2), CrdtConfigured.typeName);
    const r = crdtMessageOf(await configured.command(CrdtConfigured.method.call, { id: "PNCounter-configured", actions: [act.update(up.pncounter(-5))] }), "reply");
    assertSends(r, pn(-5), "CrdtConfigured");
    assert.deepEqual(stateOfReply(r, "CrdtConfigured"), stateJson(st.pncounter(-3)));
  });

  test("crdt: a failure sends no delta and drops its side effects; the CRDT is unchanged and the stream usable", async () => {
    const stream = entity("GSet-failure", gs("kept"));
    const reply = await process(stream, "GSet-failure", act.update(up.gset("lost")), act.effect("e1"), act.effect("e2", true), act.fail("expected failure"));
    expectFailure(reply.clientAction?.action as never, "expected failure", "a failing command");
    assert.equal(sentDelta(reply.stateAction), undefined, "crdt: a failure reply carries no state action");
    assert.deepEqual(reply.sideEffects, [], "crdt: a failure reply carries no side effects");
    const next = await update(stream, "GSet-failure", up.gset("next"));
    assert.equal(next.commandId, 2n, "crdt: the next command is answered with its own id");
    assertSends(next, gs("next"), "after a failure (the failed command's element is not sent later)");
    assert.deepEqual(stateOfReply(next, "after a failure"), stateJson(st.gset("kept", "next")), "crdt: the failed command's change was undone");
  });

  test("crdt: an update for another CRDT type fails the command", async () => {
    const stream = entity("GCounter-mismatch");
    const reply = await update(stream, "GCounter-mismatch", up.orsetAdd("x"));
    expectFailure(reply.clientAction?.action as never, "GCounter-mismatch is a GCounter, not a ORSet", "an ORSet update of a GCounter");
    assert.equal(sentDelta(reply.stateAction), undefined, "crdt: the failed command sends no delta");
  });

  // ---- streamed calls

  async function openStreamed(stream: CrdtStreamDriver, request: StreamedInit): Promise<Reply> {
    return crdtMessageOf(await stream.command(CrdtTckModel.method.processStreamed, request), "reply");
  }
  /** The next message, a streamed message (`what` says which, for the assertion). */
  async function streamed(stream: CrdtStreamDriver, what: string) {
    try {
      return crdtMessageOf(await stream.next(), "streamedMessage");
    } catch (e) {
      throw new Error(`crdt streamed (${what}): ${(e as Error).message}`);
    }
  }

  test("crdt streamed: the first message, then the state after every change (local, replicated), to the call that asked", async () => {
    const stream = entity("GCounter-streamed");
    const opened = await openStreamed(stream, { id: "GCounter-streamed" });
    assert.equal(opened.streamed, true, "crdt streamed: the reply keeps the call open (streamed = true)");
    assert.deepEqual(stateOfReply(opened, "the first message"), stateJson(st.gcounter(0)));
    const local = await update(stream, "GCounter-streamed", up.gcounter(2));
    assert.equal(local.commandId, 2n, "crdt streamed: the next command's reply comes first");
    const pushed = await streamed(stream, "after a local change");
    assert.equal(pushed.commandId, opened.commandId, "crdt streamed: the message goes to the streamed call");
    assert.deepEqual(stateOfReply(pushed, "after a local change"), stateJson(st.gcounter(2)));
    assert.equal(pushed.endStream, false, "crdt streamed: the call stays open");
    stream.delta(gc(3));
    const replicated = await streamed(stream, "after a replicated delta");
    assert.deepEqual(stateOfReply(replicated, "after a replicated delta"), stateJson(st.gcounter(5)), "crdt streamed: a replicated delta is pushed");
    await process(stream, "GCounter-streamed"); // a read changes nothing: nothing is pushed
    stream.delta(gc(1));
    assert.deepEqual(stateOfReply(await streamed(stream, "next"), "after another delta"), stateJson(st.gcounter(6)), "crdt streamed: nothing came between (a read pushes nothing)");
  });

  test("crdt streamed: the call ends (end_stream) when the state reaches end_state", async () => {
    const stream = entity("ORSet-end");
    const opened = await openStreamed(stream, { id: "ORSet-end", endState: st.orset("a", "b") });
    assert.equal(opened.streamed, true);
    await update(stream, "ORSet-end", up.orsetAdd("a"));
    const first = await streamed(stream, "a");
    assert.deepEqual([stateOfReply(first, "a"), first.endStream], [stateJson(st.orset("a")), false], "crdt streamed: a change short of end_state");
    await update(stream, "ORSet-end", up.orsetAdd("b"));
    const last = await streamed(stream, "a, b");
    assert.deepEqual([stateOfReply(last, "a, b"), last.endStream], [stateJson(st.orset("a", "b")), true], "crdt streamed: the message at end_state ends the call");
    await update(stream, "ORSet-end", up.orsetAdd("c"));
    stream.delta(ors({ added: ["d"] }));
    const after = await process(stream, "ORSet-end");
    assert.equal(after.commandId, 5n, "crdt streamed: an ended call gets no more messages (the next message is the read's reply)");
  });

  test("crdt streamed: a call whose first state is end_state ends with its first message", async () => {
    const stream = entity("Flag-end", crdtDelta.flag(true));
    const opened = await openStreamed(stream, { id: "Flag-end", endState: st.flag(true) });
    assert.equal(opened.streamed, false, "crdt streamed: the reply does not keep the call open");
    assert.deepEqual(stateOfReply(opened, "the only message"), stateJson(st.flag(true)));
  });

  test("crdt streamed: the opening command's update is sent with its reply", async () => {
    const stream = entity("Vote-open");
    const opened = await openStreamed(stream, { id: "Vote-open", update: up.vote(true) });
    assertSends(opened, crdtDelta.vote({ selfVote: true }), "an update in the opening command");
    assert.deepEqual(stateOfReply(opened, "the first message"), stateJson(st.vote(true, 1, 1)));
    await process(stream, "Vote-open");
  });

  test("crdt streamed: cancellation — the cancelled response carries the cancel update and side effects", async () => {
    const stream = entity("PNCounter-cancel");
    const opened = await openStreamed(stream, {
      id: "PNCounter-cancel",
      cancelUpdate: up.pncounter(-4),
      cancelEffects: [{ id: "c1", synchronous: true }, { id: "c2" }],
    });
    const cancelled = crdtMessageOf(await stream.cancelStream(opened.commandId), "streamCancelledResponse");
    assert.equal(cancelled.commandId, opened.commandId, "crdt streamed: the cancelled response names the call");
    assert.deepEqual(deltaJson(sentDelta(cancelled.stateAction) as CrdtDelta), deltaJson(pn(-4)), "crdt streamed: the cancellation's delta");
    assert.deepEqual(sideEffectsOf(cancelled.sideEffects, RequestSchema, "cancellation"), [
      [TWO_CALL, twoRequest("c1", "sync-effect"), true],
      [TWO_CALL, twoRequest("c2", "effect"), false],
    ]);
    assert.deepEqual(await read(stream, "PNCounter-cancel", "after the cancellation"), stateJson(st.pncounter(-4)), "crdt streamed: the cancellation's change stands");
  });

  test("crdt streamed: an empty call sends nothing, is not told of changes, and is answered when cancelled", async () => {
    const stream = entity("GSet-empty");
    const opened = await openStreamed(stream, { id: "GSet-empty", empty: true, cancelUpdate: up.gset("gone") });
    assert.equal(opened.streamed, true, "crdt streamed: the empty reply keeps the call open");
    assert.equal(opened.clientAction?.action.case, undefined, "crdt streamed: the empty reply has no client action");
    await update(stream, "GSet-empty", up.gset("a"));
    const cancelled = crdtMessageOf(await stream.cancelStream(opened.commandId), "streamCancelledResponse");
    assert.deepEqual(deltaJson(sentDelta(cancelled.stateAction) as CrdtDelta), deltaJson(gs("gone")), "crdt streamed: the empty call's cancel update");
  });

  test("crdt streamed: a cancellation with nothing to do gets an empty response", async () => {
    const stream = entity("LWWRegister-cancel-nothing");
    const opened = await openStreamed(stream, { id: "LWWRegister-cancel-nothing" });
    const cancelled = crdtMessageOf(await stream.cancelStream(opened.commandId), "streamCancelledResponse");
    assert.equal(sentDelta(cancelled.stateAction), undefined, "crdt streamed: no state action");
    assert.deepEqual(cancelled.sideEffects, [], "crdt streamed: no side effects");
  });

  test("crdt streamed: each pushed message carries the call's side effects", async () => {
    const stream = entity("GCounter-stream-effects");
    const opened = await openStreamed(stream, { id: "GCounter-stream-effects", effects: [{ id: "s1" }, { id: "s2", synchronous: true }] });
    assert.deepEqual(opened.sideEffects, [], "crdt streamed: the first message has no side effects");
    stream.delta(gc(1));
    const pushed = await streamed(stream, "after a change");
    assert.deepEqual(sideEffectsOf(pushed.sideEffects, RequestSchema, "streamed message"), [
      [TWO_CALL, twoRequest("s1", "effect"), false],
      [TWO_CALL, twoRequest("s2", "sync-effect"), true],
    ]);
  });

  test("crdt streamed: a cancellation's change is pushed to the other open calls; a cancelled call gets no more", async () => {
    const stream = entity("GCounter-two-calls");
    const a = await openStreamed(stream, { id: "GCounter-two-calls", cancelUpdate: up.gcounter(10) });
    const b = await openStreamed(stream, { id: "GCounter-two-calls" });
    const cancelled = await stream.cancelStream(a.commandId);
    crdtMessageOf(cancelled, "streamCancelledResponse");
    const pushed = await streamed(stream, "after the cancellation");
    assert.equal(pushed.commandId, b.commandId, "crdt streamed: only the open call hears of the change");
    assert.deepEqual(stateOfReply(pushed, "after the cancellation"), stateJson(st.gcounter(10)));
  });

  test("crdt streamed: a replicated delete ends the stream with the open calls", async () => {
    const stream = entity("ORMap-streamed-delete");
    await openStreamed(stream, { id: "ORMap-streamed-delete" });
    stream.delete();
    assert.equal(await stream.next(2_000), undefined, "crdt streamed: no message after the delete");
    assert.equal((await stream.ended).code, 0, "crdt streamed: the stream completes");
  });

  test("crdt presence: a Vote per user in an ORMap tracks two streamed connections", async () => {
    const id = "ORMap-presence";
    const stream = entity(id);
    const connect = (user: string) =>
      openStreamed(stream, { id, update: up.ormapUpdate(`Vote-${user}`, up.vote(true)), cancelUpdate: up.ormapUpdate(`Vote-${user}`, up.vote(false)) });
    const alice = await connect("alice");
    assertSends(alice, om({ added: [["Vote-alice", crdtDelta.vote({ selfVote: true })]] }), "alice connects");
    assert.deepEqual(stateOfReply(alice, "alice connects"), stateJson(st.ormap(["Vote-alice", st.vote(true, 1, 1)])));
    const bob = await connect("bob");
    assert.deepEqual(stateOfReply(bob, "bob connects"), stateJson(st.ormap(["Vote-alice", st.vote(true, 1, 1)], ["Vote-bob", st.vote(true, 1, 1)])));
    const toAlice = await streamed(stream, "alice hears of bob");
    assert.equal(toAlice.commandId, alice.commandId, "presence: alice's call is told that bob connected");
    assert.deepEqual(stateOfReply(toAlice, "alice hears of bob"), stateJson(st.ormap(["Vote-alice", st.vote(true, 1, 1)], ["Vote-bob", st.vote(true, 1, 1)])));

    const left = crdtMessageOf(await stream.cancelStream(alice.commandId), "streamCancelledResponse");
    assert.deepEqual(
      deltaJson(sentDelta(left.stateAction) as CrdtDelta),
      deltaJson(om({ updated: [["Vote-alice", crdtDelta.vote({ selfVote: false })]] })),
      "presence: alice's cancellation votes no",
    );
    const toBob = await streamed(stream, "bob hears alice leave");
    assert.equal(toBob.commandId, bob.commandId, "presence: bob's call is told");
    assert.deepEqual(stateOfReply(toBob, "alice left"), stateJson(st.ormap(["Vote-alice", st.vote(false, 0, 1)], ["Vote-bob", st.vote(true, 1, 1)])));

    // Alice connects on another node: the proxy's tally counts that node's yes.
    stream.delta(om({ updated: [["Vote-alice", crdtDelta.vote({ selfVote: false, votesFor: 1, totalVoters: 2 })]] }));
    const elsewhere = await streamed(stream, "alice on another node");
    assert.deepEqual(stateOfReply(elsewhere, "alice elsewhere"), stateJson(st.ormap(["Vote-alice", st.vote(false, 1, 2)], ["Vote-bob", st.vote(true, 1, 1)])), "presence: alice is online elsewhere");
  });
});
