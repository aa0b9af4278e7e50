// The SDK tests' action (testdata/proto/sdktest/actions.proto): every call shape, each answering as
// its requests' steps say, so that tests can ask for any mix of replies, forwards, failures and effects.
import { setTimeout as sleep } from "node:timers/promises";
import { action, type ActionContext, type ActionReply } from "../index.js";
import { Actions, type ResponseSchema, type Step } from "./gen/sdktest/actions_pb.js";

type Answer = ActionReply<typeof ResponseSchema>;

/** What the Ticks stream saw, for cancellation tests. */
export interface TicksProbe {
  /** Ticks streams running now. */
  open: number;
  /** Ticks streams whose iterator was closed, and whether ctx.signal was aborted then. */
  closed: { aborted: boolean }[];
}

export function actionsService(probe: TicksProbe = { open: 0, closed: [] }) {
  return action({
    service: Actions,
    commands: {
      unary: (plan, ctx) => firstAnswer(plan.steps, ctx),
      async streamedIn(requests, ctx) {
        const steps: Step[] = [];
        for await (const plan of requests) steps.push(...plan.steps);
        return firstAnswer(steps, ctx);
      },
      async *streamedOut(plan, ctx) {
        yield* answers(plan.steps, ctx);
      },
      async *streamed(requests, ctx) {
        for await (const plan of requests) yield* answers(plan.steps, ctx);
      },
      async *ticks(_plan, ctx) {
        probe.open++;
        try {
          // Deliberately deaf to ctx.signal: the SDK must close the iterator itself.
          for (let i = 0; ; i++) {
            yield { text: `tick ${i}` };
            await sleep(10);
          }
        } finally {
          probe.open--;
          probe.closed.push({ aborted: ctx.signal.aborted });
        }
      },
    },
  });
}

/** Runs the steps up to the first answer, which it returns (none: no reply). */
function firstAnswer(steps: Step[], ctx: ActionContext): Answer {
  for (const step of steps) {
    const answer = run(step, ctx);
    if (answer !== undefined) return answer;
  }
  return ctx.noReply();
}

/** Runs all the steps, yielding each answer. */
function* answers(steps: Step[], ctx: ActionContext): Generator<Answer> {
  for (const step of steps) {
    const answer = run(step, ctx);
    if (answer !== undefined) yield answer;
  }
}

const replying = (text: string) => ({ steps: [{ step: { case: "reply" as const, value: text } }] });

/** One step: an answer, or undefined for an effect. */
function run({ step }: Step, ctx: ActionContext): Answer | undefined {
  switch (step.case) {
    case "reply":
      return { text: step.value };
    case "forward":
      return ctx.forward(Actions.method.unary, replying(step.value), { metadata: { "x-forwarded-by": "sdktest" } });
    case "fail":
      return ctx.fail(step.value);
    case "noReply":
      return ctx.noReply();
    case "throw":
      throw new Error(step.value);
    case "effect":
      ctx.effect(Actions.method.unary, replying(step.value), { metadata: { "x-effect": step.value } });
      return undefined;
    case "syncEffect":
      ctx.effect(Actions.method.unary, replying(step.value), { synchronous: true });
      return undefined;
    case "metadata": {
      const value = ctx.metadata.get(step.value);
      return { text: value === undefined ? "<none>" : typeof value === "string" ? value : `<${value.length} bytes>` };
    }
    default:
      return undefined;
  }
}
