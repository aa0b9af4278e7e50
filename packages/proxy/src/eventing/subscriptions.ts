// The eventing plan of a user function, read from its methods' `(cloudstate.eventing)` options and
// checked across services (PROTOCOL.md §8): one subscription per (source, consumer group), its
// methods chosen by message type, and the topics its methods publish to.
import { DiscoveryError, type MethodModel, type ServiceModel, type UserFunctionModel } from "../discovery/service-model.js";

export type SourceKind = "topic" | "eventLog";

export interface Subscription {
  readonly kind: SourceKind;
  /** The topic, or the persistence id of the event log. */
  readonly name: string;
  /** "topic:<name>" or "event-log:<persistence id>": how offsets, metrics and the console name it. */
  readonly sourceId: string;
  readonly group: string;
  readonly service: ServiceModel;
  /** The methods taking a message type, by its full name. */
  readonly byType: ReadonlyMap<string, MethodModel>;
  /** The method taking google.protobuf.Any: every message no typed method takes. */
  readonly anyMethod: MethodModel | undefined;
}

export interface EventingPlan {
  readonly subscriptions: readonly Subscription[];
  /** Every topic a method consumes or publishes: the topics the HTTP endpoints serve. */
  readonly topics: ReadonlySet<string>;
}

export function sourceId(kind: SourceKind, name: string): string {
  return kind === "topic" ? `topic:${name}` : `event-log:${name}`;
}

/** Builds the plan; a spec that cannot work is a DiscoveryError naming what to change. */
export function planEventing(model: UserFunctionModel): EventingPlan {
  const eventLogs = new Map<string, ServiceModel>();
  for (const s of model.services.values()) if (s.kind === "eventSourced") eventLogs.set(s.persistenceId, s);
  const subscriptions = new Map<string, Subscription & { byType: Map<string, MethodModel>; anyMethod: MethodModel | undefined }>();
  const topics = new Set<string>();
  for (const service of model.services.values()) {
    for (const method of service.methods.values()) {
      const eventing = method.eventing;
      if (eventing === undefined) continue;
      const where = `${service.name}.${method.name}`;
      if (eventing.out) topics.add(eventing.out.topic);
      const source = eventing.in;
      if (source === undefined) continue;
      if (source.kind === "eventLog" && !eventLogs.has(source.name)) {
        const known = [...eventLogs.keys()].map((k) => `"${k}"`).join(", ") || "none";
        throw new DiscoveryError(
          `${where}: eventing.in.event_log "${source.name}" is not the persistence id of an event-sourced entity of this user function (known: ${known})`,
        );
      }
      if (source.kind === "topic") topics.add(source.name);
      const group = source.consumerGroup || service.name;
      const id = sourceId(source.kind, source.name);
      const key = `${group}\u0000${id}`;
      let sub = subscriptions.get(key);
      if (sub === undefined) {
        sub = { kind: source.kind, name: source.name, sourceId: id, group, service, byType: new Map(), anyMethod: undefined };
        subscriptions.set(key, sub);
      } else if (sub.service !== service) {
        throw new DiscoveryError(
          `consumer group "${group}" of ${id} is used by ${sub.service.name} and ${service.name}; a consumer group belongs to one service (set eventing.in.consumer_group)`,
        );
      }
      if (method.inputIsAny) {
        if (sub.anyMethod !== undefined) {
          throw new DiscoveryError(`${where} and ${service.name}.${sub.anyMethod.name} both take google.protobuf.Any from ${id}: keep one, a message goes to one method`);
        }
        sub.anyMethod = method;
      } else {
        const type = method.desc.input.typeName;
        const other = sub.byType.get(type);
        if (other !== undefined) {
          throw new DiscoveryError(`${where} and ${service.name}.${other.name} both take ${type} from ${id}: keep one, a message goes to one method`);
        }
        sub.byType.set(type, method);
      }
    }
  }
  checkTopicTypes(model, subscriptions.values());
  return { subscriptions: [...subscriptions.values()], topics };
}

/**
 * A topic fed by a method of this user function carries that method's output type: a subscriber
 * with no method for it (and none taking Any) would skip every message, so it is a discovery
 * error. (What an event log or an outside publisher sends cannot be known here: such messages
 * that match no method are skipped at run time, counted and logged.)
 */
function checkTopicTypes(model: UserFunctionModel, subscriptions: Iterable<Subscription>): void {
  for (const sub of subscriptions) {
    if (sub.kind !== "topic" || sub.anyMethod !== undefined) continue;
    for (const service of model.services.values()) {
      for (const method of service.methods.values()) {
        if (method.eventing?.out?.topic !== sub.name || method.outputIsAny) continue;
        const type = method.desc.output.typeName;
        if (!sub.byType.has(type)) {
          const takes = [...sub.byType.keys()].join(", ");
          throw new DiscoveryError(
            `no matching method: ${service.name}.${method.name} publishes ${type} to topic "${sub.name}", but ${sub.service.name} (consumer group "${sub.group}") has no method taking it (it takes ${takes}); add one, or one taking google.protobuf.Any`,
          );
        }
      }
    }
  }
}
