// The SDK tests' entity: a counter (testdata/proto/sdktest) whose commands exercise the protocol.
import { create } from "@bufbuild/protobuf";
import { eventSourced } from "../index.js";
import type { Logger } from "../logger.js";
import { Audit, Counter } from "./gen/sdktest/counter_pb.js";
import { AddedSchema, ClearedSchema, CounterStateSchema, UnhandledSchema } from "./gen/sdktest/domain_pb.js";

export const SNAPSHOT_EVERY = 3;
/** An amount that makes Add take 300 ms. */
export const SLOW = 1000;
/** How many SLOW amounts have started waiting: lets a test know a command is inside its handler. */
export const slowStarted = { count: 0 };

/**
 * Add emits one Added per amount and replies with the state after them; a negative amount fails
 * the command (ctx.fail), 13 throws (a bug), 99 emits an event type that has no handler, SLOW waits.
 */
export function counterEntity(options: { passivationTimeoutMs?: number } = {}) {
  return eventSourced({
    service: Counter,
    persistenceId: "counter",
    state: CounterStateSchema,
    initial: () => create(CounterStateSchema),
    snapshotEvery: SNAPSHOT_EVERY,
    passivationTimeoutMs: options.passivationTimeoutMs,
    events: [
      [
        AddedSchema,
        (state, { amount }) => {
          state.value += amount;
          state.changes++;
          return state;
        },
      ],
      [ClearedSchema, (state) => create(CounterStateSchema, { changes: state.changes + 1 })],
    ],
    commands: {
      async add({ amounts }, ctx) {
        for (const amount of amounts) {
          if (amount === SLOW) {
            slowStarted.count++;
            await new Promise((resolve) => setTimeout(resolve, 300));
          }
          if (amount < 0) ctx.fail(`cannot add ${amount}`);
          if (amount === 13) throw new Error("unlucky 13");
          if (amount === 99) ctx.emit(create(UnhandledSchema) as never);
          ctx.emit(create(AddedSchema, { amount }));
        }
        return { value: ctx.state.value, changes: ctx.state.changes };
      },
      clear(_query, ctx) {
        ctx.emit(create(ClearedSchema));
        return {};
      },
      async get(_query, ctx) {
        await new Promise((resolve) => setImmediate(resolve)); // handlers may be async
        return { value: ctx.state.value, changes: ctx.state.changes };
      },
      forwardGet: (query, ctx) => ctx.forward(Counter.method.get, query),
      addAndAudit(change, ctx) {
        // Effects first, so a failing amount shows that a failure drops them.
        ctx.effect(Audit.method.record, change, { synchronous: true });
        ctx.effect(Audit.method.record, { counterId: change.counterId });
        for (const amount of change.amounts) {
          if (amount < 0) ctx.fail(`cannot add ${amount}`);
          ctx.emit(create(AddedSchema, { amount }));
        }
        return {};
      },
    },
  });
}

/** A logger that keeps its lines, for tests that check what was logged (and to keep output quiet). */
export function memoryLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    info: (m) => lines.push(`info: ${m}`),
    warn: (m) => lines.push(`warn: ${m}`),
    error: (m) => lines.push(`error: ${m}`),
  };
}
