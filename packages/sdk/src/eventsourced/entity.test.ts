// Defining an entity: what the compiler rejects (checked by `tsc`, through the @ts-expect-error
// lines) and what the SDK rejects at run time for JavaScript users and casts.
import assert from "node:assert/strict";
import { test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { EmptySchema } from "@bufbuild/protobuf/wkt";
import { eventSourced, textAny } from "../index.js";
import { Audit, Counter } from "../testdata/gen/sdktest/counter_pb.js";
import { Journal } from "../testdata/gen/sdktest/eventing_pb.js";
import {
  AddedSchema,
  ClearedSchema,
  CounterStateSchema,
  UnhandledSchema,
  type Added,
  type Cleared,
  type CounterState,
} from "../testdata/gen/sdktest/domain_pb.js";
import type { EventSourcedCommandContext } from "./context.js";

const base = {
  service: Counter,
  persistenceId: "counter",
  state: CounterStateSchema,
  initial: () => create(CounterStateSchema),
  events: [[AddedSchema, (s: CounterState) => s]] as const,
};
const value = () => ({ value: 1 });
const empty = () => ({});

test("a complete, well-typed definition is accepted", () => {
  const entity = eventSourced({
    ...base,
    events: [
      [AddedSchema, (s, e) => ((s.value += e.amount), s)],
      [ClearedSchema, (s) => s],
    ],
    commands: {
      add: (_c, ctx) => {
        ctx.emit(create(AddedSchema, { amount: 1 }));
        ctx.emit(create(ClearedSchema));
        return { value: ctx.state.value };
      },
      clear: async () => create(EmptySchema),
      get: value,
      forwardGet: (q, ctx) => ctx.forward(Counter.method.get, q),
      addAndAudit: (c, ctx) => (ctx.effect(Audit.method.record, c), {}),
    },
  });
  assert.equal(entity.service, Counter);
  assert.deepEqual(
    entity.files.map((f) => f.proto.name),
    ["sdktest/counter.proto", "sdktest/domain.proto"],
  );
});

test("a command name the service does not have is rejected", () => {
  assert.throws(
    () =>
      eventSourced({
        ...base,
        commands: {
          add: value,
          clear: empty,
          get: value,
          forwardGet: value,
          addAndAudit: empty,
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
      eventSourced({
        ...base,
        // @ts-expect-error: addAndAudit is missing
        commands: { add: value, clear: empty, get: value, forwardGet: value },
      }),
    /no command handler for AddAndAudit \(key "addAndAudit"\)/,
  );
});

test("the compiler checks reply types, forward targets and emitted events", () => {
  // Compile-time only: these handlers never run.
  eventSourced({
    ...base,
    commands: {
      // @ts-expect-error: Value has no field "nope"
      add: () => ({ nope: 1 }),
      // @ts-expect-error: the state (CounterState) is not the reply type (Value)
      get: (_q, ctx) => ctx.state,
      // @ts-expect-error: forwarding to a method whose reply is an Empty, not a Value
      forwardGet: (q, ctx) => ctx.forward(Counter.method.clear, q),
      clear: (_q, ctx) => {
        // @ts-expect-error: Cleared has no handler in `base`
        ctx.emit(create(ClearedSchema));
        return {};
      },
      addAndAudit: (c, ctx) => {
        // @ts-expect-error: the effect's message must be the target's input (Change)
        ctx.effect(Audit.method.record, create(AddedSchema));
        ctx.emit(create(AddedSchema, { amount: c.amounts[0] }));
        return {};
      },
    },
  });
  eventSourced({
    ...base,
    // @ts-expect-error: the handler of Added must take an Added
    events: [[AddedSchema, (s: CounterState, _e: Cleared) => s]],
    commands: { add: value, clear: empty, get: value, forwardGet: value, addAndAudit: empty },
  });
});

test("two handlers for one event type are rejected", () => {
  assert.throws(
    () =>
      eventSourced({
        ...base,
        events: [
          [AddedSchema, (s) => s],
          [AddedSchema, (s) => s],
        ],
        commands: { add: value, clear: empty, get: value, forwardGet: value, addAndAudit: empty },
      }),
    /two handlers for event sdktest\.domain\.Added/,
  );
});

test("snapshotEvery and passivationTimeoutMs must be sensible", () => {
  const commands = { add: value, clear: empty, get: value, forwardGet: value, addAndAudit: empty };
  assert.throws(() => eventSourced({ ...base, commands, snapshotEvery: -1 }), /snapshotEvery/);
  assert.throws(() => eventSourced({ ...base, commands, snapshotEvery: 2.5 }), /snapshotEvery/);
  assert.throws(() => eventSourced({ ...base, commands, passivationTimeoutMs: 0 }), /passivationTimeoutMs/);
  assert.equal(eventSourced({ ...base, commands }).snapshotEvery, 100, "the default");
  assert.equal(eventSourced({ ...base, commands, snapshotEvery: 0 }).snapshotEvery, 0, "0 = never");
});

test("ctx.emit takes only the event types that have a handler", () => {
  // See handler.test.ts for the runtime failure behind a cast; here only the type.
  const emitAdded = (ctx: EventSourcedCommandContext<CounterState, Added>) => {
    // @ts-expect-error: Unhandled is not among the events
    ctx.emit(create(UnhandledSchema));
    // @ts-expect-error: an init shape is not enough: the event's type must be known at run time
    ctx.emit({ amount: 1 });
    ctx.emit(create(AddedSchema));
  };
  assert.equal(typeof emitAdded, "function");
});

test("ctx.noReply() is an answer; a method of google.protobuf.Any takes an Any and must give one", () => {
  const journal = { ...base, service: Journal, persistenceId: "journal" };
  const entity = eventSourced({
    ...journal,
    commands: {
      record: async (any, ctx) => (any.typeUrl === "" ? ctx.noReply() : textAny(any.typeUrl)),
    },
  });
  assert.equal(entity.commands.size, 1);
  eventSourced({
    ...base,
    commands: { add: (_c, ctx) => ctx.noReply(), clear: empty, get: value, forwardGet: value, addAndAudit: empty },
  });
  eventSourced({
    ...journal,
    commands: {
      // @ts-expect-error: the reply of a method of Any is an Any, not another message
      record: () => create(AddedSchema),
    },
  });
});
