// The value entity model (proto/cloudstate/tck/model/valueentity.proto): three entity types that run
// a request's actions — update, delete, forward, effect, fail — and answer with their state.
import { create } from "@bufbuild/protobuf";
import { valueEntity, type Forward, type Reply, type ValueEntityCommandContext } from "@cloudstate-ts/sdk";
import {
  PersistedSchema,
  ValueEntityConfigured,
  ValueEntityTckModel,
  ValueEntityTwo,
  type Persisted,
  type Request,
  type ResponseSchema,
} from "../gen/cloudstate/tck/model/valueentity_pb.js";
import { CONFIGURED_PASSIVATION_MS, MARK } from "./marks.js";

export const VALUE_ENTITY_PERSISTENCE_IDS = {
  model: "value-entity-tck-model",
  two: "value-entity-tck-model-2",
  configured: "value-entity-configured",
} as const;

/** Runs the actions in order; answers with the state after them, or with the last forward. */
function process(request: Request, ctx: ValueEntityCommandContext<Persisted>): Reply<typeof ResponseSchema> {
  let forward: Forward<typeof ResponseSchema> | undefined;
  for (const { action } of request.actions) {
    switch (action.case) {
      case "update":
        ctx.setState(create(PersistedSchema, { value: action.value.value }));
        break;
      case "delete":
        ctx.deleteState();
        break;
      case "forward":
        forward = ctx.forward(ValueEntityTwo.method.call, { id: action.value.id, actions: [update(MARK.forward)] });
        break;
      case "effect": {
        const { id, synchronous } = action.value;
        ctx.effect(ValueEntityTwo.method.call, { id, actions: [update(synchronous ? MARK.syncEffect : MARK.effect)] }, { synchronous });
        break;
      }
      case "fail":
        ctx.fail(action.value.message);
    }
  }
  return forward ?? { message: ctx.state.value };
}

const update = (value: string) => ({ action: { case: "update" as const, value: { value } } });

const common = { state: PersistedSchema, initial: () => create(PersistedSchema) } as const;

export function valueEntityModel() {
  return [
    valueEntity({ ...common, service: ValueEntityTckModel, persistenceId: VALUE_ENTITY_PERSISTENCE_IDS.model, commands: { process } }),
    valueEntity({ ...common, service: ValueEntityTwo, persistenceId: VALUE_ENTITY_PERSISTENCE_IDS.two, commands: { call: process } }),
    valueEntity({
      ...common,
      service: ValueEntityConfigured,
      persistenceId: VALUE_ENTITY_PERSISTENCE_IDS.configured,
      passivationTimeoutMs: CONFIGURED_PASSIVATION_MS,
      commands: { call: process },
    }),
  ];
}
