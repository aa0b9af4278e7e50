// The eventing model (proto/cloudstate/tck/model/eventing.proto): EventSourcedEventingSource journals
// the events that EventingTckModel consumes from its event log (replying, forwarding to EventingTwo
// or answering nothing, as each event's value says), and EventingTckModel also answers JSON events
// of a topic with JSON.
import { create } from "@bufbuild/protobuf";
import { action, eventData, eventSourced, jsonAny, valueEntity } from "@cloudstate-ts/sdk";
import {
  EventingTckModel,
  EventingTwo,
  EventSourcedEventingSource,
  EventingEventSchema,
  RecordedSchema,
  SourceStateSchema,
  type EventingEvent,
  type SourceState,
} from "../gen/cloudstate/tck/model/eventing_pb.js";
import type { ModelProbe } from "./probe.js";

export const EVENTING_PERSISTENCE_IDS = {
  source: "eventing-tck-source",
  two: "eventing-tck-two",
} as const;

/** The topics of the eventing model. */
export const EVENTING_TOPICS = {
  /** ConsumeEvent's replies. */
  out: "eventing-tck-out",
  /** What ConsumeJson consumes. */
  json: "eventing-tck-json",
  /** ConsumeJson's replies. */
  jsonOut: "eventing-tck-json-out",
} as const;

/** The JSON type of ConsumeJson's answers. */
export const JSON_ANSWER_TYPE = "cloudstate.tck.model.eventing.JsonAnswer";

/** The steps of ConsumeEvent, as event values. */
export const EVENTING_STEP = {
  reply: (text: string) => `reply:${text}`,
  forward: (id: string) => `forward:${id}`,
  noReply: "noreply",
} as const;

export function eventingModel(probe?: ModelProbe) {
  return [
    eventSourced({
      service: EventSourcedEventingSource,
      persistenceId: EVENTING_PERSISTENCE_IDS.source,
      state: SourceStateSchema,
      initial: () => create(SourceStateSchema),
      events: [
        [
          EventingEventSchema,
          (state: SourceState, _event: EventingEvent) => {
            state.events += 1;
            return state;
          },
        ],
      ],
      commands: {
        emit({ values }, ctx) {
          for (const value of values) ctx.emit(create(EventingEventSchema, { value }));
          return { events: ctx.state.events };
        },
      },
    }),
    action({
      service: EventingTckModel,
      commands: {
        consumeEvent({ value }, ctx) {
          probe?.record({ service: EventingTckModel.typeName, method: ctx.commandName, id: value, metadata: [...ctx.metadata] });
          if (value.startsWith("reply:")) return { message: value.slice("reply:".length) };
          if (value.startsWith("forward:")) return ctx.forward(EventingTwo.method.record, { id: value.slice("forward:".length), value: ctx.cloudEvent?.subject ?? "" });
          if (value === EVENTING_STEP.noReply) return ctx.noReply();
          return ctx.fail(`unknown step: ${value}`);
        },
        consumeJson(any, ctx) {
          probe?.record({ service: EventingTckModel.typeName, method: ctx.commandName, metadata: [...ctx.metadata] });
          if (!any.typeUrl.startsWith("json.cloudstate.io/")) return ctx.noReply();
          const data = eventData(any);
          if (data.kind !== "json") return ctx.noReply();
          return jsonAny(JSON_ANSWER_TYPE, { type: data.typeName, id: ctx.cloudEvent?.id ?? "", received: data.value });
        },
      },
    }),
    valueEntity({
      service: EventingTwo,
      persistenceId: EVENTING_PERSISTENCE_IDS.two,
      state: RecordedSchema,
      initial: () => create(RecordedSchema),
      commands: {
        record({ value }, ctx) {
          if (value !== "") ctx.setState(create(RecordedSchema, { values: [...ctx.state.values, value] }));
          return { message: ctx.state.values.join(",") };
        },
      },
    }),
  ];
}
