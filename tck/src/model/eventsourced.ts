// The event-sourced model (proto/cloudstate/tck/model/eventsourced.proto): three entity types that
// run a request's actions — emit, forward, effect, fail — and answer with their state.
import { create } from "@bufbuild/protobuf";
import { eventSourced, type EventSourcedCommandContext, type Forward, type Reply } from "@cloudstate-ts/sdk";
import {
  EventSourcedConfigured,
  EventSourcedTckModel,
  EventSourcedTwo,
  PersistedSchema,
  type Persisted,
  type Request,
  type ResponseSchema,
} from "../gen/cloudstate/tck/model/eventsourced_pb.js";
import { CONFIGURED_PASSIVATION_MS, MARK } from "./marks.js";

export const EVENT_SOURCED_PERSISTENCE_IDS = {
  model: "event-sourced-tck-model",
  two: "event-sourced-tck-model-2",
  configured: "event-sourced-configured",
} as const;

/** The model snapshots whenever the event sequence crosses a multiple of this. */
export const SNAPSHOT_EVERY = 5;

/** Runs the actions in order; answers with the state after them, or with the last forward. */
function process(request: Request, ctx: EventSourcedCommandContext<Persisted, Persisted>): Reply<typeof ResponseSchema> {
  let forward: Forward<typeof ResponseSchema> | undefined;
  for (const { action } of request.actions) {
    switch (action.case) {
      case "emit":
        ctx.emit(create(PersistedSchema, { value: action.value.value }));
        break;
      case "forward":
        forward = ctx.forward(EventSourcedTwo.method.call, { id: action.value.id, actions: [emit(MARK.forward)] });
        break;
      case "effect": {
        const { id, synchronous } = action.value;
        ctx.effect(EventSourcedTwo.method.call, { id, actions: [emit(synchronous ? MARK.syncEffect : MARK.effect)] }, { synchronous });
        break;
      }
      case "fail":
        ctx.fail(action.value.message);
    }
  }
  return forward ?? { message: ctx.state.value };
}

const emit = (value: string) => ({ action: { case: "emit" as const, value: { value } } });

const common = {
  state: PersistedSchema,
  initial: () => create(PersistedSchema),
  snapshotEvery: SNAPSHOT_EVERY,
  events: [
    [
      PersistedSchema,
      (state: Persisted, event: Persisted) => {
        state.value += event.value;
        return state;
      },
    ],
  ],
} as const;

export function eventSourcedModel() {
  return [
    eventSourced({ ...common, service: EventSourcedTckModel, persistenceId: EVENT_SOURCED_PERSISTENCE_IDS.model, commands: { process } }),
    eventSourced({ ...common, service: EventSourcedTwo, persistenceId: EVENT_SOURCED_PERSISTENCE_IDS.two, commands: { call: process } }),
    eventSourced({
      ...common,
      service: EventSourcedConfigured,
      persistenceId: EVENT_SOURCED_PERSISTENCE_IDS.configured,
      passivationTimeoutMs: CONFIGURED_PASSIVATION_MS,
      commands: { call: process },
    }),
  ];
}
