// The action protocol as the proxy drives it, over real gRPC on loopback: every call shape, with
// replies, no replies, forwards, failures and side effects.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { anyPack, anyUnpack, EmptySchema } from "@bufbuild/protobuf/wkt";
import type { ActionResponse } from "@cloudstate-ts/protocol";
import { serve, type UserFunctionServer } from "../index.js";
import { ProxyDriver } from "../testing/index.js";
import { actionsService, type TicksProbe } from "../testdata/actions.js";
import { memoryLogger } from "../testdata/counter.js";
import { Actions, PlanSchema, ResponseSchema, type StepSchema } from "../testdata/gen/sdktest/actions_pb.js";

const SERVICE = "sdktest.Actions";
const logger = memoryLogger();
const probe: TicksProbe = { open: 0, closed: [] };
let server: UserFunctionServer;
let proxy: ProxyDriver;

before(async () => {
  server = await serve({ entities: [actionsService(probe)], port: 0, logger });
  proxy = new ProxyDriver(server.port);
});

after(async () => {
  proxy.close();
  await server.close();
});

type StepInit = MessageInitShape<typeof StepSchema>["step"];
const reply = (text: string): StepInit => ({ case: "reply", value: text });
const forward = (text: string): StepInit => ({ case: "forward", value: text });
const fail = (text: string): StepInit => ({ case: "fail", value: text });
const noReply: StepInit = { case: "noReply", value: true };
const effect = (text: string): StepInit => ({ case: "effect", value: text });
const syncEffect = (text: string): StepInit => ({ case: "syncEffect", value: text });
const boom = (text: string): StepInit => ({ case: "throw", value: text });
const header = (key: string): StepInit => ({ case: "metadata", value: key });
const plan = (...steps: StepInit[]) => ({ steps: steps.map((step) => ({ step })) });

/** A response in short: its answer, then its side effects. */
function show(response: ActionResponse): string[] {
  const r = response.response;
  const shown: string[] = [];
  if (r.case === "reply") shown.push(`reply ${anyUnpack(r.value.payload!, ResponseSchema)!.text}`);
  else if (r.case === "forward") shown.push(`forward ${r.value.serviceName}.${r.value.commandName} ${textOf(r.value.payload!)}`);
  else if (r.case === "failure") shown.push(`failure ${r.value.description}`);
  else shown.push("no reply");
  for (const e of response.sideEffects) {
    assert.deepEqual([e.serviceName, e.commandName], [SERVICE, "Unary"]);
    shown.push(`${e.synchronous ? "sync effect" : "effect"} ${textOf(e.payload!)}`);
  }
  return shown;
}

/** The reply text of a Plan sent to Actions.Unary by a forward or an effect. */
function textOf(payload: Parameters<typeof anyUnpack>[0]): string {
  assert.equal(payload.typeUrl, "type.googleapis.com/sdktest.Plan");
  const step = anyUnpack(payload, PlanSchema)!.steps[0]!.step;
  assert.equal(step.case, "reply");
  return step.value;
}

// The answers and effects the conformance suite combines, with what the proxy must receive.
const answers: [string, StepInit, string][] = [
  ["reply", reply("a"), "reply a"],
  ["no reply", noReply, "no reply"],
  ["forward", forward("a"), `forward ${SERVICE}.Unary a`],
  ["failure", fail("no good"), "failure no good"],
];
const effectSets: [string, StepInit[], string[]][] = [
  ["no side effect", [], []],
  ["a side effect", [effect("e1")], ["effect e1"]],
  ["a synchronous side effect", [syncEffect("e1")], ["sync effect e1"]],
  ["several side effects", [effect("e1"), syncEffect("e2"), effect("e3")], ["effect e1", "sync effect e2", "effect e3"]],
];
/** What a response with this answer and effects looks like: a failure drops its effects. */
const expected = (answer: string, effects: string[]) => (answer.startsWith("failure") ? [answer] : [answer, ...effects]);

describe("unary", () => {
  for (const [answerName, answer, shown] of answers) {
    for (const [effectsName, effects, effectsShown] of effectSets) {
      test(`${answerName} with ${effectsName}`, async () => {
        const response = await proxy.actionUnary(Actions.method.unary, plan(...effects, answer));
        assert.deepEqual(show(response), expected(shown, effectsShown));
      });
    }
  }

  test("a reply's payload is typed by the method's output", async () => {
    const response = await proxy.actionUnary(Actions.method.unary, plan(reply("x")));
    assert.equal(response.response.case === "reply" && response.response.value.payload?.typeUrl, "type.googleapis.com/sdktest.Response");
  });

  test("a forward and a side effect carry the metadata given to them", async () => {
    const forwarded = await proxy.actionUnary(Actions.method.unary, plan(forward("a")));
    assert.equal(forwarded.response.case, "forward");
    assert.deepEqual(
      forwarded.response.value.metadata?.entries.map((e) => [e.key, e.value.value]),
      [["x-forwarded-by", "sdktest"]],
    );
    const effected = await proxy.actionUnary(Actions.method.unary, plan(effect("e1"), reply("a")));
    assert.deepEqual(
      effected.sideEffects[0]!.metadata?.entries.map((e) => [e.key, e.value.value]),
      [["x-effect", "e1"]],
    );
  });

  test("the request metadata reaches the handler (keys compare case-insensitively)", async () => {
    const metadata = { "X-User": "alice", "x-bin": new Uint8Array([1, 2, 3]) };
    const user = await proxy.actionUnary(Actions.method.unary, plan(header("x-user")), { metadata });
    assert.deepEqual(show(user), ["reply alice"]);
    const bin = await proxy.actionUnary(Actions.method.unary, plan(header("X-BIN")), { metadata });
    assert.deepEqual(show(bin), ["reply <3 bytes>"]);
    const none = await proxy.actionUnary(Actions.method.unary, plan(header("x-user")));
    assert.deepEqual(show(none), ["reply <none>"]);
  });

  test("an exception in a handler gives a failure with a short message, and is logged with the stack", async () => {
    const response = await proxy.actionUnary(Actions.method.unary, plan(effect("e1"), boom("kaboom 1")));
    assert.deepEqual(show(response), [`failure Unexpected error in ${SERVICE}.Unary (see the user function's log)`]);
    const line = logger.lines.find((l) => l.includes("kaboom 1"));
    assert.ok(line, "the error is logged");
    assert.match(line, /^error: action sdktest\.Actions\.Unary failed: Error: kaboom 1/);
    assert.match(line, /at .*actions\.ts/, "with the stack");
  });
});

describe("streamed in", () => {
  test("reply, with side effects from every request", async () => {
    const response = await proxy.actionStreamedIn(Actions.method.streamedIn, [plan(effect("e1")), plan(syncEffect("e2")), plan(reply("a"))]);
    assert.deepEqual(show(response), ["reply a", "effect e1", "sync effect e2"]);
  });

  test("reply without side effects", async () => {
    assert.deepEqual(show(await proxy.actionStreamedIn(Actions.method.streamedIn, [plan(), plan(reply("a"))])), ["reply a"]);
  });

  test("no reply with no requests", async () => {
    assert.deepEqual(show(await proxy.actionStreamedIn(Actions.method.streamedIn, [])), ["no reply"]);
  });

  test("no reply, with and without side effects", async () => {
    assert.deepEqual(show(await proxy.actionStreamedIn(Actions.method.streamedIn, [plan(noReply)])), ["no reply"]);
    assert.deepEqual(show(await proxy.actionStreamedIn(Actions.method.streamedIn, [plan(effect("e1")), plan(noReply)])), ["no reply", "effect e1"]);
  });

  test("forward, with and without side effects", async () => {
    assert.deepEqual(show(await proxy.actionStreamedIn(Actions.method.streamedIn, [plan(forward("a"))])), [`forward ${SERVICE}.Unary a`]);
    assert.deepEqual(show(await proxy.actionStreamedIn(Actions.method.streamedIn, [plan(effect("e1")), plan(forward("a"))])), [
      `forward ${SERVICE}.Unary a`,
      "effect e1",
    ]);
  });

  test("failure, with side effects dropped", async () => {
    assert.deepEqual(show(await proxy.actionStreamedIn(Actions.method.streamedIn, [plan(fail("no good"))])), ["failure no good"]);
    assert.deepEqual(show(await proxy.actionStreamedIn(Actions.method.streamedIn, [plan(effect("e1")), plan(fail("no good"))])), ["failure no good"]);
  });

  test("the first message's metadata is the call's metadata", async () => {
    const response = await proxy.actionStreamedIn(Actions.method.streamedIn, [plan(header("x-user"))], { metadata: { "x-user": "bob" } });
    assert.deepEqual(show(response), ["reply bob"]);
  });

  test("requests may come as an async iterable, one at a time", async () => {
    async function* slowly() {
      yield plan(effect("e1"));
      await sleep(20);
      yield plan(reply("late"));
    }
    assert.deepEqual(show(await proxy.actionStreamedIn(Actions.method.streamedIn, slowly())), ["reply late", "effect e1"]);
  });

  test("a call the client cancels while the handler waits for requests is dropped quietly", async () => {
    const logged = logger.lines.filter((l) => !l.startsWith("info")).length;
    const aborter = new AbortController();
    async function* thenNothing() {
      yield plan(effect("e1"));
      await sleep(50);
      aborter.abort();
    }
    await assert.rejects(proxy.actionStreamedIn(Actions.method.streamedIn, thenNothing(), { signal: aborter.signal }), { code: 1 });
    await sleep(50);
    assert.equal(logger.lines.filter((l) => !l.startsWith("info")).length, logged, "nothing logged");
    assert.deepEqual(show(await proxy.actionStreamedIn(Actions.method.streamedIn, [plan(reply("still here"))])), ["reply still here"]);
  });
});

describe("streamed out", () => {
  test("one response per answer, each with the side effects recorded before it, in order", async () => {
    const call = proxy.actionStreamedOut(
      Actions.method.streamedOut,
      plan(reply("a"), effect("e1"), reply("b"), syncEffect("e2"), noReply, forward("c"), effect("e3"), effect("e4"), reply("d")),
    );
    const { responses, end } = await call.all();
    assert.deepEqual(responses.map(show), [
      ["reply a"],
      ["reply b", "effect e1"],
      ["no reply", "sync effect e2"],
      [`forward ${SERVICE}.Unary c`],
      ["reply d", "effect e3", "effect e4"],
    ]);
    assert.equal(end.code, 0);
  });

  test("no replies at all", async () => {
    const { responses, end } = await proxy.actionStreamedOut(Actions.method.streamedOut, plan(noReply, noReply)).all();
    assert.deepEqual(responses.map(show), [["no reply"], ["no reply"]]);
    assert.equal(end.code, 0);
  });

  test("an empty stream", async () => {
    const { responses, end } = await proxy.actionStreamedOut(Actions.method.streamedOut, plan()).all();
    assert.deepEqual(responses, []);
    assert.equal(end.code, 0);
  });

  test("side effects after the last answer come in a response with nothing for the client", async () => {
    const { responses } = await proxy.actionStreamedOut(Actions.method.streamedOut, plan(reply("a"), effect("e1"), syncEffect("e2"))).all();
    assert.deepEqual(responses.map(show), [["reply a"], ["no reply", "effect e1", "sync effect e2"]]);
  });

  test("a failure is the last response: its side effects are dropped and the stream ends", async () => {
    const call = proxy.actionStreamedOut(Actions.method.streamedOut, plan(reply("a"), effect("e1"), fail("no good"), reply("never")));
    const { responses, end } = await call.all();
    assert.deepEqual(responses.map(show), [["reply a"], ["failure no good"]]);
    assert.equal(end.code, 0, "the failure response is the error the proxy gives the client");
  });

  test("an exception in the handler ends the stream with a failure, logged", async () => {
    const { responses } = await proxy.actionStreamedOut(Actions.method.streamedOut, plan(reply("a"), boom("kaboom 2"), reply("never"))).all();
    assert.deepEqual(responses.map(show), [["reply a"], [`failure Unexpected error in ${SERVICE}.StreamedOut (see the user function's log)`]]);
    assert.ok(logger.lines.some((l) => l.startsWith("error: action sdktest.Actions.StreamedOut failed: Error: kaboom 2")));
  });

  test("the request metadata reaches the handler", async () => {
    const { responses } = await proxy.actionStreamedOut(Actions.method.streamedOut, plan(header("x-user")), { metadata: { "x-user": "carol" } }).all();
    assert.deepEqual(responses.map(show), [["reply carol"]]);
  });

  test("cancelling the call closes the handler's iterator, with ctx.signal aborted, and the server goes on", async () => {
    const closed = probe.closed.length;
    const call = proxy.actionStreamedOut(Actions.method.ticks, plan());
    assert.deepEqual(show((await call.next())!), ["reply tick 0"]);
    assert.deepEqual(show((await call.next())!), ["reply tick 1"]);
    assert.equal(probe.open, 1);
    call.cancel();
    assert.equal((await call.ended).code, 1, "CANCELLED");
    for (let i = 0; i < 100 && probe.closed.length === closed; i++) await sleep(10);
    assert.equal(probe.open, 0, "the iterator was closed");
    assert.deepEqual(probe.closed.slice(closed), [{ aborted: true }]);
    assert.deepEqual(show(await proxy.actionUnary(Actions.method.unary, plan(reply("still here")))), ["reply still here"]);
  });
});

describe("streamed (bidirectional)", () => {
  test("responses follow requests as they come, each request's answers in order", async () => {
    const call = proxy.actionStreamed(Actions.method.streamed);
    call.send(plan(reply("a")));
    assert.deepEqual(show((await call.next())!), ["reply a"]);
    call.send(plan(effect("e1"), reply("b"), forward("c")));
    assert.deepEqual(show((await call.next())!), ["reply b", "effect e1"]);
    assert.deepEqual(show((await call.next())!), [`forward ${SERVICE}.Unary c`]);
    call.send(plan(syncEffect("e2"), noReply));
    assert.deepEqual(show((await call.next())!), ["no reply", "sync effect e2"]);
    call.send(plan(effect("e3")));
    call.end();
    const { responses, end } = await call.all();
    assert.deepEqual(responses.map(show), [["no reply", "effect e3"]], "trailing effects");
    assert.equal(end.code, 0);
  });

  test("no requests, no responses", async () => {
    const call = proxy.actionStreamed(Actions.method.streamed);
    call.end();
    const { responses, end } = await call.all();
    assert.deepEqual(responses, []);
    assert.equal(end.code, 0);
  });

  test("a failure ends the stream, even while the client still sends", async () => {
    const call = proxy.actionStreamed(Actions.method.streamed);
    call.send(plan(reply("a")));
    call.send(plan(effect("e1"), fail("no good"), reply("never")));
    const { responses, end } = await call.all();
    assert.deepEqual(responses.map(show), [["reply a"], ["failure no good"]]);
    assert.equal(end.code, 0);
  });

  test("the first message's metadata is the call's metadata", async () => {
    const call = proxy.actionStreamed(Actions.method.streamed, { metadata: { "x-user": "dave" } });
    call.send(plan(header("x-user")));
    call.end();
    assert.deepEqual((await call.all()).responses.map(show), [["reply dave"]]);
  });
});

describe("protocol violations get a failure, and a warning in the log", () => {
  test("a service this user function does not serve", async () => {
    const response = await proxy.actionUnary(Actions.method.unary, plan(reply("a")), { serviceName: "sdktest.Nothing" });
    assert.deepEqual(show(response), ["failure no action serves sdktest.Nothing (served: sdktest.Actions)"]);
    assert.ok(logger.lines.some((l) => l.startsWith("warn: protocol error on an action call: no action serves sdktest.Nothing")));
  });

  test("an unknown method (a plain failure, like the entities')", async () => {
    const response = await proxy.handleUnary({ serviceName: SERVICE, name: "Nope", payload: anyPack(PlanSchema, create(PlanSchema)) });
    assert.deepEqual(show(response), ["failure Unknown command Nope for sdktest.Actions"]);
  });

  test("a method called through the protocol method of another shape", async () => {
    const response = await proxy.actionUnary(Actions.method.streamedOut, plan(reply("a")));
    assert.deepEqual(show(response), ["failure sdktest.Actions.StreamedOut is server_streaming: call it with handleStreamedOut, not handleUnary"]);
    const streamed = await proxy.actionStreamedIn(Actions.method.unary, []);
    assert.deepEqual(show(streamed), ["failure sdktest.Actions.Unary is unary: call it with handleUnary, not handleStreamedIn"]);
  });

  test("a payload of another type", async () => {
    const response = await proxy.handleUnary({ serviceName: SERVICE, name: "Unary", payload: anyPack(EmptySchema, create(EmptySchema)) });
    assert.deepEqual(show(response), ["failure Unary expects a type.googleapis.com/sdktest.Plan payload, got type.googleapis.com/google.protobuf.Empty"]);
  });

  test("a streamed-in call whose first message carries a payload", async () => {
    const payload = anyPack(PlanSchema, create(PlanSchema, plan(reply("a"))));
    const response = await proxy.handleStreamedIn([{ serviceName: SERVICE, name: "StreamedIn", payload }]);
    assert.equal(response.response.case, "failure");
    assert.match(response.response.value.description, /first message of a streamed call names the method and carries no payload/);
  });

  test("a streamed-in call with no first message", async () => {
    const response = await proxy.handleStreamedIn([]);
    assert.equal(response.response.case, "failure");
    assert.match(response.response.value.description, /ended before its first message/);
  });

  test("a streamed-in request of another type, even if the handler catches the error", async () => {
    const response = await proxy.handleStreamedIn([
      { serviceName: SERVICE, name: "StreamedIn" },
      { payload: anyPack(PlanSchema, create(PlanSchema, plan(reply("a")))) },
      { payload: anyPack(EmptySchema, create(EmptySchema)) },
    ]);
    assert.deepEqual(show(response), ["failure StreamedIn expects a type.googleapis.com/sdktest.Plan payload, got type.googleapis.com/google.protobuf.Empty"]);
  });

  test("a bidirectional call whose first message carries a payload ends with a failure", async () => {
    const call = proxy.handleStreamed(Actions.method.streamed);
    call.sendRaw({ serviceName: SERVICE, name: "Streamed", payload: anyPack(PlanSchema, create(PlanSchema)) });
    const { responses, end } = await call.all();
    assert.equal(responses.length, 1);
    assert.equal(responses[0]!.response.case, "failure");
    assert.equal(end.code, 0);
  });
});

test("close() ends a streamed-out call in progress as UNAVAILABLE and closes the handler's iterator", async () => {
  const own = { open: 0, closed: [] } as TicksProbe;
  const other = await serve({ entities: [actionsService(own)], port: 0, logger: memoryLogger() });
  const driver = new ProxyDriver(other.port);
  const call = driver.actionStreamedOut(Actions.method.ticks, plan());
  assert.deepEqual(show((await call.next())!), ["reply tick 0"]);
  await other.close();
  const end = await call.ended;
  assert.equal(end.code, 14, "UNAVAILABLE");
  assert.match(end.details, /shutting down/);
  assert.equal(own.open, 0);
  assert.deepEqual(own.closed, [{ aborted: true }]);
  driver.close();
});
