// Direction (a), event-sourced entities: the suite plays the proxy on EventSourced.handle streams —
// init (with or without a snapshot), replayed events, commands — and checks each reply's events,
// snapshot, client action and side effects.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { replyOf, type EventSourcedReply, type EventSourcedStreamDriver } from "@cloudstate-ts/sdk/testing";
import {
  EventSourcedConfigured,
  EventSourcedTckModel,
  EventSourcedTwo,
  PersistedSchema,
  RequestSchema,
  ResponseSchema,
  type RequestActionSchema,
} from "../gen/cloudstate/tck/model/eventsourced_pb.js";
import { expectFailure, expectForward, expectReply, sideEffectsOf, unpack } from "./replies.js";
import { startUserFunction, type UserFunctionUnderTest } from "./user-function.js";

type Action = MessageInitShape<typeof RequestActionSchema>;
const emit = (value: string): Action => ({ action: { case: "emit", value: { value } } });
const forward = (id: string): Action => ({ action: { case: "forward", value: { id } } });
const effect = (id: string, synchronous = false): Action => ({ action: { case: "effect", value: { id, synchronous } } });
const fail = (message: string): Action => ({ action: { case: "fail", value: { message } } });

const MODEL = EventSourcedTckModel.typeName;
const TWO = EventSourcedTwo.typeName;
const TWO_CALL = `${TWO}.Call`;
const twoRequest = (id: string, mark: string) => ({ id, actions: [{ emit: { value: mark } }] });

describe("direction (a) — event-sourced", () => {
  let uf: UserFunctionUnderTest;
  const open: EventSourcedStreamDriver[] = [];

  before(async () => {
    uf = await startUserFunction();
  });
  after(async () => {
    for (const stream of open) stream.cancel();
    await uf.close();
  });

  /** A new entity stream, initialised (optionally from a snapshot) and fed the given events (sequence numbers follow the snapshot's). */
  function entity(id: string, from: { snapshot?: [sequence: number, state: string]; events?: string[]; service?: string } = {}): EventSourcedStreamDriver {
    const stream = uf.driver.eventSourced();
    open.push(stream);
    const snapshot = from.snapshot && { sequence: from.snapshot[0], schema: PersistedSchema, state: { value: from.snapshot[1] } };
    stream.init(from.service ?? MODEL, id, snapshot);
    let sequence = from.snapshot?.[0] ?? 0;
    for (const value of from.events ?? []) stream.event(++sequence, PersistedSchema, { value });
    return stream;
  }

  async function process(stream: EventSourcedStreamDriver, id: string, ...actions: Action[]): Promise<EventSourcedReply> {
    return replyOf(await stream.command(EventSourcedTckModel.method.process, { id, actions }));
  }

  const messageOf = (reply: EventSourcedReply, what: string) => expectReply(reply.clientAction?.action, ResponseSchema, what).message;
  const eventsOf = (reply: EventSourcedReply, what: string) => reply.events.map((e, i) => unpack(e, PersistedSchema, `${what} (event ${i + 1})`).value);
  const snapshotOf = (reply: EventSourcedReply, what: string) => (reply.snapshot ? unpack(reply.snapshot, PersistedSchema, `${what} (snapshot)`).value : undefined);

  test("event-sourced: a new entity (no snapshot, no events) starts from the initial state", async () => {
    const stream = entity("initial");
    const reply = await process(stream, "initial");
    assert.equal(reply.commandId, 1n, "event-sourced: the reply's command id matches the command's (ids start at 1)");
    assert.equal(messageOf(reply, "initial state"), "", "event-sourced: the initial state is empty");
    assert.deepEqual(eventsOf(reply, "initial state"), [], "event-sourced: a command that emits nothing has no events");
    assert.equal(reply.snapshot, undefined, "event-sourced: no snapshot without events");
    assert.deepEqual(reply.sideEffects, [], "event-sourced: no side effects were asked for");
  });

  test("event-sourced: a command emitting a single event", async () => {
    const stream = entity("single");
    const reply = await process(stream, "single", emit("A"));
    assert.deepEqual(eventsOf(reply, "single event"), ["A"], "event-sourced: the reply carries the emitted event");
    assert.equal(messageOf(reply, "single event"), "A", "event-sourced: the reply sees the state after the event");
    assert.equal(reply.snapshot, undefined, "event-sourced: no snapshot before 5 events");
  });

  test("event-sourced: commands emitting multiple events, with ids counting up", async () => {
    const stream = entity("multiple");
    const first = await process(stream, "multiple", emit("A"), emit("B"), emit("C"));
    assert.deepEqual(eventsOf(first, "multiple events"), ["A", "B", "C"], "event-sourced: every emitted event, in order");
    assert.equal(messageOf(first, "multiple events"), "ABC");
    const second = await process(stream, "multiple", emit("D"));
    assert.equal(second.commandId, 2n, "event-sourced: the second command's reply has command id 2");
    assert.equal(messageOf(second, "multiple events, second command"), "ABCD", "event-sourced: the state carries over between commands");
  });

  test("event-sourced: events and a snapshot every 5 events (the state after the command's events)", async () => {
    const stream = entity("snapshots");
    const r1 = await process(stream, "snapshots", emit("A"), emit("B"), emit("C"), emit("D")); // 1..4
    assert.equal(snapshotOf(r1, "events 1-4"), undefined, "event-sourced: no snapshot before sequence 5");
    const r2 = await process(stream, "snapshots", emit("E")); // 5
    assert.equal(snapshotOf(r2, "event 5"), "ABCDE", "event-sourced: a snapshot when the sequence reaches 5");
    const r3 = await process(stream, "snapshots", emit("F"), emit("G"), emit("H"), emit("I")); // 6..9
    assert.equal(snapshotOf(r3, "events 6-9"), undefined, "event-sourced: no snapshot between sequences 5 and 10");
    const r4 = await process(stream, "snapshots", emit("J"), emit("K")); // 10..11
    assert.deepEqual(eventsOf(r4, "events 10-11"), ["J", "K"]);
    assert.equal(snapshotOf(r4, "events 10-11"), "ABCDEFGHIJK", "event-sourced: a command crossing sequence 10 snapshots the state after all its events");
  });

  test("event-sourced: an entity initialised from a snapshot starts from it", async () => {
    const stream = entity("initial-snapshot", { snapshot: [5, "ABCDE"] });
    assert.equal(messageOf(await process(stream, "initial-snapshot"), "initial snapshot"), "ABCDE", "event-sourced: the state is the snapshot's");
  });

  test("event-sourced: replayed events rebuild the state", async () => {
    const stream = entity("replay", { events: ["A", "B", "C"] });
    assert.equal(messageOf(await process(stream, "replay"), "replayed events"), "ABC", "event-sourced: the state is built from the replayed events");
  });

  test("event-sourced: a snapshot and later events, then snapshots continue from the replayed sequence", async () => {
    const stream = entity("snapshot-events", { snapshot: [5, "ABCDE"], events: ["F", "G"] }); // sequence 7
    assert.equal(messageOf(await process(stream, "snapshot-events"), "snapshot + events"), "ABCDEFG", "event-sourced: snapshot, then events");
    const r1 = await process(stream, "snapshot-events", emit("H"), emit("I")); // 8..9
    assert.equal(snapshotOf(r1, "snapshot + events, then 2 more"), undefined, "event-sourced: no snapshot at sequence 9");
    const r2 = await process(stream, "snapshot-events", emit("J")); // 10
    assert.equal(snapshotOf(r2, "snapshot + events, then 3 more"), "ABCDEFGHIJ", "event-sourced: the snapshot is due at sequence 10, counted from the replayed sequence");
  });

  test("event-sourced: a failure does not persist its events", async () => {
    const stream = entity("failure");
    await process(stream, "failure", emit("A"));
    const failed = await process(stream, "failure", emit("B"), fail("expected failure"));
    expectFailure(failed.clientAction?.action, "expected failure", "a failing command");
    assert.equal(failed.commandId, 2n, "event-sourced: the failure's reply has the command's id");
    assert.deepEqual(failed.events, [], "event-sourced: a failure reply carries no events");
    assert.equal(failed.snapshot, undefined, "event-sourced: a failure reply carries no snapshot");
    assert.equal(messageOf(await process(stream, "failure"), "after a failure"), "A", "event-sourced: the failed command's events are not applied");
  });

  test("event-sourced: the stream is usable after a failure", async () => {
    const stream = entity("usable-after-failure");
    expectFailure((await process(stream, "usable-after-failure", fail("first"))).clientAction?.action, "first", "a failing command");
    const reply = await process(stream, "usable-after-failure", emit("A"));
    assert.equal(reply.commandId, 2n, "event-sourced: the next command is answered with its own id");
    assert.equal(messageOf(reply, "after a failure"), "A", "event-sourced: the next command runs normally");
  });

  test("event-sourced: failure with the restart path — a new stream, init and replay, ids from 1", async () => {
    const first = entity("restart");
    await process(first, "restart", emit("A"), emit("B"), emit("C"), emit("D"), emit("E"), emit("F")); // snapshot at 6: ABCDEF
    expectFailure((await process(first, "restart", emit("X"), fail("restart me"))).clientAction?.action, "restart me", "a failing command");
    // The proxy restarts the entity: it closes the stream, then replays what it stored (never the failed events).
    first.end();
    const end = await first.ended;
    assert.equal(end.code, 0, `event-sourced: the user function completes a stream the proxy closes (status ${end.code}: ${end.details})`);
    const second = entity("restart", { snapshot: [6, "ABCDEF"], events: ["G"] });
    const reply = await process(second, "restart", emit("H"));
    assert.equal(reply.commandId, 1n, "event-sourced: ids start at 1 on the new stream");
    assert.equal(messageOf(reply, "after a restart"), "ABCDEFGH", "event-sourced: the restarted entity has the snapshot, the replayed events and the new one");
  });

  test("event-sourced: a forward to the second service, after the command's events", async () => {
    const stream = entity("forward");
    const reply = await process(stream, "forward", emit("A"), forward("two-forward"));
    const payload = expectForward(reply.clientAction?.action, { service: TWO, method: "Call", input: RequestSchema }, "a forwarding command");
    assert.deepEqual(payload, twoRequest("two-forward", "forward"), "event-sourced: the forward's payload");
    assert.deepEqual(eventsOf(reply, "a forwarding command"), ["A"], "event-sourced: a forward keeps the command's events");
  });

  test("event-sourced: a side effect to the second service", async () => {
    const stream = entity("effect");
    const reply = await process(stream, "effect", effect("two-effect"));
    assert.equal(messageOf(reply, "a command with a side effect"), "", "event-sourced: the reply is the state");
    assert.deepEqual(sideEffectsOf(reply.sideEffects, RequestSchema, "a side effect"), [[TWO_CALL, twoRequest("two-effect", "effect"), false]]);
  });

  test("event-sourced: a synchronous side effect", async () => {
    const stream = entity("sync-effect");
    const reply = await process(stream, "sync-effect", emit("A"), effect("two-sync", true));
    assert.deepEqual(eventsOf(reply, "a command with a synchronous side effect"), ["A"]);
    assert.deepEqual(sideEffectsOf(reply.sideEffects, RequestSchema, "a synchronous side effect"), [[TWO_CALL, twoRequest("two-sync", "sync-effect"), true]]);
  });

  test("event-sourced: several side effects, in order", async () => {
    const stream = entity("effects");
    const reply = await process(stream, "effects", effect("e1"), emit("A"), effect("e2", true), effect("e3"));
    assert.deepEqual(sideEffectsOf(reply.sideEffects, RequestSchema, "several side effects"), [
      [TWO_CALL, twoRequest("e1", "effect"), false],
      [TWO_CALL, twoRequest("e2", "sync-effect"), true],
      [TWO_CALL, twoRequest("e3", "effect"), false],
    ]);
  });

  test("event-sourced: a forward with a side effect", async () => {
    const stream = entity("forward-effect");
    const reply = await process(stream, "forward-effect", emit("A"), effect("e1"), forward("f1"));
    assert.deepEqual(expectForward(reply.clientAction?.action, { service: TWO, method: "Call", input: RequestSchema }, "forward + effect"), twoRequest("f1", "forward"));
    assert.deepEqual(sideEffectsOf(reply.sideEffects, RequestSchema, "forward + effect"), [[TWO_CALL, twoRequest("e1", "effect"), false]]);
    assert.deepEqual(eventsOf(reply, "forward + effect"), ["A"]);
  });

  test("event-sourced: a failure drops its side effects", async () => {
    const stream = entity("failure-effects");
    const reply = await process(stream, "failure-effects", effect("e1"), effect("e2", true), fail("no effects"));
    expectFailure(reply.clientAction?.action, "no effects", "a failing command with side effects");
    assert.deepEqual(reply.sideEffects, [], "event-sourced: a failure reply carries no side effects");
  });

  test("event-sourced: the second and the configured services run on their own streams", async () => {
    for (const [service, method] of [
      [EventSourcedTwo.typeName, EventSourcedTwo.method.call],
      [EventSourcedConfigured.typeName, EventSourcedConfigured.method.call],
    ] as const) {
      const stream = entity("other", { service, events: ["A"] });
      const reply = replyOf(await stream.command(method, create(RequestSchema, { id: "other", actions: [emit("B")] })));
      assert.equal(messageOf(reply, service), "AB", `event-sourced: ${service}.Call works like Process`);
    }
  });

  test("event-sourced: the user function completes the stream when the proxy passivates the entity", async () => {
    const stream = entity("passivated", { service: EventSourcedConfigured.typeName });
    replyOf(await stream.command(EventSourcedConfigured.method.call, { id: "passivated", actions: [emit("A")] }));
    stream.end();
    const end = await stream.ended;
    assert.equal(end.code, 0, `event-sourced: the stream ends cleanly after the proxy half-closes it (status ${end.code}: ${end.details})`);
  });
});
