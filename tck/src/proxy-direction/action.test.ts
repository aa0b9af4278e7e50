// Direction (b), actions: a gRPC client calls ActionTckModel through the proxy in the four call
// shapes and checks what it receives — replies, no replies, forwards answered by ActionTwo, failures
// as status UNKNOWN ending streams — and, through the model's probe, that side effects reached
// ActionTwo and request headers arrived as metadata.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { status } from "@grpc/grpc-js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { ActionTckModel, type ProcessGroupSchema, type ProcessStepSchema, type RequestSchema } from "../gen/cloudstate/tck/model/action_pb.js";
import { rejectsWith, sleep } from "./expectations.js";
import { startProxyUnderTest, type ProxyUnderTest } from "./proxy-under-test.js";

type Step = MessageInitShape<typeof ProcessStepSchema>;
type Group = MessageInitShape<typeof ProcessGroupSchema>;
type Request = MessageInitShape<typeof RequestSchema>;
const reply = (message: string): Step => ({ step: { case: "reply", value: { message } } });
const forward = (id: string): Step => ({ step: { case: "forward", value: { id } } });
const effect = (id: string, synchronous = false): Step => ({ step: { case: "effect", value: { id, synchronous } } });
const fail = (message: string): Step => ({ step: { case: "fail", value: { message } } });
const group = (...steps: Step[]): Group => ({ steps });
const request = (...groups: Group[]): Request => ({ groups });

const { processUnary, processStreamedIn, processStreamedOut, processStreamed } = ActionTckModel.method;

describe("direction (b) — actions through the proxy", () => {
  let p: ProxyUnderTest;

  before(async () => {
    p = await startProxyUnderTest();
  });
  after(() => p.close());

  /** Asserts that ActionTwo was called once with `id`: at once for a synchronous effect, eventually for the others. */
  async function ranOnce(id: string, what: string, synchronous = false): Promise<void> {
    if (!synchronous) await p.probe.waitFor(`${what}: ActionTwo called with "${id}"`, (c) => c.id === id);
    assert.equal(p.probe.actionTwoCalls(id).length, 1, `${what}: ActionTwo was called once with "${id}"${synchronous ? " before the reply" : ""}`);
  }

  /** Asserts that ActionTwo was never called with these ids (after giving asynchronous effects time to run). */
  async function neverRan(ids: string[], what: string): Promise<void> {
    await sleep(200);
    for (const id of ids) assert.equal(p.probe.actionTwoCalls(id).length, 0, `${what}: the side effect "${id}" was dropped`);
  }

  describe("unary", () => {
    test("action: unary reply", async () => {
      assert.equal((await p.client.unary(processUnary, request(group(reply("hello"))))).message, "hello", "action: the client gets the reply");
    });

    test("action: unary no reply answers the empty message, and its side effects run", async () => {
      const id = p.id("unary-no-reply");
      const response = await p.client.unary(processUnary, request(group(effect(id, true))));
      assert.equal(response.message, "", "action: a unary call with no reply completes with the empty message");
      await ranOnce(id, "action: unary no reply", true);
    });

    test("action: unary forward is answered by ActionTwo", async () => {
      const id = p.id("unary-forward");
      assert.equal((await p.client.unary(processUnary, request(group(forward(id))))).message, id, "action: the client gets ActionTwo's reply");
      await ranOnce(id, "action: unary forward", true);
    });

    test("action: unary failure is status UNKNOWN with its message, and its side effects are dropped", async () => {
      const [a, s] = [p.id("unary-failure-async"), p.id("unary-failure-sync")];
      await rejectsWith(p.client.unary(processUnary, request(group(effect(a), effect(s, true), fail("failed")))), status.UNKNOWN, "failed", "action: unary failure");
      await neverRan([a, s], "action: unary failure");
    });

    test("action: unary reply with a side effect", async () => {
      const id = p.id("unary-effect");
      assert.equal((await p.client.unary(processUnary, request(group(effect(id), reply("r"))))).message, "r");
      await ranOnce(id, "action: an asynchronous side effect");
    });

    test("action: unary reply with a synchronous side effect, run before the reply", async () => {
      const id = p.id("unary-sync-effect");
      assert.equal((await p.client.unary(processUnary, request(group(effect(id, true), reply("r"))))).message, "r");
      await ranOnce(id, "action: a synchronous side effect", true);
    });

    test("action: unary forward with several side effects", async () => {
      const [e1, e2, e3, target] = [p.id("several-1"), p.id("several-2"), p.id("several-3"), p.id("several-forward")];
      const response = await p.client.unary(processUnary, request(group(effect(e1), effect(e2, true), effect(e3), forward(target))));
      assert.equal(response.message, target, "action: the forward answers");
      await ranOnce(e2, "action: the synchronous one of several side effects", true);
      await ranOnce(e1, "action: several side effects");
      await ranOnce(e3, "action: several side effects");
    });
  });

  describe("streamed in", () => {
    test("action: streamed-in reply, with side effects from several requests", async () => {
      const [e1, e2] = [p.id("in-effect-1"), p.id("in-effect-2")];
      const response = await p.client.streamedIn(processStreamedIn, [request(group(effect(e1))), request(group(reply("r"), effect(e2, true)))]);
      assert.equal(response.message, "r", "action: the client gets the reply");
      await ranOnce(e2, "action: streamed-in", true);
      await ranOnce(e1, "action: streamed-in");
    });

    test("action: streamed-in no reply with no requests", async () => {
      assert.equal((await p.client.streamedIn(processStreamedIn, [])).message, "", "action: the call completes with the empty message");
    });

    test("action: streamed-in no reply, its side effects run", async () => {
      const id = p.id("in-no-reply");
      assert.equal((await p.client.streamedIn(processStreamedIn, [request(group()), request(group(effect(id)))])).message, "");
      await ranOnce(id, "action: streamed-in no reply");
    });

    test("action: streamed-in forward with side effects", async () => {
      const [target, id] = [p.id("in-forward"), p.id("in-forward-effect")];
      assert.equal((await p.client.streamedIn(processStreamedIn, [request(group(effect(id, true))), request(group(forward(target)))])).message, target);
      await ranOnce(id, "action: streamed-in forward + effects", true);
    });

    test("action: streamed-in failure with side effects is status UNKNOWN, the side effects dropped", async () => {
      const id = p.id("in-failure");
      await rejectsWith(
        p.client.streamedIn(processStreamedIn, [request(group(effect(id), reply("r"))), request(group(fail("failed")))]),
        status.UNKNOWN,
        "failed",
        "action: streamed-in failure",
      );
      await neverRan([id], "action: streamed-in failure");
    });
  });

  describe("streamed out", () => {
    test("action: streamed-out replies with side effects", async () => {
      const [e1, e2] = [p.id("out-effect-1"), p.id("out-effect-2")];
      const { responses, end } = await p.client.streamedOut(processStreamedOut, request(group(reply("a")), group(effect(e1), reply("b")), group(effect(e2, true), reply("c")))).all();
      assert.deepEqual(responses.map((r) => r.message), ["a", "b", "c"], "action: one response per reply, in order");
      assert.equal(end.code, status.OK, `action: the stream ends OK (got ${end.code}: ${end.details})`);
      await ranOnce(e1, "action: streamed-out side effect");
      await ranOnce(e2, "action: streamed-out synchronous side effect", true);
    });

    test("action: streamed-out no replies send the client nothing, their side effects run", async () => {
      const [e1, e2] = [p.id("out-silent-1"), p.id("out-silent-2")];
      const { responses, end } = await p.client.streamedOut(processStreamedOut, request(group(effect(e1)), group(effect(e2, true)))).all();
      assert.deepEqual(responses, [], "action: no response reaches the client");
      assert.equal(end.code, status.OK, `action: the stream ends OK (got ${end.code}: ${end.details})`);
      await ranOnce(e1, "action: streamed-out no reply");
      await ranOnce(e2, "action: streamed-out no reply", true);
    });

    test("action: streamed-out forwards are answered by ActionTwo", async () => {
      const [f1, f2] = [p.id("out-forward-1"), p.id("out-forward-2")];
      const { responses, end } = await p.client.streamedOut(processStreamedOut, request(group(forward(f1)), group(reply("between")), group(forward(f2)))).all();
      assert.deepEqual(responses.map((r) => r.message), [f1, "between", f2], "action: each forward's reply reaches the client in its place");
      assert.equal(end.code, status.OK);
    });

    test("action: a failure ends the streamed-out call with status UNKNOWN, after the earlier responses", async () => {
      const id = p.id("out-failure");
      const { responses, end } = await p.client.streamedOut(processStreamedOut, request(group(reply("a")), group(effect(id), fail("failed")), group(reply("never")))).all();
      assert.deepEqual(responses.map((r) => r.message), ["a"], "action: the responses before the failure, and none after it");
      assert.equal(end.code, status.UNKNOWN, `action: the stream ends with status UNKNOWN (got ${end.code}: ${end.details})`);
      assert.ok(end.details.includes("failed"), `action: the stream's error carries the failure message (got "${end.details}")`);
      await neverRan([id], "action: streamed-out failure");
    });
  });

  describe("streamed (bidirectional)", () => {
    test("action: streamed replies, no replies and forwards, one request at a time", async () => {
      const [e1, f1] = [p.id("bidi-effect"), p.id("bidi-forward")];
      const call = p.client.streamed(processStreamed);
      call.send(request(group(reply("a"))));
      assert.equal((await call.next())?.message, "a", "action: the reply to the first request");
      call.send(request(group(effect(e1, true)))); // no reply: nothing for the client
      call.send(request(group(forward(f1)), group(reply("b"))));
      assert.equal((await call.next())?.message, f1, "action: ActionTwo's reply to the forward (the request with no reply sent nothing)");
      assert.equal((await call.next())?.message, "b", "action: the reply of the request's second group");
      await ranOnce(e1, "action: streamed side effect", true);
      call.end();
      const end = await call.endsWithin(2_000, "action: a streamed call ends once the client is done");
      assert.equal(end.code, status.OK, `action: the stream ends OK (got ${end.code}: ${end.details})`);
    });

    test("action: streamed responses still flow after the client has finished sending", async () => {
      const call = p.client.streamed(processStreamed);
      call.send(request(group(reply("a")), group(reply("b"))));
      call.end();
      const first = await call.next(2_000).catch(() => undefined);
      const responses = [first, first && (await call.next(2_000).catch(() => undefined))];
      assert.deepEqual(responses.map((r) => r?.message), ["a", "b"], "action: the responses to requests sent before the client half-closed reach it");
      const end = await call.endsWithin(2_000, "action: a streamed call ends once the client is done and the responses are sent");
      assert.equal(end.code, status.OK, `action: the stream ends OK (got ${end.code}: ${end.details})`);
    });

    test("action: a failure ends the streamed call with status UNKNOWN, though the client has not finished", async () => {
      const id = p.id("bidi-failure");
      const call = p.client.streamed(processStreamed);
      call.send(request(group(reply("a"))));
      assert.equal((await call.next())?.message, "a");
      call.send(request(group(effect(id), fail("failed"))));
      const end = await call.endsWithin(2_000, "action: a failure ends the streamed call");
      assert.equal(await call.next(), undefined, "action: no response after the failure");
      assert.equal(end.code, status.UNKNOWN, `action: the stream ends with status UNKNOWN (got ${end.code}: ${end.details})`);
      assert.ok(end.details.includes("failed"), `action: the stream's error carries the failure message (got "${end.details}")`);
      await neverRan([id], "action: streamed failure");
    });
  });

  describe("request headers", () => {
    const header = "x-tck-header";
    async function arrived(value: string, method: string): Promise<void> {
      const call = await p.probe.waitFor(`action: the ${method} call with header ${header}: ${value}`, (c) => c.metadata.some(([k, v]) => k.toLowerCase() === header && v === value));
      assert.equal(call.method, method, "action: the header arrived with the call it was sent on");
    }

    test("action: request headers arrive as metadata (unary)", async () => {
      const value = p.id("header-unary");
      await p.client.unary(processUnary, request(group(reply("r"))), { metadata: { [header]: value } });
      await arrived(value, "ProcessUnary");
    });

    test("action: request headers arrive as metadata (streamed in)", async () => {
      const value = p.id("header-in");
      await p.client.streamedIn(processStreamedIn, [request(group(reply("r")))], { metadata: { [header]: value } });
      await arrived(value, "ProcessStreamedIn");
    });

    test("action: request headers arrive as metadata (streamed out)", async () => {
      const value = p.id("header-out");
      await p.client.streamedOut(processStreamedOut, request(group(reply("r"))), { metadata: { [header]: value } }).all();
      await arrived(value, "ProcessStreamedOut");
    });

    test("action: request headers arrive as metadata (streamed)", async () => {
      const value = p.id("header-bidi");
      const call = p.client.streamed(processStreamed, { metadata: { [header]: value } });
      call.send(request(group(reply("r"))));
      await arrived(value, "ProcessStreamed");
      call.end();
      call.cancel();
    });
  });
});
