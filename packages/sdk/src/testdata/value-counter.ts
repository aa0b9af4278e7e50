// The SDK tests' value entity: a counter (testdata/proto/sdktest/value_counter.proto) whose
// commands exercise the value entity protocol.
import { create } from "@bufbuild/protobuf";
import { valueEntity } from "../index.js";
import { SLOW } from "./counter.js";
import { Audit, ChangeSchema } from "./gen/sdktest/counter_pb.js";
import { CounterStateSchema } from "./gen/sdktest/domain_pb.js";
import { ValueCounter } from "./gen/sdktest/value_counter_pb.js";

/**
 * Add sets the state once per amount (adding it) and replies with the state; a negative amount
 * fails the command (ctx.fail), 13 throws (a bug), 99 sets a state of the wrong type, SLOW waits.
 */
export function valueCounterEntity(options: { passivationTimeoutMs?: number } = {}) {
  return valueEntity({
    service: ValueCounter,
    persistenceId: "value-counter",
    state: CounterStateSchema,
    initial: () => create(CounterStateSchema),
    passivationTimeoutMs: options.passivationTimeoutMs,
    commands: {
      async add({ amounts }, ctx) {
        for (const amount of amounts) {
          if (amount === SLOW) await new Promise((resolve) => setTimeout(resolve, 300));
          if (amount < 0) ctx.fail(`cannot add ${amount}`);
          if (amount === 13) throw new Error("unlucky 13");
          if (amount === 99) ctx.setState(create(ChangeSchema) as never);
          // Changes the context's copy, then stores it: a later failure must leave the entity's state as it was.
          const state = ctx.state;
          state.value += amount;
          state.changes++;
          ctx.setState(state);
        }
        return { value: ctx.state.value, changes: ctx.state.changes };
      },
      clear(_query, ctx) {
        ctx.deleteState();
        return {};
      },
      addThenClear({ amounts }, ctx) {
        for (const amount of amounts) {
          ctx.setState(create(CounterStateSchema, { value: ctx.state.value + amount, changes: ctx.state.changes + 1 }));
        }
        ctx.deleteState();
        return { value: ctx.state.value, changes: ctx.state.changes };
      },
      async get(_query, ctx) {
        await new Promise((resolve) => setImmediate(resolve)); // handlers may be async
        return { value: ctx.state.value, changes: ctx.state.changes };
      },
      forwardGet: (query, ctx) => ctx.forward(ValueCounter.method.get, query, { metadata: { "x-forwarded-by": "ValueCounter" } }),
      addAndAudit(change, ctx) {
        // Effects first, so a failing amount shows that a failure drops them.
        ctx.effect(Audit.method.record, change, { synchronous: true });
        ctx.effect(Audit.method.record, { counterId: change.counterId }, { metadata: { "x-audit": "async" } });
        for (const amount of change.amounts) {
          if (amount < 0) ctx.fail(`cannot add ${amount}`);
          ctx.setState(create(CounterStateSchema, { value: ctx.state.value + amount, changes: ctx.state.changes + 1 }));
        }
        return {};
      },
    },
  });
}
