// Defining a CRDT entity: what the compiler rejects (checked by `tsc`, through the @ts-expect-error
// lines) and what the SDK rejects at run time for JavaScript users and casts.
import assert from "node:assert/strict";
import { test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { anyPack } from "@bufbuild/protobuf/wkt";
import { CommandSchema } from "@cloudstate-ts/protocol";
import { crdtEntity, GCounter, NoReply, ORMap, ORSet, textAny, Vote, WriteConsistency, type Crdt } from "../index.js";
import { memoryLogger } from "../testdata/counter.js";
import { Actions } from "../testdata/gen/sdktest/actions_pb.js";
import { CrdtRequestSchema, CrdtTarget, GCounterTest } from "../testdata/gen/sdktest/crdts_pb.js";
import { AnyCounter } from "../testdata/gen/sdktest/eventing_pb.js";
import { CrdtInstance } from "./handler.js";
import type { CrdtEntity } from "./entity.js";

const state = (n: number) => ({ state: { value: { case: "gcounter" as const, value: BigInt(n) } } });

test("a complete, well-typed definition is accepted; the CRDT's type comes from crdt()", () => {
  const entity = crdtEntity({
    service: GCounterTest,
    crdt: () => new GCounter(),
    passivationTimeoutMs: 100,
    commands: {
      process(_request, ctx) {
        ctx.state.increment(1); // typed: a GCounter
        ctx.writeConsistency = WriteConsistency.MAJORITY;
        return state(ctx.state.value);
      },
      async watch(_request, ctx) {
        await Promise.resolve();
        ctx.onStateChange((counter, change) => {
          if (counter.value > 10) change.endStream();
          return state(counter.value);
        });
        ctx.onStreamCancel((counter, cancel) => {
          counter.increment();
          cancel.effect(CrdtTarget.method.call, { id: "x" });
        });
        return [state(0), state(1)];
      },
    },
  });
  assert.equal(entity.entityType, "cloudstate.crdt.Crdt");
  assert.equal(entity.persistenceId, "sdktest.GCounterTest", "by default, the service's name");
  assert.equal(entity.passivationTimeoutMs, 100);
  assert.deepEqual([...entity.commands.keys()], ["Process", "Watch"]);
  assert.equal(crdtEntity({ service: GCounterTest, crdt: () => new Vote(), persistenceId: "votes", commands: { process: () => ({}), watch: () => {} } }).persistenceId, "votes");
});

test("the compiler checks handlers, replies and the CRDT's type", () => {
  const typed = () =>
    crdtEntity({
      service: GCounterTest,
      crdt: () => new ORMap("string", () => new ORSet("int32")),
      commands: {
        process(_request, ctx) {
          ctx.state.getOrCreate("a").add(1);
          // @ts-expect-error -- the map's keys are strings
          ctx.state.get(1);
          // @ts-expect-error -- its values are ORSets of int32
          ctx.state.getOrCreate("a").add("x");
          // @ts-expect-error -- a unary call is not streamed: no onStateChange
          ctx.onStateChange(() => undefined);
          return {};
        },
        watch(_request, ctx) {
          // @ts-expect-error -- pushed messages are CrdtResponses too
          ctx.onStateChange(() => ({ nope: true }));
          // @ts-expect-error -- onStateChange handlers are not async
          ctx.onStateChange(async () => state(1));
        },
      },
    });
  const wrongReply = () =>
    crdtEntity({
      service: GCounterTest,
      crdt: () => new GCounter(),
      commands: {
        // @ts-expect-error -- the reply is a CrdtResponse
        process: () => ({ value: 1 }),
        watch: () => {},
      },
    });
  // @ts-expect-error -- no handler for Watch
  const missing = () => crdtEntity({ service: GCounterTest, crdt: () => new GCounter(), commands: { process: () => state(0) } });
  assert.equal(typeof typed, "function");
  assert.equal(typeof missing, "function");
  assert.equal(typeof wrongReply, "function");
});

test("run-time checks: handlers for exactly the service's methods, no client streaming, a crdt function", () => {
  const where = /CRDT entity sdktest\.GCounterTest/;
  assert.throws(() => crdtEntity({ service: GCounterTest, crdt: () => new GCounter(), commands: { process: () => state(0) } as never }), /no command handler for Watch/);
  assert.throws(
    () => crdtEntity({ service: GCounterTest, crdt: () => new GCounter(), commands: { process: () => state(0), watch: () => {}, other: () => {} } as never }),
    /"other" matches no method/,
  );
  assert.throws(() => crdtEntity({ service: GCounterTest, crdt: new GCounter() as never, commands: { process: () => state(0), watch: () => {} } }), where);
  assert.throws(
    () => crdtEntity({ service: GCounterTest, crdt: () => new GCounter(), passivationTimeoutMs: -1, commands: { process: () => state(0), watch: () => {} } }),
    /passivationTimeoutMs/,
  );
  assert.throws(() => crdtEntity({ service: Actions, crdt: () => new GCounter(), commands: {} as never }), /StreamedIn is client_streaming; CRDT entities serve unary and server-streaming methods only/);
});

test("crdt() must make a new CRDT each time", () => {
  const shared = new GCounter();
  const entity = crdtEntity({ service: GCounterTest, crdt: () => shared, commands: { process: () => state(0), watch: () => {} } });
  const first = new CrdtInstance(entity as unknown as CrdtEntity, "a", undefined, memoryLogger());
  assert.equal(first.state, shared);
  assert.throws(() => new CrdtInstance(entity as unknown as CrdtEntity, "b", undefined, memoryLogger()), /must return a new CRDT each time/);
  const notCrdt = crdtEntity({ service: GCounterTest, crdt: () => ({}) as Crdt, commands: { process: () => state(0), watch: () => {} } });
  assert.throws(() => new CrdtInstance(notCrdt as unknown as CrdtEntity, "c", undefined, memoryLogger()), /returned an object \(Object\), not a CRDT/);
});

test("a CRDT kept from a handler cannot change after it returned", async () => {
  let kept: GCounter | undefined;
  const entity = crdtEntity({
    service: GCounterTest,
    crdt: () => new GCounter(),
    commands: {
      process(_request, ctx) {
        kept = ctx.state;
        return state(0);
      },
      watch: () => {},
    },
  });
  const instance = new CrdtInstance(entity as unknown as CrdtEntity, "a", undefined, memoryLogger());
  await instance.handleCommand(create(CommandSchema, { id: 1n, name: "Process", payload: anyPack(CrdtRequestSchema, create(CrdtRequestSchema)) }));
  assert.throws(() => kept!.increment(), /can change only in a command handler/);
  assert.equal(instance.state.hasDelta, false);
});

test("CRDT commands answer with a reply: their context has no noReply(), and a NoReply returned anyway is a bug", async () => {
  const entity = crdtEntity({
    service: AnyCounter,
    crdt: () => new GCounter(),
    commands: {
      // @ts-expect-error: no noReply() on a CRDT command's context
      count: (_any, ctx) => ctx.noReply(),
    },
  });
  const cast = crdtEntity({ service: AnyCounter, crdt: () => new GCounter(), commands: { count: () => NoReply.instance as never } });
  const logger = memoryLogger();
  const instance = new CrdtInstance(cast as unknown as CrdtEntity, "c1", undefined, logger);
  const [out] = await instance.handleCommand(create(CommandSchema, { entityId: "c1", id: 1n, name: "Count", payload: textAny("x") }));
  assert.equal(out?.message.case === "reply" && out.message.value.clientAction?.action.case, "failure");
  assert.ok(logger.lines.some((l) => l.includes("answered ctx.noReply(), which this entity type does not offer")));
  assert.equal(entity.commands.size, 1);
});
