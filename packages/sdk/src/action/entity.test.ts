// Defining an action: what the compiler rejects (checked by `tsc`, through the @ts-expect-error
// lines) and what the SDK rejects at run time for JavaScript users and casts.
import assert from "node:assert/strict";
import { test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { action } from "../index.js";
import { Actions, PlanSchema, ResponseSchema, type Plan } from "../testdata/gen/sdktest/actions_pb.js";
import { Counter } from "../testdata/gen/sdktest/counter_pb.js";

const reply = () => ({ text: "ok" });
async function* replies() {
  yield { text: "ok" };
}
const commands = {
  unary: reply,
  streamedIn: reply,
  streamedOut: replies,
  streamed: replies,
  ticks: replies,
};

test("a complete, well-typed definition is accepted: each handler has its method's shape", () => {
  const defined = action({
    service: Actions,
    commands: {
      // Unary: a request in, an answer out (a reply, a forward or no reply), possibly as a promise.
      unary: (plan, ctx) => (plan.steps.length === 0 ? ctx.noReply() : { text: `${plan.steps.length}` }),
      // Client streaming: the requests as an async iterable, one answer.
      async streamedIn(requests, ctx) {
        let count = 0;
        for await (const plan of requests) count += plan.steps.length;
        return count > 0 ? create(ResponseSchema, { text: `${count}` }) : ctx.forward(Actions.method.unary, { steps: [] });
      },
      // Server streaming: a request in, answers out as an (async) iterable.
      async *streamedOut(plan, ctx) {
        for (const _ of plan.steps) yield { text: "step" };
        yield ctx.noReply();
        yield ctx.forward(Actions.method.unary, plan);
      },
      // Bidirectional: requests in, answers out.
      async *streamed(requests) {
        for await (const plan of requests) yield { text: `${plan.steps.length}` };
      },
      // A plain iterable of answers works too.
      ticks: () => [{ text: "a" }, { text: "b" }],
    },
  });
  assert.equal(defined.entityType, "cloudstate.action.ActionProtocol");
  assert.equal(defined.persistenceId, "", "actions store nothing");
  assert.equal(defined.passivationTimeoutMs, undefined);
  assert.deepEqual(
    defined.files.map((f) => f.proto.name),
    ["sdktest/actions.proto"],
  );
});

test("a command name the service does not have is rejected", () => {
  assert.throws(
    () =>
      action({
        service: Actions,
        commands: {
          ...commands,
          // @ts-expect-error: no such method
          other: reply,
        },
      }),
    /command handler "other" matches no method/,
  );
});

test("a missing handler is rejected", () => {
  assert.throws(
    () =>
      action({
        service: Actions,
        // @ts-expect-error: ticks is missing
        commands: { unary: reply, streamedIn: reply, streamedOut: replies, streamed: replies },
      }),
    /no command handler for Ticks \(key "ticks"\)/,
  );
});

test("the compiler checks each handler's shape, its input and its answers", () => {
  // Compile-time only: these handlers never run.
  action({
    service: Actions,
    commands: {
      // @ts-expect-error: a unary method answers once, not with a stream
      unary: replies,
      // @ts-expect-error: a client-streaming handler gets the requests as an async iterable, not one request
      streamedIn: (plan: Plan) => ({ text: `${plan.steps.length}` }),
      // @ts-expect-error: a server-streaming method answers with an iterable, not one reply
      streamedOut: reply,
      streamed: replies,
      ticks: replies,
    },
  });
  // A generator's answers are checked together: the compiler reports a wrong one at the generator.
  action({
    service: Actions,
    commands: {
      ...commands,
      async *streamed(requests) {
        // @ts-expect-error: the requests are Plans (no field "text")
        for await (const plan of requests) yield { text: plan.text };
      },
    },
  });
  action({
    service: Actions,
    commands: {
      ...commands,
      // @ts-expect-error: Response has no field "nope"
      async *ticks() {
        yield { nope: 1 };
      },
    },
  });
  action({
    service: Actions,
    commands: {
      ...commands,
      // @ts-expect-error: forwarding to a method whose reply is not a Response
      async *ticks(_plan, ctx) {
        yield ctx.forward(Counter.method.get, {});
      },
    },
  });
  action({
    service: Actions,
    commands: {
      ...commands,
      // @ts-expect-error: an answer must be given: a bare undefined is not "no reply"
      async *ticks() {
        yield undefined;
      },
    },
  });
  action({
    service: Actions,
    commands: {
      ...commands,
      // @ts-expect-error: a unary handler gets one request, not an iterable of them
      unary: async (requests: AsyncIterable<Plan>) => {
        for await (const _ of requests) break;
        return { text: "" };
      },
    },
  });
  action({
    service: Actions,
    commands: {
      ...commands,
      // @ts-expect-error: the reply is a Response, not a Plan
      unary: () => create(PlanSchema),
    },
  });
});

test("handlers that are not functions are rejected", () => {
  assert.throws(
    // @ts-expect-error: a handler is a function
    () => action({ service: Actions, commands: { ...commands, unary: { text: "ok" } } }),
    /no command handler for Unary/,
  );
});
