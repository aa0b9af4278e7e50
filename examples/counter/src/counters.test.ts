// The counters and the poll: with the in-process testkit (local and replicated changes, Watch), and
// over the Cloudstate protocol as the proxy drives it.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { fromBinary } from "@bufbuild/protobuf";
import { serve, type UserFunctionServer } from "@cloudstate-ts/sdk";
import { crdtDelta, crdtMessageOf, ProxyDriver, testkit, type CrdtOutMessages } from "@cloudstate-ts/sdk/testing";
import { counter, poll, upDownCounter } from "./counters.js";
import { Counter, ValueSchema } from "./gen/com/example/counter/counter_pb.js";

describe("with the testkit", () => {
  test("a counter counts this node's increments and the other nodes'", async () => {
    const t = testkit(counter, { entityId: "hits" });
    assert.equal((await t.call("increment", { counterId: "hits" })).value, 1n, "by 0 means by 1");
    const result = await t.send("increment", { counterId: "hits", by: 4n });
    assert.ok(crdtDelta.equals(result.delta, crdtDelta.gcounter(4)), "the change is sent to the other nodes");
    await t.replicate(crdtDelta.gcounter(10));
    assert.equal((await t.call("getValue", { counterId: "hits" })).value, 15n);
  });

  test("Watch pushes the value now, then after every change, wherever it was made", async () => {
    const t = testkit(counter);
    const watch = await t.stream("watch", {});
    await t.call("increment", { by: 2n });
    await t.replicate(crdtDelta.gcounter(3));
    await t.call("getValue", {}); // no change: nothing pushed
    assert.deepEqual(watch.replies.map((v) => v.value), [0n, 2n, 5n]);
    await watch.cancel();
    await t.call("increment", {});
    assert.equal(watch.replies.length, 3, "a cancelled watch hears no more");
  });

  test("an up-down counter goes below zero", async () => {
    const t = testkit(upDownCounter);
    const watch = await t.stream("watch", {});
    await t.call("change", { by: 3n });
    await t.call("change", { by: -5n });
    await t.replicate(crdtDelta.pncounter(-1));
    assert.equal((await t.call("getValue", {})).value, -3n);
    assert.deepEqual(watch.replies.map((v) => v.value), [0n, 3n, -2n, -3n]);
  });

  test("a poll: this node's vote, and the tally of all nodes", async () => {
    const t = testkit(poll);
    const mine = await t.call("vote", { yes: true });
    assert.deepEqual([mine.selfVote, mine.votesFor, mine.totalVoters, mine.all], [true, 1, 1, true]);
    // Two more nodes join; one of them votes yes.
    await t.replicate(crdtDelta.vote({ selfVote: true, votesFor: 2, totalVoters: 3 }));
    const tally = await t.call("getVotes", {});
    assert.deepEqual([tally.atLeastOne, tally.majority, tally.all], [true, true, false]);
    const changed = await t.send("vote", { yes: false });
    assert.ok(crdtDelta.equals(changed.delta, crdtDelta.vote({ selfVote: false })));
    assert.deepEqual([changed.reply?.votesFor, changed.reply?.majority], [1, false]);
  });
});

describe("over the Cloudstate protocol", () => {
  const quiet = { info() {}, warn() {}, error() {} };
  let server: UserFunctionServer;
  let proxy: ProxyDriver;

  before(async () => {
    server = await serve({ entities: [counter, upDownCounter, poll], port: 0, logger: quiet });
    proxy = new ProxyDriver(server.port);
  });

  after(async () => {
    proxy.close();
    await server.close();
  });

  const valueIn = (clientAction: CrdtOutMessages["reply"]["clientAction"]): bigint => {
    const action = clientAction?.action;
    assert.equal(action?.case, "reply");
    return fromBinary(ValueSchema, action.value.payload!.value).value;
  };

  test("discovery declares three CRDT entities", async () => {
    const spec = await proxy.discover();
    assert.deepEqual(
      spec.entities.map((e) => [e.entityType, e.serviceName, e.persistenceId]),
      [
        ["cloudstate.crdt.Crdt", "com.example.counter.Counter", "counters"],
        ["cloudstate.crdt.Crdt", "com.example.counter.UpDownCounter", "updown-counters"],
        ["cloudstate.crdt.Crdt", "com.example.counter.Poll", "polls"],
      ],
    );
  });

  test("a streamed Watch: the value at once, then one message per change; a cancel gets an empty answer", async () => {
    const s = proxy.crdt();
    s.init("com.example.counter.Counter", "c1", crdtDelta.gcounter(7));
    const watch = crdtMessageOf(await s.command(Counter.method.watch, { counterId: "c1" }), "reply");
    assert.deepEqual([watch.streamed, valueIn(watch.clientAction)], [true, 7n]);

    const increment = crdtMessageOf(await s.command(Counter.method.increment, { counterId: "c1", by: 3n }), "reply");
    assert.equal(valueIn(increment.clientAction), 10n);
    const change = increment.stateAction?.action;
    assert.ok(change?.case === "update" && crdtDelta.equals(change.value, crdtDelta.gcounter(3)), "the increment goes to the other nodes");
    const pushed = crdtMessageOf(await s.next(), "streamedMessage");
    assert.deepEqual([pushed.commandId, valueIn(pushed.clientAction)], [watch.commandId, 10n]);

    s.delta(crdtDelta.gcounter(5));
    assert.equal(valueIn(crdtMessageOf(await s.next(), "streamedMessage").clientAction), 15n);

    const cancelled = crdtMessageOf(await s.cancelStream(watch.commandId), "streamCancelledResponse");
    assert.deepEqual([cancelled.commandId, cancelled.stateAction, cancelled.sideEffects.length], [watch.commandId, undefined, 0]);
    s.end();
    assert.equal((await s.ended).code, 0);
  });
});
