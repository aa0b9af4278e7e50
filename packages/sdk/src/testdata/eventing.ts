// The SDK tests' eventing subscribers and google.protobuf.Any methods (testdata/proto/sdktest/eventing.proto):
// each handler answers with what it saw (the payload's kind, the CloudEvent), so tests can check both.
import { create } from "@bufbuild/protobuf";
import {
  action,
  bytesAny,
  crdtEntity,
  eventData,
  eventSourced,
  GCounter,
  jsonAny,
  protobufAny,
  textAny,
  valueEntity,
  type Context,
} from "../index.js";
import { Audit } from "./gen/sdktest/counter_pb.js";
import { AddedSchema, CounterStateSchema } from "./gen/sdktest/domain_pb.js";
import { AnyCounter, EventSubscriber, Journal, Tally } from "./gen/sdktest/eventing_pb.js";

/** The CloudEvent of a command in one line ("direct" for a client's call), e.g. "17 counter acct-1 sdktest.domain.Added". */
export function describeEvent(ctx: Context): string {
  const e = ctx.cloudEvent;
  if (!e) return "direct";
  return [e.id, e.source, e.subject ?? "-", e.type, e.contentType ?? "-", e.time?.toISOString() ?? "-"].join(" ");
}

/** The amount in a JSON payload {"amount": n}. */
function jsonAmount(value: unknown): number {
  const amount = (value as { amount?: unknown } | null)?.amount;
  if (typeof amount !== "number") throw new TypeError(`expected {"amount": <number>}, got ${JSON.stringify(value)}`);
  return amount;
}

/**
 * OnAdded summarises an Added (no reply for 0); OnAnything answers each kind of payload with the
 * same kind: protobuf Added → Added doubled, JSON → JSON echo, text → upper case ("fail" fails), bytes → reversed;
 * a protobuf message of an unknown type → no reply.
 */
export function eventSubscriber() {
  return action({
    service: EventSubscriber,
    commands: {
      onAdded: (added, ctx) => (added.amount === 0 ? ctx.noReply() : { text: `+${added.amount} [${describeEvent(ctx)}]` }),
      onAnything(any, ctx) {
        const data = eventData(any, [AddedSchema]);
        switch (data.kind) {
          case "protobuf":
            return data.message ? protobufAny(AddedSchema, { amount: data.message.amount * 2 }) : ctx.noReply();
          case "json":
            return jsonAny("sdktest.Echo", { type: data.typeName, value: data.value, event: describeEvent(ctx) });
          case "text":
            // A subscriber that fails: the proxy's retries and dead letters are tested with it.
            if (data.value === "fail") return ctx.fail("told to fail");
            return textAny(data.value.toUpperCase());
          case "bytes":
            return bytesAny(data.value.slice().reverse());
        }
      },
    },
  });
}

/** A running total of observations; see Tally in eventing.proto. */
export function tallyEntity() {
  return valueEntity({
    service: Tally,
    persistenceId: "tally",
    state: CounterStateSchema,
    initial: () => create(CounterStateSchema),
    commands: {
      observe({ amount }, ctx) {
        ctx.setState(create(CounterStateSchema, { value: ctx.state.value + amount, changes: ctx.state.changes + 1 }));
        if (amount === 0) {
          ctx.effect(Audit.method.record, { counterId: ctx.entityId });
          return ctx.noReply();
        }
        return { text: `${ctx.state.value} [${describeEvent(ctx)}]` };
      },
      observeAny(any, ctx) {
        const data = eventData(any);
        if (data.kind === "text") return ctx.noReply();
        if (data.kind !== "json") return ctx.fail(`cannot observe ${data.kind}`);
        const value = ctx.state.value + jsonAmount(data.value);
        ctx.setState(create(CounterStateSchema, { value, changes: ctx.state.changes + 1 }));
        return jsonAny("sdktest.Total", { total: value });
      },
      get: (_query, ctx) => ({ value: ctx.state.value, changes: ctx.state.changes }),
    },
  });
}

/** Records Added events given as protobuf or JSON; see Journal in eventing.proto. */
export function journalEntity() {
  return eventSourced({
    service: Journal,
    persistenceId: "journal",
    state: CounterStateSchema,
    initial: () => create(CounterStateSchema),
    events: [
      [
        AddedSchema,
        (state, { amount }) => {
          state.value += amount;
          state.changes++;
          return state;
        },
      ],
    ],
    commands: {
      record(any, ctx) {
        const data = eventData(any, [AddedSchema]);
        if (data.kind === "text" && data.value === "skip") {
          ctx.effect(Audit.method.record, { counterId: ctx.entityId });
          return ctx.noReply();
        }
        if (data.kind === "protobuf" && data.typeName === "sdktest.domain.Cleared") return ctx.noReply();
        let amount: number;
        if (data.kind === "protobuf" && data.message) amount = data.message.amount;
        else if (data.kind === "json") amount = jsonAmount(data.value);
        else return ctx.fail(`cannot record ${data.kind === "protobuf" ? data.typeName : data.kind}`);
        ctx.emit(create(AddedSchema, { amount }));
        return jsonAny("sdktest.Recorded", { value: ctx.state.value, subject: ctx.cloudEvent?.subject ?? null });
      },
    },
  });
}

/** A GCounter counted by JSON {"amount": n}; see AnyCounter in eventing.proto. */
export function anyCounterEntity() {
  return crdtEntity({
    service: AnyCounter,
    crdt: () => new GCounter(),
    commands: {
      count(any, ctx) {
        const data = eventData(any);
        if (data.kind !== "json") return ctx.fail(`cannot count ${data.kind}`);
        ctx.state.increment(jsonAmount(data.value));
        return jsonAny("sdktest.Total", { value: ctx.state.value, event: describeEvent(ctx) });
      },
    },
  });
}
