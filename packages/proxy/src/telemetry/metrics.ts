// Prometheus metrics of one proxy, in a registry of its own (not prom-client's global one), so two
// proxies in one process (tests, embedding) never mix their numbers. Commands are recorded once per
// client call by the dispatcher, store batches once per committed batch (the store's onCommit
// observer); entity counts and store totals are read when /metrics is scraped.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { MethodModel, ServiceModel } from "../discovery/service-model.js";
import type { EntityService } from "../entities/command.js";
import type { CommittedBatch, StoreStats } from "../store/store.js";

type CommandLabels = "service" | "method" | "code";

/** Seconds: from 0.5 ms (an in-memory command) to 10 s (a slow user function or store). */
const DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Writes per committed batch: 1 for the memory store, up to the stores' maxBatchSize (512 by default). */
const BATCH_SIZE_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];

/** Seconds per commit: from 0.1 ms (SQLite without fsync) to 5 s (the PostgreSQL statement timeout). */
const COMMIT_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/** The per-method children, looked up once: the hot path does no label hashing on success. */
interface MethodMetrics {
  readonly ok: Counter.Internal;
  readonly duration: Histogram.Internal<"service" | "method">;
  readonly labels: { readonly service: string; readonly method: string };
}

export interface MetricsSources {
  /** The hosts by service name, for active entities. */
  readonly handlers: ReadonlyMap<string, EntityService>;
  /** Each service's state model (`eventSourced`, `value`, `crdt`, `action`). */
  readonly kindOf: (serviceName: string) => string;
  readonly storeStats: () => StoreStats;
}

export class ProxyMetrics {
  readonly registry = new Registry();
  private readonly commands: Counter<CommandLabels>;
  private readonly duration: Histogram<"service" | "method">;
  private readonly restarts: Counter<"service">;
  private readonly batchSize: Histogram;
  private readonly commitDuration: Histogram;
  private readonly perMethod = new WeakMap<MethodModel, MethodMetrics>();
  private readonly eventingMessages: Counter<"group" | "source" | "outcome">;
  private readonly deadLetters: Counter<"group" | "source">;
  private readonly published: Counter<"topic">;
  private eventingLag: (() => Promise<readonly { group: string; source: string; lag: number }[]>) | undefined;

  constructor(sources: MetricsSources) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.commands = new Counter({
      name: "cloudstate_commands_total",
      help: "Client commands (unary calls over gRPC and HTTP/JSON), by service, method and gRPC status code name",
      labelNames: ["service", "method", "code"],
      registers,
    });
    this.duration = new Histogram({
      name: "cloudstate_command_duration_seconds",
      help: "Time from a client command reaching the dispatcher to its reply (effects and forwards included)",
      labelNames: ["service", "method"],
      buckets: DURATION_BUCKETS,
      registers,
    });
    new Gauge({
      name: "cloudstate_active_entities",
      help: "Entities with an open stream to the user function (actions: calls in flight), by service and state model",
      labelNames: ["service", "kind"],
      registers,
      collect() {
        for (const [service, handler] of sources.handlers) this.set({ service, kind: sources.kindOf(service) }, handler.activeEntities());
      },
    });
    new Counter({
      name: "cloudstate_store_batches_total",
      help: "Batches (transactions) the store committed; writes/batches is the mean batch size",
      registers,
      collect() {
        this.reset();
        this.inc(sources.storeStats().batches);
      },
    });
    new Counter({
      name: "cloudstate_store_writes_total",
      help: "Writes (journal appends and value writes) carried by the committed batches",
      registers,
      collect() {
        this.reset();
        this.inc(sources.storeStats().writes);
      },
    });
    this.batchSize = new Histogram({
      name: "cloudstate_store_batch_size",
      help: "Writes (journal appends and value writes) per batch (transaction) the store committed",
      buckets: BATCH_SIZE_BUCKETS,
      registers,
    });
    this.commitDuration = new Histogram({
      name: "cloudstate_store_commit_duration_seconds",
      help: "Time one batch's transaction took, from its start to its durable commit (queueing not included)",
      buckets: COMMIT_BUCKETS,
      registers,
    });
    this.restarts = new Counter({
      name: "cloudstate_entity_restarts_total",
      help: "Entity streams to the user function restarted after a failure, by service",
      labelNames: ["service"],
      registers,
    });
    this.eventingMessages = new Counter({
      name: "cloudstate_eventing_messages_total",
      help: "Eventing messages by consumer group, source and outcome: delivered, unmatched (no method takes its type), dead_letter, retry (a failed attempt)",
      labelNames: ["group", "source", "outcome"],
      registers,
    });
    this.deadLetters = new Counter({
      name: "cloudstate_eventing_dead_letters_total",
      help: "Messages set aside as dead letters after their last failed attempt, by consumer group and source",
      labelNames: ["group", "source"],
      registers,
    });
    this.published = new Counter({
      name: "cloudstate_eventing_published_total",
      help: "Messages published to topics (method replies with eventing.out and HTTP publishes), by topic",
      labelNames: ["topic"],
      registers,
    });
    const lagOf = () => this.eventingLag;
    new Gauge({
      name: "cloudstate_eventing_lag",
      help: "Offsets between a consumer group's committed position and the head of its source (0 = caught up), for the groups this proxy consumes",
      labelNames: ["group", "source"],
      registers,
      async collect() {
        this.reset();
        for (const { group, source, lag } of (await lagOf()?.()) ?? []) this.set({ group, source }, lag);
      },
    });
  }

  /** One eventing message finished (or one attempt failed: "retry"). */
  eventingOutcome(group: string, source: string, outcome: "delivered" | "unmatched" | "dead-letter" | "retry"): void {
    this.eventingMessages.inc({ group, source, outcome: outcome.replace("-", "_") });
    if (outcome === "dead-letter") this.deadLetters.inc({ group, source });
  }

  topicPublished(topic: string, count = 1): void {
    this.published.inc({ topic }, count);
  }

  /** Where the lag gauge reads from, when scraped. */
  watchEventingLag(read: () => Promise<readonly { group: string; source: string; lag: number }[]>): void {
    this.eventingLag = read;
  }

  /** A command's end: `startNs` from `process.hrtime.bigint()` at its start; `code` a status code name. */
  commandDone(service: ServiceModel, method: MethodModel, code: string, startNs: bigint): void {
    const m = this.forMethod(service, method);
    m.duration.observe(Number(process.hrtime.bigint() - startNs) / 1e9);
    if (code === "OK") m.ok.inc();
    else this.commands.inc({ ...m.labels, code });
  }

  /** A store's commit listener (Store.onCommit): called once per committed batch, never per write. */
  readonly storeCommitted = (batch: CommittedBatch): void => {
    this.batchSize.observe(batch.writes);
    this.commitDuration.observe(batch.seconds);
  };

  entityRestarted(serviceName: string): void {
    this.restarts.inc({ service: serviceName });
  }

  /** The text exposition format, and its content type. */
  async render(): Promise<{ body: string; contentType: string }> {
    return { body: await this.registry.metrics(), contentType: this.registry.contentType };
  }

  private forMethod(service: ServiceModel, method: MethodModel): MethodMetrics {
    let m = this.perMethod.get(method);
    if (m === undefined) {
      const labels = { service: service.name, method: method.name };
      m = { ok: this.commands.labels({ ...labels, code: "OK" }), duration: this.duration.labels(labels), labels };
      this.perMethod.set(method, m);
    }
    return m;
  }
}
