// The action model (proto/cloudstate/tck/model/action.proto): ActionTckModel runs groups of steps —
// reply, forward, side effect, fail — in each call shape; ActionTwo is the target of its forwards
// and side effects.
import { create } from "@bufbuild/protobuf";
import { action, type ActionContext, type ActionReply } from "@cloudstate-ts/sdk";
import { ActionTckModel, ActionTwo, ProcessGroupSchema, type ProcessGroup, type Request, type ResponseSchema } from "../gen/cloudstate/tck/model/action_pb.js";
import type { ModelProbe } from "./probe.js";

type Answer = ActionReply<typeof ResponseSchema>;

/** Runs a group's steps; its answer is the last reply or forward, else no reply. */
function runGroup(group: ProcessGroup, ctx: ActionContext): Answer {
  let answer: Answer | undefined;
  for (const { step } of group.steps) {
    switch (step.case) {
      case "reply":
        answer = { message: step.value.message };
        break;
      case "forward":
        answer = ctx.forward(ActionTwo.method.call, { id: step.value.id });
        break;
      case "effect":
        ctx.effect(ActionTwo.method.call, { id: step.value.id }, { synchronous: step.value.synchronous });
        break;
      case "fail":
        ctx.fail(step.value.message);
    }
  }
  return answer ?? ctx.noReply();
}

/** All the groups of the requests as one group. */
const merged = (requests: readonly Request[]): ProcessGroup =>
  create(ProcessGroupSchema, { steps: requests.flatMap((r) => r.groups.flatMap((g) => g.steps)) });

export function actionModel(probe?: ModelProbe) {
  const seen = (ctx: ActionContext) => probe?.record({ service: ActionTckModel.typeName, method: ctx.commandName, metadata: [...ctx.metadata] });
  return [
    action({
      service: ActionTckModel,
      commands: {
        processUnary(request, ctx) {
          seen(ctx);
          return runGroup(merged([request]), ctx);
        },
        async processStreamedIn(requests, ctx) {
          seen(ctx);
          const all: Request[] = [];
          for await (const request of requests) all.push(request);
          return runGroup(merged(all), ctx);
        },
        async *processStreamedOut(request, ctx) {
          seen(ctx);
          for (const group of request.groups) yield runGroup(group, ctx);
        },
        async *processStreamed(requests, ctx) {
          seen(ctx);
          for await (const request of requests) for (const group of request.groups) yield runGroup(group, ctx);
        },
      },
    }),
    action({
      service: ActionTwo,
      commands: {
        call({ id }, ctx) {
          probe?.record({ service: ActionTwo.typeName, method: ctx.commandName, id, metadata: [...ctx.metadata] });
          return { message: id };
        },
      },
    }),
  ];
}
