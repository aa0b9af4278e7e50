// Eventing in one proxy (PROTOCOL.md §8): a consumer per subscription, delivering through the
// dispatcher like any command; the publisher of methods' replies to their eventing.out topic;
// topic retention; and what the HTTP endpoints, the console and the metrics read.
import { randomUUID } from "node:crypto";
import { fromBinary } from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import type { MethodModel, ServiceModel, UserFunctionModel } from "../discovery/service-model.js";
import type { Dispatcher, PublishCause, Reply } from "../effects/dispatcher.js";
import type { Store, TopicPublish } from "../store/store.js";
import { Code, ProxyError } from "../errors.js";
import type { Logger } from "../telemetry/logger.js";
import type { ProxyMetrics } from "../telemetry/metrics.js";
import { cloudEventMetadata, dataOfAny, protobufFromJson, TypeUrls, type AnyPayload } from "./cloudevents.js";
import { Consumer, PoisonMessageError, type ConsumerSettings, type ConsumerStatus } from "./consumer.js";
import { eventLogSource, StoreBroker, topicSource, type Broker, type MessageSource, type SourceMessage } from "./sources.js";
import type { EventingPlan, Subscription } from "./subscriptions.js";

const ANY_TYPE_URL = "type.googleapis.com/google.protobuf.Any";

export interface EventingSettings extends ConsumerSettings {
  /** Topic messages older than this are deleted; 0 keeps them forever. */
  readonly topicRetentionMs: number;
}

export interface EventingOptions {
  readonly model: UserFunctionModel;
  readonly plan: EventingPlan;
  readonly store: Store;
  /** Where topics live; default: the store (StoreBroker). */
  readonly broker?: Broker | undefined;
  readonly dispatcher: Dispatcher;
  readonly settings: EventingSettings;
  /** This proxy's name in consumer leases. */
  readonly owner: string;
  readonly log: Logger;
  readonly metrics?: ProxyMetrics | undefined;
}

/** Where a message goes: the method, and the payload as that method takes it. */
interface Route {
  readonly method: MethodModel;
  readonly payload: Uint8Array;
  readonly typeUrl: string | undefined;
}

/** A consumer as the console and the lag metric see it: its status and its source's head. */
export interface ConsumerReport extends ConsumerStatus {
  readonly service: string;
  /** The source's highest offset (the consumer's own read offset when the source cannot say). */
  readonly head: number;
}

export class Eventing {
  readonly broker: Broker;
  private readonly consumers: { consumer: Consumer; source: MessageSource; subscription: Subscription }[] = [];
  private retentionTimer: NodeJS.Timeout | undefined;
  /** Types already reported as unmatched, so the log says it once per (group, source, type). */
  private readonly unmatchedSeen = new Set<string>();

  constructor(private readonly o: EventingOptions) {
    this.broker = o.broker ?? new StoreBroker(o.store);
    for (const subscription of o.plan.subscriptions) {
      const source = subscription.kind === "eventLog" ? eventLogSource(o.store, subscription.name) : topicSource(this.broker, subscription.name);
      const offsets = subscription.kind === "eventLog" ? o.store.offsets : this.broker.offsets;
      const log = o.log.child({ group: subscription.group, source: source.id });
      const consumer = new Consumer(
        subscription.group,
        source,
        o.owner,
        offsets,
        o.store.deadLetters,
        (message, signal, committed) => this.deliver(subscription, message, signal, committed),
        o.settings,
        log,
        { onOutcome: (outcome) => o.metrics?.eventingOutcome(subscription.group, source.id, outcome) },
      );
      this.consumers.push({ consumer, source, subscription });
    }
    o.dispatcher.publisher = (service, method, reply, cause) => this.publishReply(service, method, reply, cause);
    o.metrics?.watchEventingLag(() => this.lag());
  }

  /** The topics the HTTP endpoints serve: those the user function's methods consume or publish. */
  get topics(): ReadonlySet<string> {
    return this.o.plan.topics;
  }

  start(): void {
    for (const { consumer } of this.consumers) consumer.start();
    const retention = this.o.settings.topicRetentionMs;
    if (retention > 0) {
      const trim = () =>
        void this.broker.trim(Date.now() - retention).then(
          (n) => n > 0 && this.o.log.debug({ messages: n }, "topic retention deleted old messages"),
          (e: Error) => this.o.log.warn({ err: e.message }, "topic retention failed; will retry"),
        );
      // Often enough that a topic holds little more than its retention, rarely enough to cost nothing.
      this.retentionTimer = setInterval(trim, Math.min(60_000, Math.max(1_000, retention / 10)));
      this.retentionTimer.unref();
      trim();
    }
  }

  report(): Promise<ConsumerReport[]> {
    return Promise.all(
      this.consumers.map(async ({ consumer, source, subscription }) => {
        const status = consumer.status();
        const head = await source.head().catch(() => status.read);
        return { ...status, service: subscription.service.name, head };
      }),
    );
  }

  /** Publishes messages to a topic (the HTTP endpoint); resolves with their offsets. */
  async publish(messages: readonly TopicPublish[]): Promise<number[]> {
    const offsets = await this.broker.publish(messages);
    for (const m of messages) this.o.metrics?.topicPublished(m.topic);
    return offsets;
  }

  async stop(graceMs: number): Promise<void> {
    clearInterval(this.retentionTimer);
    this.o.dispatcher.publisher = undefined;
    await Promise.all(this.consumers.map(({ consumer }) => consumer.stop(graceMs)));
  }

  private async lag(): Promise<{ group: string; source: string; lag: number }[]> {
    return (await this.report()).filter((c) => c.active).map((c) => ({ group: c.group, source: c.source, lag: Math.max(0, c.head - c.committed) }));
  }

  private async deliver(subscription: Subscription, message: SourceMessage, signal: AbortSignal, committed: number): Promise<"delivered" | "unmatched"> {
    const route = this.route(subscription, message);
    if (route === undefined) {
      const seen = `${subscription.group}\u0000${subscription.sourceId}\u0000${message.payload.typeUrl}`;
      if (!this.unmatchedSeen.has(seen)) {
        this.unmatchedSeen.add(seen);
        this.o.log.warn(
          { group: subscription.group, source: subscription.sourceId, type: message.payload.typeUrl },
          `no method of ${subscription.service.name} takes ${message.payload.typeUrl} from ${subscription.sourceId}: such messages are skipped (add a method taking that type, or one taking google.protobuf.Any)`,
        );
      }
      return "unmatched";
    }
    try {
      await this.o.dispatcher.deliver(
        {
          service: subscription.service,
          method: route.method,
          payload: route.payload,
          typeUrl: route.typeUrl,
          subject: message.subject,
          metadata: cloudEventMetadata(message, committed),
          signal,
        },
        `${subscription.group}:${subscription.sourceId}:${message.id}`,
      );
    } catch (e) {
      // A message that cannot address an entity (no key value, no subject) never will: no retries.
      if (e instanceof ProxyError && e.code === Code.INVALID_ARGUMENT) throw new PoisonMessageError(e.message);
      throw e;
    }
    return "delivered";
  }

  /** By the message's type: the method taking it, else the one taking Any, else none (PROTOCOL.md §8). */
  private route(subscription: Subscription, message: SourceMessage): Route | undefined {
    const { typeUrl, value } = message.payload;
    if (typeUrl.startsWith(TypeUrls.json)) {
      const typed = subscription.byType.get(typeUrl.slice(TypeUrls.json.length));
      if (typed !== undefined) {
        // JSON from outside for a typed method: transcoded with the user's own descriptors.
        try {
          return { method: typed, payload: protobufFromJson(this.o.model.registry, typed.desc.input.typeName, message.data), typeUrl: undefined };
        } catch (e) {
          throw new PoisonMessageError(`the JSON data does not fit ${typed.desc.input.typeName}: ${(e as Error).message}`);
        }
      }
    } else if (typeUrl !== TypeUrls.string && typeUrl !== TypeUrls.bytes) {
      const typed = subscription.byType.get(typeUrl.slice(typeUrl.lastIndexOf("/") + 1));
      if (typed !== undefined) return { method: typed, payload: value, typeUrl: undefined };
    }
    const anyMethod = subscription.anyMethod;
    return anyMethod === undefined ? undefined : { method: anyMethod, payload: value, typeUrl };
  }

  /** A reply of a method with an eventing.out topic, as a CloudEvent in that topic. */
  private async publishReply(service: ServiceModel, method: MethodModel, reply: Reply, cause: PublishCause): Promise<void> {
    const topic = method.eventing?.out?.topic;
    if (topic === undefined) return;
    // The type of what was answered: after a forward, the target's output type.
    const typeUrl = reply.typeUrl ?? method.outputTypeUrl;
    const any: AnyPayload = reply.any ?? (typeUrl === ANY_TYPE_URL ? fromBinary(AnySchema, reply.payload) : { typeUrl, value: reply.payload });
    const { type, contentType, data } = dataOfAny(any);
    try {
      await this.publish([
        {
          topic,
          // From a delivery, the id is derived from the consumed message: a redelivery after a crash
          // publishes the same (topic, source, id), which the broker stores once.
          id: cause.kind === "delivery" ? cause.messageKey : randomUUID(),
          source: service.name,
          type,
          subject: cause.kind === "call" ? cause.entityId : cause.delivery.subject,
          contentType,
          time: Date.now(),
          data,
        },
      ]);
    } catch (e) {
      // The command's state change stands; its reply is not published. A delivery is retried (and
      // publishes the same message id again); a client learns it should retry.
      throw new ProxyError(Code.UNAVAILABLE, `the reply of ${service.name}.${method.name} could not be published to topic "${topic}": ${(e as Error).message}`, { cause: e });
    }
  }
}
