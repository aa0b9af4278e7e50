// The TCK's model user function: every model service, implemented with our SDK.
import type { Entity } from "@cloudstate-ts/sdk";
import { actionModel } from "./action.js";
import { crdtModel } from "./crdt.js";
import { eventingModel } from "./eventing.js";
import { eventSourcedModel } from "./eventsourced.js";
import type { ModelProbe } from "./probe.js";
import { valueEntityModel } from "./valueentity.js";

export { EVENT_SOURCED_PERSISTENCE_IDS, SNAPSHOT_EVERY } from "./eventsourced.js";
export { VALUE_ENTITY_PERSISTENCE_IDS } from "./valueentity.js";
export { EVENTING_PERSISTENCE_IDS, EVENTING_STEP, EVENTING_TOPICS, JSON_ANSWER_TYPE } from "./eventing.js";
export { CRDT_PERSISTENCE_IDS, CRDT_TYPE_NAMES, crdtTypeOf, stateOf, type CrdtTypeName } from "./crdt.js";
export { CONFIGURED_PASSIVATION_MS, MARK } from "./marks.js";
export { ModelProbe, type ModelCall } from "./probe.js";

/** The model's entities and actions; the probe, if given, records what the actions receive. */
export function modelEntities(probe?: ModelProbe): Entity[] {
  return [...eventSourcedModel(), ...valueEntityModel(), ...crdtModel(), ...actionModel(probe), ...eventingModel(probe)];
}
