// Direction (a), actions: the suite plays the proxy on the four ActionProtocol calls and checks each
// response's client action (reply, forward, failure, nothing) and side effects.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ActionResponse } from "@cloudstate-ts/sdk/testing";
import {
  ActionTckModel,
  ActionTwo,
  OtherRequestSchema,
  ResponseSchema,
  type ProcessGroupSchema,
  type ProcessStepSchema,
  type RequestSchema,
} from "../gen/cloudstate/tck/model/action_pb.js";
import { actionOf, expectFailure, expectForward, expectNoReply, expectReply, sideEffectsOf } from "./replies.js";
import { startUserFunction, type UserFunctionUnderTest } from "./user-function.js";

type Step = MessageInitShape<typeof ProcessStepSchema>;
type Group = MessageInitShape<typeof ProcessGroupSchema>;
type Request = MessageInitShape<typeof RequestSchema>;
const reply = (message: string): Step => ({ step: { case: "reply", value: { message } } });
const forward = (id: string): Step => ({ step: { case: "forward", value: { id } } });
const effect = (id: string, synchronous = false): Step => ({ step: { case: "effect", value: { id, synchronous } } });
const fail = (message: string): Step => ({ step: { case: "fail", value: { message } } });
const group = (...steps: Step[]): Group => ({ steps });
const request = (...groups: Group[]): Request => ({ groups });

const TWO_CALL = `${ActionTwo.typeName}.Call`;
const TWO = { service: ActionTwo.typeName, method: "Call", input: OtherRequestSchema };

/** What a response should be: its answer, and its side effects as [id, synchronous]. */
type Answer = { reply: string } | { forward: string } | { failure: string } | "no reply";
interface Expected {
  answer: Answer;
  effects: [id: string, synchronous: boolean][];
}
const isFailure = (answer: Answer) => typeof answer === "object" && "failure" in answer;

function check(response: ActionResponse | undefined, expected: Expected, what: string): void {
  const action = actionOf(response, what);
  const { answer } = expected;
  if (answer === "no reply") expectNoReply(action, what);
  else if ("reply" in answer) assert.equal(expectReply(action, ResponseSchema, what).message, answer.reply, `${what}: the reply's message`);
  else if ("forward" in answer) assert.deepEqual(expectForward(action, TWO, what), { id: answer.forward }, `${what}: the forward's payload`);
  else expectFailure(action, answer.failure, what);
  const effects = sideEffectsOf(response!.sideEffects, OtherRequestSchema, what);
  assert.deepEqual(
    effects,
    expected.effects.map(([id, sync]) => [TWO_CALL, { id }, sync]),
    `${what}: the side effects (a failure drops them)`,
  );
}

// The four answers × the four kinds of side effects of a unary call.
const ANSWERS: [name: string, step: Step | undefined, answer: Answer][] = [
  ["reply", reply("replied"), { reply: "replied" }],
  ["no reply", undefined, "no reply"],
  ["forward", forward("forwarded"), { forward: "forwarded" }],
  ["failure", fail("failed"), { failure: "failed" }],
];
const EFFECTS: [name: string, steps: Step[], effects: [string, boolean][]][] = [
  ["no side effect", [], []],
  ["a side effect", [effect("s1")], [["s1", false]]],
  ["a synchronous side effect", [effect("s1", true)], [["s1", true]]],
  ["several side effects", [effect("s1"), effect("s2", true), effect("s3")], [["s1", false], ["s2", true], ["s3", false]]],
];

describe("direction (a) — action", () => {
  let uf: UserFunctionUnderTest;

  before(async () => {
    uf = await startUserFunction();
  });
  after(() => uf.close());

  describe("unary", () => {
    for (const [answerName, answerStep, answer] of ANSWERS) {
      for (const [effectsName, effectSteps, effects] of EFFECTS) {
        const name = `action: unary ${answerName} with ${effectsName}`;
        test(name, async () => {
          const steps = answerStep ? [...effectSteps, answerStep] : effectSteps;
          const response = await uf.driver.actionUnary(ActionTckModel.method.processUnary, request(group(...steps)));
          check(response, { answer, effects: isFailure(answer) ? [] : effects }, name);
        });
      }
    }
  });

  describe("streamed in", () => {
    const cases: [name: string, requests: Request[], expected: Expected][] = [
      ["reply", [request(group(reply("first"))), request(group(reply("second")))], { answer: { reply: "second" }, effects: [] }],
      [
        "reply with side effects",
        [request(group(effect("s1"))), request(group(reply("r"), effect("s2", true)))],
        { answer: { reply: "r" }, effects: [["s1", false], ["s2", true]] },
      ],
      ["no reply with no requests", [], { answer: "no reply", effects: [] }],
      ["no reply", [request(group()), request(group(effect("s1")))], { answer: "no reply", effects: [["s1", false]] }],
      ["forward", [request(group(forward("f1")))], { answer: { forward: "f1" }, effects: [] }],
      ["forward with side effects", [request(group(effect("s1", true))), request(group(forward("f1"), effect("s2")))], { answer: { forward: "f1" }, effects: [["s1", true], ["s2", false]] }],
      ["failure", [request(group(reply("r"))), request(group(fail("failed")))], { answer: { failure: "failed" }, effects: [] }],
      ["failure with side effects", [request(group(effect("s1"))), request(group(effect("s2", true), fail("failed")))], { answer: { failure: "failed" }, effects: [] }],
    ];
    for (const [caseName, requests, expected] of cases) {
      const name = `action: streamed-in ${caseName}`;
      test(name, async () => {
        check(await uf.driver.actionStreamedIn(ActionTckModel.method.processStreamedIn, requests), expected, name);
      });
    }
  });

  // One response per group; for bidi, the groups of each request as it arrives.
  const streamCases: [name: string, groups: Group[], expected: Expected[]][] = [
    [
      "replies with side effects",
      [group(reply("a")), group(reply("b"), effect("s1")), group(effect("s2", true), reply("c"))],
      [
        { answer: { reply: "a" }, effects: [] },
        { answer: { reply: "b" }, effects: [["s1", false]] },
        { answer: { reply: "c" }, effects: [["s2", true]] },
      ],
    ],
    [
      "no replies with side effects",
      [group(effect("s1")), group(effect("s2", true), effect("s3"))],
      [
        { answer: "no reply", effects: [["s1", false]] },
        { answer: "no reply", effects: [["s2", true], ["s3", false]] },
      ],
    ],
    [
      "forwards with side effects",
      [group(forward("f1")), group(effect("s1"), forward("f2"))],
      [
        { answer: { forward: "f1" }, effects: [] },
        { answer: { forward: "f2" }, effects: [["s1", false]] },
      ],
    ],
    [
      "a failure that ends the stream, dropping its side effects",
      [group(reply("a"), effect("s1")), group(effect("s2"), fail("failed")), group(reply("never"))],
      [
        { answer: { reply: "a" }, effects: [["s1", false]] },
        { answer: { failure: "failed" }, effects: [] },
      ],
    ],
  ];

  describe("streamed out", () => {
    for (const [caseName, groups, expected] of streamCases) {
      const name = `action: streamed-out ${caseName}`;
      test(name, async () => {
        const { responses, end } = await uf.driver.actionStreamedOut(ActionTckModel.method.processStreamedOut, request(...groups)).all();
        assert.equal(responses.length, expected.length, `${name}: the number of responses (${expected.length} expected; nothing after a failure)`);
        expected.forEach((e, i) => check(responses[i], e, `${name}, response ${i + 1}`));
        assert.equal(end.code, 0, `${name}: the call ends with status OK (got ${end.code}: ${end.details})`);
      });
    }
  });

  describe("streamed (bidirectional)", () => {
    for (const [caseName, groups, expected] of streamCases) {
      const name = `action: streamed ${caseName}`;
      test(name, async () => {
        // One request per group, each answered before the next is sent.
        const call = uf.driver.actionStreamed(ActionTckModel.method.processStreamed);
        for (const [i, e] of expected.entries()) {
          call.send(request(groups[i]!));
          check(await call.next(), e, `${name}, response ${i + 1}`);
        }
        const failed = expected.some((e) => isFailure(e.answer));
        if (failed) {
          // The stream ends after the failure even though the client has not finished sending.
          assert.equal(await call.next(), undefined, `${name}: nothing follows a failure, the call ends`);
        } else {
          call.end();
          assert.equal(await call.next(), undefined, `${name}: the call ends when the client is done`);
        }
        const end = await call.ended;
        assert.equal(end.code, 0, `${name}: the call ends with status OK (got ${end.code}: ${end.details})`);
      });
    }

    test("action: streamed several groups in one request give one response each", async () => {
      const call = uf.driver.actionStreamed(ActionTckModel.method.processStreamed);
      call.send(request(group(reply("a")), group(effect("s1")), group(forward("f1"))));
      call.end();
      const { responses, end } = await call.all();
      assert.equal(responses.length, 3, "action: one response per group of the request");
      check(responses[0], { answer: { reply: "a" }, effects: [] }, "group 1");
      check(responses[1], { answer: "no reply", effects: [["s1", false]] }, "group 2");
      check(responses[2], { answer: { forward: "f1" }, effects: [] }, "group 3");
      assert.equal(end.code, 0, "action: the call ends with status OK");
    });
  });

  test("action: ActionTwo answers with its request's id", async () => {
    const response = await uf.driver.actionUnary(ActionTwo.method.call, { id: "two" });
    assert.equal(expectReply(actionOf(response, "ActionTwo.Call"), ResponseSchema, "ActionTwo.Call").message, "two");
  });
});
