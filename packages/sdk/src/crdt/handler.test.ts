// The CRDT protocol as the proxy drives it, over real gRPC on loopback: for each CRDT type the
// initial state, changes and their deltas, init and replicated deltas, deletes both ways; then
// clocks, forwards and effects, failures, streamed calls, write consistency and protocol violations.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { create, fromBinary, toJson, type JsonObject, type MessageInitShape } from "@bufbuild/protobuf";
import { anyPack, EmptySchema } from "@bufbuild/protobuf/wkt";
import { CrdtClock, CrdtWriteConsistency, type CrdtDelta, type CrdtReply, type CrdtStreamOut } from "@cloudstate-ts/protocol";
import { serve, type UserFunctionServer } from "../index.js";
import { crdtDelta, crdtMessageOf, ProxyDriver, type CrdtStreamDriver } from "../testing/index.js";
import { assertDelta } from "../testdata/crdt-host.js";
import { crdtTestEntities, SERVICES } from "../testdata/crdts.js";
import { memoryLogger } from "../testdata/counter.js";
import {
  CrdtResponseSchema,
  CrdtStateSchema,
  TargetRequestSchema,
  TestClock,
  type CrdtActionSchema,
  type CrdtUpdateSchema,
  type StreamRequestSchema,
} from "../testdata/gen/sdktest/crdts_pb.js";
import type { CrdtKind } from "./types/crdt.js";

type Action = MessageInitShape<typeof CrdtActionSchema>;
type Update = MessageInitShape<typeof CrdtUpdateSchema>;

const logger = memoryLogger();
let server: UserFunctionServer;
let proxy: ProxyDriver;

before(async () => {
  server = await serve({ entities: crdtTestEntities(), port: 0, logger });
  proxy = new ProxyDriver(server.port);
});

after(async () => {
  proxy.close();
  await server.close();
});

function open(kind: CrdtKind, id: string, state?: CrdtDelta): CrdtStreamDriver {
  const stream = proxy.crdt();
  stream.init(SERVICES[kind].typeName, id, state);
  return stream;
}

const update = (u: Update): Action => ({ action: { case: "update", value: u } });

async function process(
  stream: CrdtStreamDriver,
  kind: CrdtKind,
  actions: Action[],
  extra: { writeConsistency?: number; delayMs?: number } = {},
): Promise<CrdtReply> {
  return crdtMessageOf(await stream.command(SERVICES[kind].method.process, { id: "e", actions, ...extra }), "reply");
}

/** The state in a reply, as proto3 JSON (uint64 and sint64 as strings). */
function stateIn(reply: CrdtReply): JsonObject {
  const action = reply.clientAction?.action;
  assert.equal(action?.case, "reply", `expected a reply, got ${action?.case === "failure" ? `the failure "${action.value.description}"` : action?.case}`);
  return toJson(CrdtStateSchema, fromBinary(CrdtResponseSchema, action.value.payload!.value).state!) as JsonObject;
}

function deltaIn(reply: CrdtReply): CrdtDelta | undefined {
  const action = reply.stateAction?.action;
  assert.notEqual(action?.case, "delete", "expected an update, got a delete");
  return action?.case === "update" ? action.value : undefined;
}

function failureIn(reply: CrdtReply) {
  const action = reply.clientAction?.action;
  assert.equal(action?.case, "failure", `expected a failure, got ${action?.case}`);
  return action.value;
}

async function nothingMore(stream: CrdtStreamDriver): Promise<void> {
  await assert.rejects(stream.next(150), /no message/, "nothing more comes");
}

/** Per CRDT type: an empty state, two local changes (with their deltas), a state for init, a replicated change. */
interface TypeCase {
  empty: JsonObject;
  changes: [actions: Update[], delta: CrdtDelta | undefined, state: JsonObject][];
  init: [delta: CrdtDelta, state: JsonObject];
  /** Applied after `changes`. */
  replicated: [delta: CrdtDelta, state: JsonObject];
  /** A local change after `replicated`. */
  after: [actions: Update[], delta: CrdtDelta | undefined, state: JsonObject];
}

const { ormap, orset, gset, lwwregister, gcounter, pncounter, vote, flag } = crdtDelta;

const cases: Record<CrdtKind, TypeCase> = {
  gcounter: {
    empty: { gcounter: "0" },
    changes: [
      [[{ update: { case: "increment", value: 2n } }, { update: { case: "increment", value: 3n } }], gcounter(5), { gcounter: "5" }],
      [[{ update: { case: "increment", value: 1n } }], gcounter(1), { gcounter: "6" }],
    ],
    init: [gcounter(10), { gcounter: "10" }],
    replicated: [gcounter(4), { gcounter: "10" }],
    after: [[{ update: { case: "increment", value: 7n } }], gcounter(7), { gcounter: "17" }],
  },
  pncounter: {
    empty: { pncounter: "0" },
    changes: [
      [[{ update: { case: "change", value: 5n } }, { update: { case: "change", value: -7n } }], pncounter(-2), { pncounter: "-2" }],
      [[{ update: { case: "increment", value: 3n } }], pncounter(3), { pncounter: "1" }],
    ],
    init: [pncounter(-4), { pncounter: "-4" }],
    replicated: [pncounter(-10), { pncounter: "-9" }],
    after: [[{ update: { case: "change", value: 2n } }], pncounter(2), { pncounter: "-7" }],
  },
  gset: {
    empty: { gset: {} },
    changes: [
      [[{ update: { case: "add", value: "b" } }, { update: { case: "add", value: "a" } }], gset("string", ["b", "a"]), { gset: { elements: ["a", "b"] } }],
      [[{ update: { case: "add", value: "a" } }, { update: { case: "add", value: "c" } }], gset("string", ["c"]), { gset: { elements: ["a", "b", "c"] } }],
    ],
    init: [gset("string", ["x", "y"]), { gset: { elements: ["x", "y"] } }],
    replicated: [gset("string", ["c", "d"]), { gset: { elements: ["a", "b", "c", "d"] } }],
    after: [[{ update: { case: "add", value: "e" } }], gset("string", ["e"]), { gset: { elements: ["a", "b", "c", "d", "e"] } }],
  },
  orset: {
    empty: { orset: {} },
    changes: [
      [
        [{ update: { case: "add", value: "a" } }, { update: { case: "add", value: "b" } }, { update: { case: "add", value: "c" } }, { update: { case: "remove", value: "c" } }],
        orset("string", { added: ["a", "b"] }),
        { orset: { elements: ["a", "b"] } },
      ],
      [
        [{ update: { case: "remove", value: "a" } }, { update: { case: "add", value: "d" } }],
        orset("string", { removed: ["a"], added: ["d"] }),
        { orset: { elements: ["b", "d"] } },
      ],
    ],
    init: [orset("string", { added: ["x"] }), { orset: { elements: ["x"] } }],
    replicated: [orset("string", { removed: ["b"], added: ["z"] }), { orset: { elements: ["d", "z"] } }],
    after: [[{ update: { case: "clear", value: true } }, { update: { case: "add", value: "n" } }], orset("string", { cleared: true, added: ["n"] }), { orset: { elements: ["n"] } }],
  },
  lwwregister: {
    empty: { lwwregister: "" },
    changes: [
      [[{ update: { case: "register", value: { value: "one" } } }], lwwregister("string", "one"), { lwwregister: "one" }],
      [[{ update: { case: "register", value: { value: "two" } } }], lwwregister("string", "two"), { lwwregister: "two" }],
    ],
    init: [lwwregister("string", "start"), { lwwregister: "start" }],
    replicated: [lwwregister("string", "theirs"), { lwwregister: "theirs" }],
    after: [[{ update: { case: "register", value: { value: "ours" } } }], lwwregister("string", "ours"), { lwwregister: "ours" }],
  },
  flag: {
    empty: { flag: false },
    changes: [
      [[{ update: { case: "enable", value: true } }], flag(true), { flag: true }],
      [[{ update: { case: "enable", value: true } }], undefined, { flag: true }],
    ],
    init: [flag(true), { flag: true }],
    replicated: [flag(true), { flag: true }],
    after: [[{ update: { case: "enable", value: true } }], undefined, { flag: true }],
  },
  ormap: {
    empty: { ormap: {} },
    changes: [
      [
        [
          { update: { case: "map", value: { key: "gcounter-a", change: { case: "update", value: { update: { case: "increment", value: 2n } } } } } },
          { update: { case: "map", value: { key: "orset-s", change: { case: "update", value: { update: { case: "add", value: "x" } } } } } },
        ],
        ormap("string", { added: [["gcounter-a", gcounter(2)], ["orset-s", orset("string", { added: ["x"] })]] }),
        {
          ormap: {
            entries: [
              { key: "gcounter-a", value: { gcounter: "2" } },
              { key: "orset-s", value: { orset: { elements: ["x"] } } },
            ],
          },
        },
      ],
      [
        [
          { update: { case: "map", value: { key: "gcounter-a", change: { case: "update", value: { update: { case: "increment", value: 3n } } } } } },
          { update: { case: "map", value: { key: "orset-s", change: { case: "remove", value: true } } } },
          {
            update: {
              case: "map",
              value: {
                key: "ormap-m",
                change: {
                  case: "update",
                  value: { update: { case: "map", value: { key: "flag-f", change: { case: "update", value: { update: { case: "enable", value: true } } } } } },
                },
              },
            },
          },
        ],
        ormap("string", {
          removed: ["orset-s"],
          updated: [["gcounter-a", gcounter(3)]],
          added: [["ormap-m", ormap("string", { added: [["flag-f", flag(true)]] })]],
        }),
        {
          ormap: {
            entries: [
              { key: "gcounter-a", value: { gcounter: "5" } },
              { key: "ormap-m", value: { ormap: { entries: [{ key: "flag-f", value: { flag: true } }] } } },
            ],
          },
        },
      ],
    ],
    init: [
      ormap("string", { added: [["vote-v", vote({ selfVote: true, votesFor: 2, totalVoters: 3 })], ["lwwregister-r", lwwregister("string", "hi")]] }),
      {
        ormap: {
          entries: [
            { key: "lwwregister-r", value: { lwwregister: "hi" } },
            { key: "vote-v", value: { vote: { selfVote: true, votesFor: 2, totalVoters: 3 } } },
          ],
        },
      },
    ],
    replicated: [
      ormap("string", { removed: ["ormap-m"], updated: [["gcounter-a", gcounter(10)]], added: [["pncounter-p", pncounter(-1)]] }),
      {
        ormap: {
          entries: [
            { key: "gcounter-a", value: { gcounter: "15" } },
            { key: "pncounter-p", value: { pncounter: "-1" } },
          ],
        },
      },
    ],
    after: [
      [{ update: { case: "map", value: { key: "pncounter-p", change: { case: "update", value: { update: { case: "change", value: -1n } } } } } }],
      ormap("string", { updated: [["pncounter-p", pncounter(-1)]] }),
      {
        ormap: {
          entries: [
            { key: "gcounter-a", value: { gcounter: "15" } },
            { key: "pncounter-p", value: { pncounter: "-2" } },
          ],
        },
      },
    ],
  },
  vote: {
    empty: { vote: { totalVoters: 1 } },
    changes: [
      [[{ update: { case: "vote", value: true } }], vote({ selfVote: true }), { vote: { selfVote: true, votesFor: 1, totalVoters: 1 } }],
      [[{ update: { case: "vote", value: false } }], vote({ selfVote: false }), { vote: { totalVoters: 1 } }],
    ],
    init: [vote({ selfVote: true, votesFor: 2, totalVoters: 3 }), { vote: { selfVote: true, votesFor: 2, totalVoters: 3 } }],
    replicated: [vote({ selfVote: false, votesFor: 2, totalVoters: 4 }), { vote: { votesFor: 2, totalVoters: 4 } }],
    after: [[{ update: { case: "vote", value: true } }], vote({ selfVote: true }), { vote: { selfVote: true, votesFor: 3, totalVoters: 4 } }],
  },
};

for (const [kind, c] of Object.entries(cases) as [CrdtKind, TypeCase][]) {
  describe(`${kind}`, () => {
    test("starts empty, and a read sends no state action", async () => {
      const s = open(kind, "empty");
      const reply = await process(s, kind, []);
      assert.deepEqual(stateIn(reply), c.empty);
      assert.equal(reply.stateAction, undefined);
      assert.equal(reply.streamed, false);
      s.end();
      assert.equal((await s.ended).code, 0);
    });

    test("each command sends the delta of its own changes", async () => {
      const s = open(kind, "changes");
      for (const [updates, delta, state] of c.changes) {
        const reply = await process(s, kind, updates.map(update));
        assert.deepEqual(stateIn(reply), state);
        assertDelta(deltaIn(reply), delta);
        if (delta) assert.equal(reply.stateAction?.writeConsistency, CrdtWriteConsistency.LOCAL);
      }
      s.end();
    });

    test("starts from the state in init", async () => {
      const [delta, state] = c.init;
      const s = open(kind, "init", delta);
      const reply = await process(s, kind, []);
      assert.deepEqual(stateIn(reply), state);
      assert.equal(reply.stateAction, undefined, "the initial state is not sent back");
      s.end();
    });

    test("applies replicated deltas, interleaved with local changes whose deltas stay their own", async () => {
      const s = open(kind, "replicated");
      for (const [updates] of c.changes) await process(s, kind, updates.map(update));
      s.delta(c.replicated[0]);
      await nothingMore(s); // no streamed call is open: a delta is not answered
      const read = await process(s, kind, []);
      assert.deepEqual(stateIn(read), c.replicated[1]);
      assert.equal(read.stateAction, undefined, "a replicated change is not echoed");
      const [updates, delta, state] = c.after;
      const reply = await process(s, kind, updates.map(update));
      assertDelta(deltaIn(reply), delta);
      assert.deepEqual(stateIn(reply), state);
      s.end();
    });

    test("a command deletes the CRDT: a delete action, then commands fail", async () => {
      const s = open(kind, "delete-from", c.init[0]);
      const reply = await process(s, kind, [...c.changes[0]![0].map(update), { action: { case: "delete", value: true } }]);
      assert.equal(reply.stateAction?.action.case, "delete");
      const next = await process(s, kind, []);
      assert.match(failureIn(next).description, /was deleted/);
      s.end();
    });

    test("a delete from the proxy ends the stream", async () => {
      const s = open(kind, "delete-to", c.init[0]);
      await process(s, kind, []);
      s.delete();
      assert.equal(await s.next(), undefined);
      assert.equal((await s.ended).code, 0);
    });
  });
}

describe("LWWRegister clocks", () => {
  test("each clock and its custom value go with the delta", async () => {
    const s = open("lwwregister", "clocks");
    const expected: [TestClock, bigint, CrdtClock][] = [
      [TestClock.DEFAULT, 0n, CrdtClock.DEFAULT],
      [TestClock.REVERSE, 0n, CrdtClock.REVERSE],
      [TestClock.CUSTOM, 42n, CrdtClock.CUSTOM],
      [TestClock.CUSTOM_AUTO_INCREMENT, 43n, CrdtClock.CUSTOM_AUTO_INCREMENT],
    ];
    for (const [i, [clock, customClockValue, sent]] of expected.entries()) {
      const reply = await process(s, "lwwregister", [update({ update: { case: "register", value: { value: `v${i}`, clock, customClockValue } } })]);
      assertDelta(deltaIn(reply), lwwregister("string", `v${i}`, sent, customClockValue));
    }
    s.end();
  });
});

describe("forwards and effects", () => {
  test("a forward goes after the state change, which the reply carries", async () => {
    const s = open("gcounter", "forward");
    const reply = await process(s, "gcounter", [update({ update: { case: "increment", value: 1n } }), { action: { case: "forward", value: "t1" } }]);
    const action = reply.clientAction?.action;
    assert.equal(action?.case, "forward");
    assert.deepEqual([action.value.serviceName, action.value.commandName], ["sdktest.CrdtTarget", "Call"]);
    assert.equal(action.value.payload?.typeUrl, "type.googleapis.com/sdktest.TargetRequest");
    assert.equal(fromBinary(TargetRequestSchema, action.value.payload!.value).id, "t1");
    assertDelta(deltaIn(reply), gcounter(1));
    s.end();
  });

  test("side effects, synchronous and not, go in order with the reply and its delta", async () => {
    const s = open("orset", "effects");
    const reply = await process(s, "orset", [
      { action: { case: "effect", value: { id: "e1", synchronous: true } } },
      update({ update: { case: "add", value: "x" } }),
      { action: { case: "effect", value: { id: "e2" } } },
    ]);
    assert.deepEqual(
      reply.sideEffects.map((e) => [e.serviceName, e.commandName, fromBinary(TargetRequestSchema, e.payload!.value).id, e.synchronous]),
      [
        ["sdktest.CrdtTarget", "Call", "e1", true],
        ["sdktest.CrdtTarget", "Call", "e2", false],
      ],
    );
    assertDelta(deltaIn(reply), orset("string", { added: ["x"] }));
    s.end();
  });
});

describe("failures", () => {
  test("ctx.fail: a failure without restart, no state action nor effects, and the changes are undone", async () => {
    const s = open("ormap", "fail");
    await process(s, "ormap", [update({ update: { case: "map", value: { key: "gcounter-a", change: { case: "update", value: { update: { case: "increment", value: 1n } } } } } })]);
    const reply = await process(s, "ormap", [
      { action: { case: "effect", value: { id: "dropped" } } },
      update({ update: { case: "map", value: { key: "gcounter-a", change: { case: "update", value: { update: { case: "increment", value: 5n } } } } } }),
      update({ update: { case: "map", value: { key: "gcounter-b", change: { case: "update", value: { update: { case: "increment", value: 5n } } } } } }),
      { action: { case: "fail", value: "not today" } },
    ]);
    const f = failureIn(reply);
    assert.deepEqual([f.description, f.restart, f.commandId, reply.commandId], ["not today", false, 2n, 2n]);
    assert.equal(reply.stateAction, undefined);
    assert.equal(reply.sideEffects.length, 0);
    const after = await process(s, "ormap", [update({ update: { case: "map", value: { key: "gcounter-a", change: { case: "update", value: { update: { case: "increment", value: 1n } } } } } })]);
    assert.deepEqual(stateIn(after), { ormap: { entries: [{ key: "gcounter-a", value: { gcounter: "2" } }] } });
    assertDelta(deltaIn(after), ormap("string", { updated: [["gcounter-a", gcounter(1)]] }), "nothing of the failed command is sent later");
    s.end();
  });

  test("an exception: a failure with restart, logged with entity, command and stack; the changes are undone", async () => {
    const s = open("gset", "bug");
    const reply = await process(s, "gset", [update({ update: { case: "add", value: "x" } }), { action: { case: "throw", value: "kaboom" } }]);
    const f = failureIn(reply);
    assert.equal(f.restart, true);
    assert.doesNotMatch(f.description, /kaboom/, "the client gets a short message");
    assert.match(f.description, /sdktest\.GSetTest\.Process/);
    const line = logger.lines.find((l) => l.includes("kaboom"));
    assert.ok(line, "the error is logged");
    assert.match(line, /^error: command sdktest\.GSetTest\.Process \(id 1\) of entity "bug"/);
    assert.match(line, /at .*crdts\.ts/, "with the stack");
    assert.deepEqual(stateIn(await process(s, "gset", [])), { gset: {} });
    s.end();
  });

  test("an unknown command, or a payload of another type, gets a failure and the stream goes on", async () => {
    const s = open("flag", "unknown");
    const unknown = crdtMessageOf(await s.rawCommand("Nope", anyPack(EmptySchema, create(EmptySchema))), "reply");
    assert.match(failureIn(unknown).description, /Unknown command Nope for sdktest\.FlagTest/);
    const wrong = crdtMessageOf(await s.rawCommand("Process", anyPack(EmptySchema, create(EmptySchema))), "reply");
    assert.match(failureIn(wrong).description, /expects a type\.googleapis\.com\/sdktest\.CrdtRequest payload/);
    assert.deepEqual(stateIn(await process(s, "flag", [])), { flag: false });
    s.end();
  });

  test("a change by another type's operation is the handler's failure (the test entity checks)", async () => {
    const s = open("gcounter", "mismatch");
    assert.match(failureIn(await process(s, "gcounter", [update({ update: { case: "add", value: "x" } })])).description, /cannot add a gcounter/);
    s.end();
  });
});

describe("write consistency", () => {
  test("the command's write consistency goes with its update or delete, and only with a change", async () => {
    const s = open("pncounter", "consistency");
    const change = update({ update: { case: "change", value: 1n } });
    const majority = await process(s, "pncounter", [change], { writeConsistency: CrdtWriteConsistency.MAJORITY });
    assert.equal(majority.stateAction?.writeConsistency, CrdtWriteConsistency.MAJORITY);
    assert.equal(majority.stateAction?.action.case, "update");
    const read = await process(s, "pncounter", [], { writeConsistency: CrdtWriteConsistency.ALL });
    assert.equal(read.stateAction, undefined);
    const local = await process(s, "pncounter", [change]);
    assert.equal(local.stateAction?.writeConsistency, CrdtWriteConsistency.LOCAL);
    const del = await process(s, "pncounter", [{ action: { case: "delete", value: true } }], { writeConsistency: CrdtWriteConsistency.ALL });
    assert.deepEqual([del.stateAction?.action.case, del.stateAction?.writeConsistency], ["delete", CrdtWriteConsistency.ALL]);
    s.end();
  });
});

describe("streamed calls", () => {
  type Watch = MessageInitShape<typeof StreamRequestSchema>;

  async function watch(s: CrdtStreamDriver, kind: CrdtKind, request: Omit<Watch, "id" | "$typeName">): Promise<CrdtReply> {
    return crdtMessageOf(await s.command(SERVICES[kind].method.watch, { id: "e", ...request }), "reply");
  }

  function pushed(out: CrdtStreamOut | undefined) {
    return crdtMessageOf(out, "streamedMessage");
  }

  function pushedState(out: CrdtStreamOut | undefined): JsonObject {
    const message = pushed(out);
    const action = message.clientAction?.action;
    assert.equal(action?.case, "reply", `expected a pushed reply, got ${action?.case === "failure" ? action.value.description : action?.case}`);
    return toJson(CrdtStateSchema, fromBinary(CrdtResponseSchema, action.value.payload!.value).state!) as JsonObject;
  }

  const increment = (n: bigint) => update({ update: { case: "increment", value: n } });

  test("a streamed command is sent with streamed=true; its reply keeps the call open and may carry a first message", async () => {
    const s = open("gcounter", "plain");
    const reply = await watch(s, "gcounter", { watch: true, initialReplies: 1 });
    assert.equal(reply.streamed, true);
    assert.equal(reply.commandId, 1n);
    assert.deepEqual(stateIn(reply), { gcounter: "0" });
    s.end();
  });

  test("each change, local or replicated, pushes the state to the open call, after the reply of the command that made it", async () => {
    const s = open("gcounter", "changes");
    await watch(s, "gcounter", { watch: true });
    const reply = await process(s, "gcounter", [increment(2n)]);
    assert.deepEqual(stateIn(reply), { gcounter: "2" });
    const message = await s.next();
    assert.equal(pushed(message).commandId, 1n);
    assert.equal(pushed(message).endStream, false);
    assert.deepEqual(pushedState(message), { gcounter: "2" });
    s.delta(gcounter(3));
    assert.deepEqual(pushedState(await s.next()), { gcounter: "5" });
    await process(s, "gcounter", []); // no change, nothing pushed
    await nothingMore(s);
    s.end();
  });

  test("the call's own change reaches it too, and every open call hears every change", async () => {
    const s = open("orset", "many");
    await watch(s, "orset", { watch: true });
    const second = crdtMessageOf(await s.command(SERVICES.orset.method.watch, { id: "e", watch: true, updateOnCancel: { update: { case: "add", value: "bye" } } }), "reply");
    assert.equal(second.streamed, true);
    await process(s, "orset", [update({ update: { case: "add", value: "x" } })]);
    const first = pushed(await s.next());
    const other = pushed(await s.next());
    assert.deepEqual([first.commandId, other.commandId], [1n, 2n], "in the order the calls were opened");
    s.end();
  });

  test("end-stream: the handler ends the call with a message, and the call hears no more", async () => {
    const s = open("gcounter", "end");
    await watch(s, "gcounter", { watch: true, endAfter: 2 });
    await process(s, "gcounter", [increment(1n)]);
    assert.equal(pushed(await s.next()).endStream, false);
    await process(s, "gcounter", [increment(1n)]);
    const last = pushed(await s.next());
    assert.equal(last.endStream, true);
    assert.deepEqual(pushedState({ message: { case: "streamedMessage", value: last } } as CrdtStreamOut), { gcounter: "2" });
    await process(s, "gcounter", [increment(1n)]);
    await nothingMore(s);
    s.end();
  });

  test("cancellation: onStreamCancel's change and side effect come in the response, and other calls hear the change", async () => {
    const s = open("gcounter", "cancel");
    await watch(s, "gcounter", { watch: true });
    await watch(s, "gcounter", { updateOnCancel: { update: { case: "increment", value: 10n } }, effectOnCancel: true });
    const response = crdtMessageOf(await s.cancelStream(2n), "streamCancelledResponse");
    assert.equal(response.commandId, 2n);
    assertDelta(response.stateAction?.action.case === "update" ? response.stateAction.action.value : undefined, gcounter(10));
    assert.deepEqual(
      response.sideEffects.map((e) => [e.commandName, fromBinary(TargetRequestSchema, e.payload!.value).id]),
      [["Call", "cancel"]],
    );
    assert.deepEqual(pushedState(await s.next()), { gcounter: "10" }, "the watching call hears the cancellation's change");
    const cancelledFirst = crdtMessageOf(await s.cancelStream(1n), "streamCancelledResponse");
    assert.equal(cancelledFirst.stateAction, undefined, "a call without onStreamCancel: an empty response");
    assert.equal(cancelledFirst.sideEffects.length, 0);
    await process(s, "gcounter", [increment(1n)]);
    await nothingMore(s);
    s.end();
  });

  test("empty + cancellation: a call with no first message stays open with onStreamCancel alone", async () => {
    const s = open("vote", "presence");
    const reply = await watch(s, "vote", { updateOnCancel: { update: { case: "vote", value: false } } });
    assert.equal(reply.clientAction, undefined, "no message for the client");
    assert.equal(reply.streamed, true);
    await process(s, "vote", [update({ update: { case: "vote", value: true } })]);
    const response = crdtMessageOf(await s.cancelStream(1n), "streamCancelledResponse");
    assertDelta(response.stateAction?.action.case === "update" ? response.stateAction.action.value : undefined, vote({ selfVote: false }));
    s.end();
  });

  test("a cancellation for a call that is not open gets an empty response", async () => {
    const s = open("flag", "stray");
    const response = crdtMessageOf(await s.cancelStream(99n), "streamCancelledResponse");
    assert.deepEqual([response.commandId, response.sideEffects.length, response.stateAction], [99n, 0, undefined]);
    s.end();
  });

  test("side effects with pushed messages", async () => {
    const s = open("gcounter", "effects");
    await watch(s, "gcounter", { watch: true, effectOnChange: true });
    s.delta(gcounter(1));
    const message = pushed(await s.next());
    assert.deepEqual(message.sideEffects.map((e) => fromBinary(TargetRequestSchema, e.payload!.value).id), ["change"]);
    s.end();
  });

  test("a forward as a pushed message", async () => {
    const s = open("gcounter", "forward");
    await watch(s, "gcounter", { watch: true, forwardOnChange: true });
    s.delta(gcounter(1));
    const action = pushed(await s.next()).clientAction?.action;
    assert.equal(action?.case, "forward");
    assert.equal(action.value.commandName, "Call");
    s.end();
  });

  test("a streamed call that keeps nothing open gets its replies and ends", async () => {
    const s = open("gcounter", "replies");
    const single = await watch(s, "gcounter", { initialReplies: 1 });
    assert.equal(single.streamed, false, "one reply, and the call is done");
    const several = await watch(s, "gcounter", { initialReplies: 3 });
    assert.equal(several.streamed, true);
    assert.equal(pushed(await s.next()).endStream, false);
    const last = pushed(await s.next());
    assert.deepEqual([last.commandId, last.endStream], [2n, true]);
    const none = await watch(s, "gcounter", {});
    assert.deepEqual([none.clientAction, none.streamed], [undefined, false]);
    s.end();
  });

  test("onStateChange failing ends that call with the failure; the others go on", async () => {
    const s = open("gcounter", "change-fails");
    await watch(s, "gcounter", { watch: true, failOnChange: "gone wrong" });
    await watch(s, "gcounter", { watch: true });
    s.delta(gcounter(1));
    const failed = pushed(await s.next());
    assert.equal(failed.commandId, 1n);
    assert.equal(failed.endStream, true);
    const action = failed.clientAction?.action;
    assert.deepEqual(action?.case === "failure" && [action.value.description, action.value.restart], ["gone wrong", false]);
    assert.equal(pushed(await s.next()).commandId, 2n);
    s.delta(gcounter(1));
    assert.equal(pushed(await s.next()).commandId, 2n, "the failed call hears no more");
    s.end();
  });

  test("onStateChange cannot change the CRDT: that call fails, the bug is logged, the state is untouched", async () => {
    const s = open("gcounter", "change-changes");
    await watch(s, "gcounter", { watch: true, updateOnChange: { update: { case: "increment", value: 100n } } });
    s.delta(gcounter(1));
    const failed = pushed(await s.next());
    assert.equal(failed.clientAction?.action.case, "failure");
    assert.equal(failed.endStream, true);
    assert.ok(logger.lines.some((l) => l.includes("onStateChange of sdktest.GCounterTest.Watch") && l.includes("can change only in a command handler")));
    assert.deepEqual(stateIn(await process(s, "gcounter", [])), { gcounter: "1" });
    s.end();
  });

  test("a streaming method called without a stream cannot keep a call open", async () => {
    const s = open("gcounter", "unstreamed");
    const reply = crdtMessageOf(await s.command(SERVICES.gcounter.method.watch, { id: "e", watch: true }, { streamed: false }), "reply");
    assert.match(failureIn(reply).description, /Watch must be called as a stream/);
    assert.equal(failureIn(reply).restart, false);
    s.end();
  });

  test("a command that deletes the CRDT ends the open calls' interest: nothing is pushed", async () => {
    const s = open("gcounter", "delete-streams");
    await watch(s, "gcounter", { watch: true });
    await process(s, "gcounter", [increment(1n), { action: { case: "delete", value: true } }]);
    await nothingMore(s);
    s.end();
  });
});

describe("commands in flight", () => {
  test("commands sent together are answered in order, each with its own delta", async () => {
    const s = open("gcounter", "inflight");
    const slow = s.command(SERVICES.gcounter.method.process, { id: "e", actions: [update({ update: { case: "increment", value: 1n } })], delayMs: 100 });
    const fast = s.command(SERVICES.gcounter.method.process, { id: "e", actions: [update({ update: { case: "increment", value: 2n } })] });
    const [a, b] = [crdtMessageOf(await slow, "reply"), crdtMessageOf(await fast, "reply")];
    assert.deepEqual([a.commandId, b.commandId], [1n, 2n]);
    assertDelta(deltaIn(a), gcounter(1));
    assertDelta(deltaIn(b), gcounter(2));
    assert.deepEqual(stateIn(b), { gcounter: "3" });
    s.end();
  });
});

describe("protocol violations fail the stream and end it", () => {
  async function expectStreamFailure(stream: CrdtStreamDriver, pattern: RegExp): Promise<void> {
    const failure = crdtMessageOf(await stream.next(), "failure");
    assert.match(failure.description, pattern);
    assert.equal(await stream.next(), undefined, "then the stream ends");
    await stream.ended;
  }

  test("a command before init", async () => {
    const s = proxy.crdt();
    s.send({ message: { case: "command", value: { entityId: "p", id: 1n, name: "Process", payload: anyPack(EmptySchema, create(EmptySchema)) } } });
    await expectStreamFailure(s, /command before init/);
  });

  test("a second init", async () => {
    const s = open("gcounter", "p2");
    s.init(SERVICES.gcounter.typeName, "p2");
    await expectStreamFailure(s, /second init/);
  });

  test("an init for a service this user function does not serve", async () => {
    const s = proxy.crdt();
    s.init("sdktest.Nope", "p3");
    await expectStreamFailure(s, /no CRDT entity serves sdktest\.Nope/);
  });

  test("an initial state of another type", async () => {
    const s = open("gcounter", "p4", flag(true));
    await expectStreamFailure(s, /received a Flag delta for a GCounter/);
  });

  test("a replicated delta of another type", async () => {
    const s = open("orset", "p5");
    s.delta(gset("string", ["x"]));
    await expectStreamFailure(s, /received a GSet delta for an ORSet/);
  });

  test("a delta that disables a Flag", async () => {
    const s = open("flag", "p6", flag(true));
    s.delta(flag(false));
    await expectStreamFailure(s, /disables an enabled Flag/);
  });

  test("an empty message", async () => {
    const s = open("flag", "p7");
    s.send({});
    await expectStreamFailure(s, /empty CrdtStreamIn/);
  });
});

test("discovery declares CRDT entities, persisted under their service name", async () => {
  const spec = await proxy.discover();
  const crdts = spec.entities.filter((e) => e.entityType === "cloudstate.crdt.Crdt");
  assert.equal(crdts.length, 8);
  assert.ok(crdts.every((e) => e.persistenceId === e.serviceName));
});
