// Direction (b), CRDT entities: a gRPC client calls the CRDT model through the proxy and checks what
// a client can observe — each type's changes read back, deletes (later calls NOT_FOUND), failures,
// forwards and side effects reaching CrdtTwo (read back from its GSet), streamed calls (plain,
// end_stream, cancellation whose side effect reaches CrdtTwo), write consistency, Vote-based presence
// with two streamed connections, and (our proxy, SQLite) the state after a proxy restart.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { status } from "@grpc/grpc-js";
import type { JsonValue, MessageInitShape } from "@bufbuild/protobuf";
import { CrdtConfigured, CrdtTckModel, CrdtTwo, type StreamedRequestSchema } from "../gen/cloudstate/tck/model/crdt_pb.js";
import { act, st, stateJson, up, WriteConsistency, type ActionInit, type StateInit, type UpdateInit } from "../model/crdt-requests.js";
import { eventually, rejectsWith, sleep } from "./expectations.js";
import { NEEDS_OUR_PROXY, startProxyUnderTest, type ProxyUnderTest } from "./proxy-under-test.js";

/** Per type: updates to run (one command each) and the state they leave. */
const HISTORIES: [type: string, updates: UpdateInit[], state: StateInit][] = [
  ["GCounter", [up.gcounter(5), up.gcounter(7)], st.gcounter(12)],
  ["PNCounter", [up.pncounter(5), up.pncounter(-7)], st.pncounter(-2)],
  ["GSet", [up.gset("a"), up.gset("b"), up.gset("a")], st.gset("a", "b")],
  ["ORSet", [up.orsetAdd("a"), up.orsetAdd("b"), up.orsetRemove("a"), up.orsetAdd("c")], st.orset("b", "c")],
  ["LWWRegister", [up.lww("one"), up.lww("two")], st.lww("two")],
  ["Flag", [up.flag()], st.flag(true)],
  [
    "ORMap",
    [up.ormapUpdate("GCounter-a", up.gcounter(2)), up.ormapUpdate("GCounter-a", up.gcounter(3)), up.ormapUpdate("ORSet-b", up.orsetAdd("x")), up.ormapAdd("Flag-c")],
    st.ormap(["Flag-c", st.flag(false)], ["GCounter-a", st.gcounter(5)], ["ORSet-b", st.orset("x")]),
  ],
  ["Vote", [up.vote(true)], st.vote(true, 1, 1)],
];
const EMPTY: Record<string, StateInit> = {
  GCounter: st.gcounter(0),
  PNCounter: st.pncounter(0),
  GSet: st.gset(),
  ORSet: st.orset(),
  LWWRegister: st.lww(""),
  Flag: st.flag(false),
  ORMap: st.ormap(),
  Vote: st.vote(false, 0, 1),
};

function client(p: () => ProxyUnderTest) {
  const process = async (id: string, ...actions: ActionInit[]): Promise<JsonValue> =>
    stateJson((await p().client.unary(CrdtTckModel.method.process, { id, actions })).state);
  const update = (id: string, u: UpdateInit) => process(id, act.update(u));
  /** CrdtTwo's marks (its GSet's elements). */
  const two = async (id: string): Promise<JsonValue> => stateJson((await p().client.unary(CrdtTwo.method.call, { id })).state);
  const streamed = (request: MessageInitShape<typeof StreamedRequestSchema>) => p().client.streamedOut(CrdtTckModel.method.processStreamed, request);
  return { process, update, two, streamed };
}

describe("direction (b) — CRDT through the proxy", () => {
  let p: ProxyUnderTest;
  before(async () => {
    p = await startProxyUnderTest();
  });
  after(() => p.close());
  const { process, update, two, streamed } = client(() => p);
  const marks = (...elements: string[]) => stateJson(st.gset(...elements));

  for (const [type, updates, state] of HISTORIES) {
    test(`crdt ${type}: a new entity reads empty; changes are kept and read back`, async () => {
      const id = p.id(`${type}-changes`);
      assert.deepEqual(await process(id), stateJson(EMPTY[type]), `crdt ${type}: a new entity's state`);
      let last: JsonValue = null;
      for (const u of updates) last = await update(id, u);
      assert.deepEqual(last, stateJson(state), `crdt ${type}: the reply after the changes`);
      assert.deepEqual(await process(id), stateJson(state), `crdt ${type}: the changes are kept`);
    });

    test(`crdt ${type}: a deleted entity answers NOT_FOUND afterwards`, async () => {
      const id = p.id(`${type}-deleted`);
      await update(id, updates[0]!);
      await process(id, act.delete());
      await rejectsWith(process(id), status.NOT_FOUND, "deleted", `crdt ${type}: a call after the delete`);
      await rejectsWith(update(id, updates[0]!), status.NOT_FOUND, "deleted", `crdt ${type}: an update after the delete`);
    });
  }

  test("crdt: changes in one command are applied together (ORSet clear then add; ORMap remove)", async () => {
    const id = p.id("ORSet-together");
    await update(id, up.orsetAdd("a"));
    assert.deepEqual(await process(id, act.update(up.orsetClear()), act.update(up.orsetAdd("b"))), stateJson(st.orset("b")));
    assert.deepEqual(await process(id), stateJson(st.orset("b")), "crdt: clear + add in one command is kept");
    const map = p.id("ORMap-together");
    await update(map, up.ormapUpdate("PNCounter-x", up.pncounter(-3)));
    assert.deepEqual(await update(map, up.ormapRemove("PNCounter-x")), stateJson(st.ormap()));
    assert.deepEqual(await process(map), stateJson(st.ormap()), "crdt: the ORMap key stays removed");
  });

  test("crdt LWWRegister: every clock setting writes the value (one node: the local write wins)", async () => {
    const id = p.id("LWWRegister-clocks");
    assert.deepEqual(await update(id, up.lww("a")), stateJson(st.lww("a")));
    assert.deepEqual(await update(id, up.lww("b", 1)), stateJson(st.lww("b")), "REVERSE");
    assert.deepEqual(await update(id, up.lww("c", 2, 7)), stateJson(st.lww("c")), "CUSTOM");
    assert.deepEqual(await update(id, up.lww("d", 3, 1)), stateJson(st.lww("d")), "CUSTOM_AUTO_INCREMENT");
    assert.deepEqual(await process(id), stateJson(st.lww("d")), "crdt LWWRegister: the last write is kept");
  });

  test("crdt: an update with MAJORITY (and ALL) write consistency is answered, and kept", async () => {
    const id = p.id("GCounter-majority");
    assert.deepEqual(await update(id, up.consistent(up.gcounter(2), WriteConsistency.MAJORITY)), stateJson(st.gcounter(2)), "crdt: the MAJORITY reply");
    assert.deepEqual(await update(id, up.consistent(up.gcounter(3), WriteConsistency.ALL)), stateJson(st.gcounter(5)), "crdt: the ALL reply");
    assert.deepEqual(await process(id), stateJson(st.gcounter(5)));
  });

  test("crdt: a failure reaches the client as status UNKNOWN with its message, and changes nothing", async () => {
    const id = p.id("GSet-failure");
    await update(id, up.gset("kept"));
    await rejectsWith(process(id, act.update(up.gset("lost")), act.fail("expected failure")), status.UNKNOWN, "expected failure", "crdt: a failure");
    assert.deepEqual(await process(id), stateJson(st.gset("kept")), "crdt: the failed command's change is not applied");
    await rejectsWith(update(p.id("GCounter-mismatch"), up.flag()), status.UNKNOWN, "is a GCounter, not a Flag", "crdt: an update of another type");
  });

  test("crdt: a failure drops its side effects", async () => {
    const [sync, async] = [p.id("dropped-sync"), p.id("dropped-async")];
    await rejectsWith(process(p.id("Flag-failure-effects"), act.effect(async), act.effect(sync, true), act.fail("dropped")), status.UNKNOWN, "dropped", "crdt: a failing command");
    await sleep(200); // room for an asynchronous effect that should not run
    assert.deepEqual([await two(sync), await two(async)], [marks(), marks()], "crdt: neither side effect of a failed command ran");
  });

  test("crdt: a forward reaches CrdtTwo, whose reply answers the client; the change is kept", async () => {
    const [id, target] = [p.id("PNCounter-forward"), p.id("forward-target")];
    assert.deepEqual(await process(id, act.update(up.pncounter(4)), act.forward(target)), marks("forward"), "crdt: the client gets CrdtTwo's reply");
    assert.deepEqual(await two(target), marks("forward"), "crdt: CrdtTwo ran the forwarded command");
    assert.deepEqual(await process(id), stateJson(st.pncounter(4)), "crdt: the forwarding command's change is kept");
  });

  test("crdt: a synchronous side effect has run when the reply arrives; an asynchronous one runs", async () => {
    const [sync, async] = [p.id("sync-effect"), p.id("async-effect")];
    await process(p.id("GCounter-effects"), act.update(up.gcounter(1)), act.effect(sync, true), act.effect(async));
    assert.deepEqual(await two(sync), marks("sync-effect"), "crdt: CrdtTwo ran the synchronous side effect before the reply");
    await eventually("crdt: CrdtTwo runs the asynchronous side effect", async () => assert.deepEqual(await two(async), marks("effect")));
  });

  test("crdt: the configured service keeps its state across passivation (100 ms)", async () => {
    const id = p.id("GCounter-configured");
    await p.client.unary(CrdtConfigured.method.call, { id, actions: [act.update(up.gcounter(3))] });
    await sleep(250);
    const reply = await p.client.unary(CrdtConfigured.method.call, { id, actions: [act.update(up.gcounter(1))] });
    assert.deepEqual(stateJson(reply.state), stateJson(st.gcounter(4)), "crdt: the state after passivation");
  });

  test("crdt streamed: the first message, then the state after each change, until end_state ends the call", async () => {
    const id = p.id("GCounter-streamed");
    const call = streamed({ id, endState: st.gcounter(5) });
    assert.deepEqual(stateJson((await call.next())?.state), stateJson(st.gcounter(0)), "crdt streamed: the first message");
    await update(id, up.gcounter(2));
    assert.deepEqual(stateJson((await call.next())?.state), stateJson(st.gcounter(2)), "crdt streamed: the state after a change");
    await process(id); // a read: nothing pushed
    await update(id, up.gcounter(3));
    assert.deepEqual(stateJson((await call.next())?.state), stateJson(st.gcounter(5)), "crdt streamed: the state at end_state");
    const end = await call.endsWithin(2_000, "crdt streamed: end_stream");
    assert.equal(end.code, status.OK, `crdt streamed: the call ends normally (${end.details})`);
    assert.equal(await call.next(), undefined, "crdt streamed: nothing after the end");
  });

  test("crdt streamed: each pushed message's side effects run", async () => {
    const [id, target] = [p.id("ORSet-stream-effects"), p.id("stream-effect-target")];
    const call = streamed({ id, effects: [{ id: target, synchronous: true }] });
    await call.next();
    assert.deepEqual(await two(target), marks(), "crdt streamed: no side effect before a change");
    await update(id, up.orsetAdd("x"));
    assert.deepEqual(stateJson((await call.next())?.state), stateJson(st.orset("x")));
    await eventually("crdt streamed: the streamed message's side effect reaches CrdtTwo", async () => assert.deepEqual(await two(target), marks("sync-effect")));
    call.cancel();
  });

  test("crdt streamed: cancelling a call applies its cancel update and runs its side effect", async () => {
    const [id, target] = [p.id("PNCounter-cancel"), p.id("cancel-effect-target")];
    const call = streamed({ id, cancelUpdate: up.pncounter(-4), cancelEffects: [{ id: target }] });
    assert.deepEqual(stateJson((await call.next())?.state), stateJson(st.pncounter(0)));
    call.cancel();
    await eventually("crdt streamed: the cancellation's side effect reaches CrdtTwo", async () => assert.deepEqual(await two(target), marks("effect")));
    await eventually("crdt streamed: the cancellation's update is applied", async () => assert.deepEqual(await process(id), stateJson(st.pncounter(-4))));
  });

  test("crdt streamed: an empty call sends nothing; its cancellation is applied", async () => {
    const id = p.id("GSet-empty");
    const call = streamed({ id, empty: true, cancelUpdate: up.gset("cancelled") });
    await sleep(100);
    await update(id, up.gset("a"));
    await assert.rejects(call.next(300), /no response/, "crdt streamed: an empty call gets no message");
    call.cancel();
    await eventually("crdt streamed: the empty call's cancel update is applied", async () => assert.deepEqual(await process(id), stateJson(st.gset("a", "cancelled"))));
  });

  test("crdt presence: a Vote per user tracks two streamed connections", async () => {
    const id = p.id("ORMap-presence");
    const connect = (user: string) => streamed({ id, update: up.ormapUpdate(`Vote-${user}`, up.vote(true)), cancelUpdate: up.ormapUpdate(`Vote-${user}`, up.vote(false)) });
    const online = (users: Record<string, boolean>) => stateJson(st.ormap(...Object.entries(users).map(([u, yes]): [string, StateInit] => [`Vote-${u}`, st.vote(yes, yes ? 1 : 0, 1)])));
    const alice = connect("alice");
    assert.deepEqual(stateJson((await alice.next())?.state), online({ alice: true }), "presence: alice sees herself online");
    const bob = connect("bob");
    assert.deepEqual(stateJson((await bob.next())?.state), online({ alice: true, bob: true }), "presence: bob sees both online");
    assert.deepEqual(stateJson((await alice.next())?.state), online({ alice: true, bob: true }), "presence: alice is told bob connected");
    alice.cancel();
    assert.deepEqual(stateJson((await bob.next())?.state), online({ alice: false, bob: true }), "presence: bob is told alice left");
    assert.deepEqual(await process(id), online({ alice: false, bob: true }), "presence: the state read by a plain call");
    bob.cancel();
    await eventually("presence: nobody online after both left", async () => assert.deepEqual(await process(id), online({ alice: false, bob: false })));
  });
});

describe("direction (b) — CRDT state survives a proxy restart (SQLite)", { skip: NEEDS_OUR_PROXY }, () => {
  let p: ProxyUnderTest;
  let dir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "tck-crdt-"));
    p = await startProxyUnderTest({ store: `sqlite:${join(dir, "state.db")}` });
  });
  after(async () => {
    await p?.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const { process, update } = client(() => p);

  test("crdt: every type's state (LOCAL and MAJORITY writes) survives a proxy restart; deleted stays deleted", async () => {
    const ids = HISTORIES.map(([type]) => p.id(`${type}-durable`));
    for (const [i, [, updates]] of HISTORIES.entries()) for (const u of updates) await update(ids[i]!, u);
    const majority = p.id("GCounter-majority-durable");
    await update(majority, up.consistent(up.gcounter(9), WriteConsistency.MAJORITY));
    const deleted = p.id("ORSet-deleted-durable");
    await update(deleted, up.orsetAdd("x"));
    await process(deleted, act.delete());

    await p.restart();

    for (const [i, [type, , state]] of HISTORIES.entries()) {
      // A Vote belongs to a node: after the restart this node is a new voter, and the old node is not live.
      const expected = type === "Vote" ? st.vote(false, 0, 1) : state;
      assert.deepEqual(await process(ids[i]!), stateJson(expected), `crdt ${type}: the state after a restart`);
    }
    assert.deepEqual(await process(majority), stateJson(st.gcounter(9)), "crdt: a MAJORITY write survives a restart");
    await rejectsWith(process(deleted), status.NOT_FOUND, "deleted", "crdt: a deleted entity stays deleted after a restart");
  });
});
