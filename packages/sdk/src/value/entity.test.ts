// Defining a value entity: what the compiler rejects (checked by `tsc`, through the @ts-expect-error
// lines) and what the SDK rejects at run time for JavaScript users and casts.
import assert from "node:assert/strict";
import { test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { EmptySchema } from "@bufbuild/protobuf/wkt";
import { textAny, valueEntity } from "../index.js";
import { Actions } from "../testdata/gen/sdktest/actions_pb.js";
import { Audit, ChangeSchema } from "../testdata/gen/sdktest/counter_pb.js";
import { CounterStateSchema, type CounterState } from "../testdata/gen/sdktest/domain_pb.js";
import { SummarySchema, Tally } from "../testdata/gen/sdktest/eventing_pb.js";
import { ValueCounter } from "../testdata/gen/sdktest/value_counter_pb.js";
import type { ValueEntityCommandContext } from "./context.js";

const base = {
  service: ValueCounter,
  persistenceId: "value-counter",
  state: CounterStateSchema,
  initial: () => create(CounterStateSchema),
};
const value = () => ({ value: 1 });
const empty = () => ({});
const commands = { add: value, clear: empty, addThenClear: value, get: value, forwardGet: value, addAndAudit: empty };

test("a complete, well-typed definition is accepted", () => {
  const entity = valueEntity({
    ...base,
    passivationTimeoutMs: 100,
    commands: {
      add: (c, ctx) => {
        ctx.setState(create(CounterStateSchema, { value: ctx.state.value + c.amounts.length }));
        return { value: ctx.state.value };
      },
      clear: async (_q, ctx) => {
        ctx.deleteState();
        return create(EmptySchema);
      },
      addThenClear: (_c, ctx) => (ctx.deleteState(), { value: 0 }),
      get: (_q, ctx) => ({ value: ctx.state.value, changes: ctx.state.changes }),
      forwardGet: (q, ctx) => ctx.forward(ValueCounter.method.get, q),
      addAndAudit: (c, ctx) => (ctx.effect(Audit.method.record, c, { synchronous: true }), {}),
    },
  });
  assert.equal(entity.entityType, "cloudstate.valueentity.ValueEntity");
  assert.equal(entity.persistenceId, "value-counter");
  assert.equal(entity.passivationTimeoutMs, 100);
  assert.deepEqual(
    entity.files.map((f) => f.proto.name),
    ["sdktest/value_counter.proto", "sdktest/domain.proto"],
  );
});

test("a command name the service does not have is rejected", () => {
  assert.throws(
    () =>
      valueEntity({
        ...base,
        commands: {
          ...commands,
          // @ts-expect-error: no such method
          subtract: value,
        },
      }),
    /command handler "subtract" matches no method/,
  );
});

test("a missing command handler is rejected", () => {
  assert.throws(
    () =>
      valueEntity({
        ...base,
        // @ts-expect-error: addAndAudit is missing
        commands: { add: value, clear: empty, addThenClear: value, get: value, forwardGet: value },
      }),
    /no command handler for AddAndAudit \(key "addAndAudit"\)/,
  );
});

test("the compiler checks inputs, reply types, forward targets, effects and the state type", () => {
  // Compile-time only: these handlers never run.
  valueEntity({
    ...base,
    commands: {
      // @ts-expect-error: Value has no field "nope"
      add: () => ({ nope: 1 }),
      // @ts-expect-error: the state (CounterState) is not the reply type (Value)
      get: (_q, ctx) => ctx.state,
      // @ts-expect-error: forwarding to a method whose reply is an Empty, not a Value
      forwardGet: (q, ctx) => ctx.forward(ValueCounter.method.clear, q),
      clear: (q, ctx) => {
        // @ts-expect-error: a Query has no amounts (the input type is checked)
        ctx.setState(create(CounterStateSchema, { value: q.amounts.length }));
        return {};
      },
      addThenClear: (_c, ctx) => {
        // @ts-expect-error: the state is a CounterState, not a Change
        ctx.setState(create(ChangeSchema));
        // @ts-expect-error: an init shape is not a state message
        ctx.setState({ value: 1 });
        return { value: 0 };
      },
      addAndAudit: (c, ctx) => {
        // @ts-expect-error: the effect's message must be the target's input (Change)
        ctx.effect(Audit.method.record, create(CounterStateSchema));
        ctx.effect(Audit.method.record, c);
        return {};
      },
    },
  });
  const setState = (ctx: ValueEntityCommandContext<CounterState>) => ctx.setState(create(CounterStateSchema, { value: 1 }));
  assert.equal(typeof setState, "function");
});

test("a service with streaming methods is rejected", () => {
  assert.throws(
    () =>
      valueEntity({
        service: Actions,
        persistenceId: "actions",
        state: CounterStateSchema,
        initial: () => create(CounterStateSchema),
        // @ts-expect-error: streaming methods have no value entity handler type
        commands: { unary: empty, streamedIn: empty, streamedOut: empty, streamed: empty, ticks: empty },
      }),
    /StreamedIn is client_streaming; value entities serve unary methods only/,
  );
});

test("persistenceId and passivationTimeoutMs must be sensible", () => {
  assert.throws(() => valueEntity({ ...base, commands, persistenceId: "" }), /persistenceId is required/);
  assert.throws(() => valueEntity({ ...base, commands, passivationTimeoutMs: 0 }), /passivationTimeoutMs/);
  assert.throws(() => valueEntity({ ...base, commands, passivationTimeoutMs: 1.5 }), /passivationTimeoutMs/);
  assert.equal(valueEntity({ ...base, commands }).passivationTimeoutMs, undefined, "the proxy's default");
});

test("ctx.noReply() is an answer; a method of google.protobuf.Any takes an Any and must give one", () => {
  const tally = { service: Tally, persistenceId: "tally", state: CounterStateSchema, initial: () => create(CounterStateSchema) };
  const entity = valueEntity({
    ...tally,
    commands: {
      observe: async (_o, ctx) => ctx.noReply(),
      observeAny: (any, ctx) => (any.typeUrl === "" ? ctx.noReply() : textAny(any.typeUrl)),
      get: (_q, ctx) => (ctx.state.value > 0 ? { value: ctx.state.value } : ctx.noReply()),
    },
  });
  assert.equal(entity.commands.size, 3);
  valueEntity({
    ...tally,
    commands: {
      observe: () => ({ text: "" }),
      // @ts-expect-error: the reply of a method of Any is an Any, not another message
      observeAny: () => create(SummarySchema),
      get: () => ({}),
    },
  });
});
