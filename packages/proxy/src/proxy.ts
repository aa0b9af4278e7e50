// The proxy: discovery, then the ingress serving every user service through its state model's host,
// with the store behind them. Data flows one way: ingress → dispatcher → entity → user function →
// store → effects → reply.

import type { ProxyConfig } from "./config.js";
import { Code, ProxyError } from "./errors.js";
import { discover } from "./discovery/discover.js";
import { DiscoveryError, type EntityKind, type ServiceModel, type UserFunctionModel } from "./discovery/service-model.js";
import { Dispatcher } from "./effects/dispatcher.js";
import type { EntityService } from "./entities/command.js";
import { ActionService } from "./entities/action/action-service.js";
import { newNodeId, singleNode } from "./entities/crdt/crdt.js";
import { CrdtService } from "./entities/crdt/crdt-service.js";
import { EventSourcedEntity } from "./entities/eventsourced/eventsourced-entity.js";
import { KeyedService } from "./entities/keyed-service.js";
import { ValueEntity } from "./entities/value/value-entity.js";
import { addUserServices } from "./ingress/grpc-services.js";
import { addGrpcTooling } from "./ingress/grpc-tooling.js";
import { Ingress } from "./ingress/ingress.js";
import { HttpHandler } from "./ingress/http/http-handler.js";
import { BrowserHandler } from "./ingress/grpc-web/grpc-web-handler.js";
import { buildRoutes, type RouteTable } from "./ingress/http/routes.js";
import { openStore } from "./store/open-store.js";
import type { Store } from "./store/store.js";
import { silentLogger, type Logger } from "./telemetry/logger.js";
import { ProxyMetrics } from "./telemetry/metrics.js";
import { startMetricsServer } from "./telemetry/metrics-server.js";
import { UserFunctionConnection } from "./user-function/connection.js";
import { AdminApi, CallStats, observeCalls } from "./console/admin-api.js";
import { ConsoleHandler } from "./console/console-handler.js";
import { Eventing } from "./eventing/eventing.js";
import { checkRoutesClear, EventingEndpoints } from "./eventing/http-endpoints.js";
import { planEventing, type EventingPlan } from "./eventing/subscriptions.js";
import type { Broker } from "./eventing/sources.js";
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";

export const PROXY_NAME = "cloudstate-ts-proxy";
export const PROXY_VERSION = "0.1.0";

/** The state models this proxy serves; discovery rejects the others with a clear message. */
export const SUPPORTED_KINDS: readonly EntityKind[] = ["eventSourced", "value", "crdt", "action"];

export interface RunningProxy {
  readonly port: number;
  /** Where GET /metrics is served; undefined when metrics are off. */
  readonly metricsPort: number | undefined;
  readonly model: UserFunctionModel;
  readonly store: Store;
  /** Human-readable lines: each service with its entity type and persistence id, and where to call it. */
  summary(): string[];
  activeEntities(): number;
  /** Graceful: stop accepting, finish in-flight commands, close entity streams, flush the store. */
  stop(): Promise<void>;
}

export interface StartOptions {
  readonly log?: Logger;
  readonly signal?: AbortSignal;
  /** Discovery backoff bounds (tests shorten them). */
  readonly discoveryBackoffMs?: { min: number; max: number };
  /**
   * Where topics live (eventing/sources.ts Broker): default, logs in the proxy's store. An adapter
   * for another broker (NATS JetStream, Kafka, …) is passed here; nothing else changes.
   */
  readonly broker?: Broker;
}

export async function startProxy(config: ProxyConfig, options: StartOptions = {}): Promise<RunningProxy> {
  const log = options.log ?? silentLogger;
  // The message-size limit is for clients; the user function's messages wrap a client's payload
  // (and discovery carries whole descriptor sets), so its link gets generous headroom.
  const connection = new UserFunctionConnection(
    { host: config.userFunctionHost, port: config.userFunctionPort },
    Math.max(64 * 1024 * 1024, 2 * config.maxMessageBytes),
  );
  let store: Store | undefined;
  try {
    const model = await discover(
      connection,
      {
        proxyName: PROXY_NAME,
        proxyVersion: PROXY_VERSION,
        supportedKinds: SUPPORTED_KINDS,
        defaultPassivationTimeoutMs: config.passivationTimeoutMs,
        checkProtocolVersion: config.checkProtocolVersion,
        signal: options.signal,
        minBackoffMs: options.discoveryBackoffMs?.min,
        maxBackoffMs: options.discoveryBackoffMs?.max,
      },
      log.child({ component: "discovery" }),
    );
    let routes: RouteTable;
    let plan: EventingPlan;
    try {
      routes = buildRoutes(model.services.values());
      plan = planEventing(model);
      checkRoutesClear(routes, plan);
    } catch (e) {
      // google.api.http rules and eventing options are part of the spec: reported to the user
      // function like discovery's errors.
      if (e instanceof DiscoveryError) await connection.reportError(e.message).catch(() => undefined);
      throw e;
    }
    store = await openStore(config.store, { dataDir: config.dataDir, durability: config.durability });
    const activeStore = store;

    const reportError = (message: string) => {
      log.error({ component: "protocol" }, message);
      connection.reportError(message).catch(() => undefined);
    };
    // This process's replica of CRDT entities (a single node: it alone is live).
    const replica = singleNode(newNodeId());
    const handlers = new Map<string, EntityService>();
    // Off (-1): no registry at all, and nothing recorded on the hot path.
    const metrics = config.metricsPort < 0
      ? undefined
      : new ProxyMetrics({ handlers, kindOf: (name) => model.services.get(name)?.kind ?? "unknown", storeStats: () => activeStore.stats() });
    // Batch sizes and commit latency: one observation per committed batch.
    if (metrics) activeStore.onCommit(metrics.storeCommitted);
    for (const service of model.services.values()) {
      handlers.set(service.name, hostFor(service));
    }
    function hostFor(service: ServiceModel): EntityService {
      const keyed = (entityId: string, release: () => void) => ({
        serviceName: service.name,
        persistenceId: service.persistenceId,
        entityId,
        passivationTimeoutMs: service.passivationTimeoutMs,
        commandTimeoutMs: config.commandTimeoutMs,
        connection,
        log: log.child({ component: service.kind, service: service.name }),
        release,
        reportError,
        onRestart: () => {
          metrics?.entityRestarted(service.name);
          log.debug({ service: service.name, entityId }, "entity restarted");
        },
      });
      switch (service.kind) {
        case "action":
          return new ActionService({ service, connection, commandTimeoutMs: config.commandTimeoutMs });
        case "eventSourced":
          return new KeyedService((id, release) => new EventSourcedEntity({ ...keyed(id, release), journal: activeStore.journal }));
        case "value":
          return new KeyedService((id, release) => new ValueEntity({ ...keyed(id, release), values: activeStore.values }));
        case "crdt":
          return new CrdtService({
            service,
            crdts: activeStore.crdts,
            replica,
            connection,
            commandTimeoutMs: config.commandTimeoutMs,
            log: log.child({ component: "crdt" }),
            reportError,
            // Side effects of cancelled streamed calls; the dispatcher exists by the time any runs.
            runDetached: async (outcome, request) => void (await dispatcher.settle(outcome, request.service, request.method, {})),
            onRestart: (entityId) => {
              metrics?.entityRestarted(service.name);
              log.debug({ service: service.name, entityId }, "entity restarted");
            },
          });
        default:
          // Discovery only lets SUPPORTED_KINDS through.
          throw new Error(`no host for ${service.kind} services`);
      }
    }
    const dispatcher = new Dispatcher(model, handlers, reportError, log.child({ component: "effects" }), metrics);
    const eventingLog = log.child({ component: "eventing" });
    const eventing = plan.subscriptions.length === 0 && plan.topics.size === 0
      ? undefined
      : new Eventing({
          model,
          plan,
          store: activeStore,
          broker: options.broker,
          dispatcher,
          owner: `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`,
          log: eventingLog,
          metrics,
          settings: {
            maxAttempts: config.eventingMaxAttempts,
            backoffMinMs: config.eventingBackoffMinMs,
            backoffMaxMs: config.eventingBackoffMaxMs,
            maxInFlight: config.eventingMaxInFlight,
            batchSize: 256,
            commitIntervalMs: config.eventingCommitIntervalMs,
            pollIntervalMs: config.eventingPollIntervalMs,
            leaseTtlMs: config.eventingLeaseMs,
            topicRetentionMs: config.topicRetentionMs,
          },
        });
    const eventingEndpoints = eventing === undefined || plan.topics.size === 0
      ? undefined
      : new EventingEndpoints({
          eventing,
          registry: model.registry,
          maxBodyBytes: config.maxMessageBytes,
          token: config.eventingToken,
          log: eventingLog,
          pollIntervalMs: config.eventingPollIntervalMs,
        });
    let consoleHandler: ConsoleHandler | undefined;
    if (config.console) {
      const stats = new CallStats();
      observeCalls(dispatcher, stats);
      const api = new AdminApi({ model, store: activeStore, dispatcher, handlers, stats, eventing });
      consoleHandler = new ConsoleHandler({ api, token: config.consoleToken, maxBodyBytes: config.maxMessageBytes });
    }
    let ready = false;
    const ingress = new Ingress({
      host: config.host,
      port: config.port,
      maxMessageBytes: config.maxMessageBytes,
      log: log.child({ component: "ingress" }),
      isReady: () => ready,
      console: consoleHandler,
      eventing: eventingEndpoints,
      // gRPC-web and Connect for browsers (with CORS), then HTTP/JSON transcoding.
      http: new BrowserHandler({
        services: model.services.values(),
        registry: model.registry,
        dispatcher,
        handlers,
        maxMessageBytes: config.maxMessageBytes,
        corsOrigins: config.corsOrigins,
        log: log.child({ component: "grpc-web" }),
        fallback: new HttpHandler({
          routes,
          registry: model.registry,
          dispatcher,
          handlers,
          maxMessageBytes: config.maxMessageBytes,
          log: log.child({ component: "http" }),
        }),
      }),
    });
    addUserServices(ingress.grpcServer, model.services.values(), dispatcher, handlers, log.child({ component: "ingress" }));
    // gRPC server reflection and grpc.health.v1.Health (PROTOCOL.md §7).
    const health = addGrpcTooling(ingress.grpcServer, model, () => ready);
    const metricsLog = log.child({ component: "metrics" });
    const metricsServer = metrics && (await startMetricsServer(metrics, config.host, config.metricsPort, metricsLog));
    let port: number;
    try {
      port = await ingress.listen();
    } catch (e) {
      await metricsServer?.close();
      throw e;
    }
    ready = true;
    eventing?.start();
    let stopping: Promise<void> | undefined;

    const proxy: RunningProxy = {
      port,
      metricsPort: metricsServer?.port,
      model,
      store: activeStore,
      summary: () => summarize(model, config, port, activeStore.description, routes, metricsServer?.port, plan),
      activeEntities: () => [...handlers.values()].reduce((n, h) => n + h.activeEntities(), 0),
      stop: () =>
        (stopping ??= (async () => {
          ready = false;
          health.stop();
          const deadline = Date.now() + config.shutdownGraceMs;
          // Consumers stop taking messages at once; deliveries in progress finish within the grace
          // period, and what is done is committed (the rest is delivered again after a restart).
          eventingEndpoints?.close();
          const eventingStopped = eventing?.stop(config.shutdownGraceMs);
          const notApplied = new ProxyError(Code.UNAVAILABLE, "the proxy is shutting down; the command was not applied, retry it");
          const closing = ingress.close(config.shutdownGraceMs, () => {
            for (const h of handlers.values()) h.abort(notApplied);
          });
          // The hosts drain alongside the ingress (which no longer accepts calls): entities finish
          // what they hold, and open streamed calls end now instead of holding the ingress open.
          const draining = withTimeout(
            Promise.all([...handlers.values()].map((h) => h.shutdown())),
            Math.max(0, deadline - Date.now()),
          );
          await closing;
          await draining;
          await eventingStopped;
          await activeStore.close();
          await metricsServer?.close();
          connection.close();
        })()),
    };
    log.info({ port, metricsPort: metricsServer?.port, store: activeStore.description, services: [...model.services.keys()] }, "proxy ready");
    return proxy;
  } catch (e) {
    connection.close();
    await store?.close();
    throw e;
  }
}

function withTimeout(work: Promise<unknown>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    void work.finally(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

function summarize(
  model: UserFunctionModel,
  config: ProxyConfig,
  port: number,
  store: string,
  routes: RouteTable,
  metricsPort: number | undefined,
  plan: EventingPlan,
): string[] {
  const host = config.host === "0.0.0.0" || config.host === "::" ? "127.0.0.1" : config.host;
  const lines = [
    `cloudstate proxy ready on ${host}:${port} (gRPC), user function at ${config.userFunctionHost}:${config.userFunctionPort}, store ${store}`,
  ];
  for (const s of model.services.values()) {
    // Actions keep no state: no persistence id, no passivation.
    lines.push(s.kind === "action" ? `  ${s.name}  ${s.entityType}` : `  ${s.name}  ${s.entityType}  persistence id "${s.persistenceId}"  passivation ${s.passivationTimeoutMs} ms`);
    for (const m of s.methods.values()) lines.push(`    grpc ${host}:${port} ${m.path}`);
    for (const r of routes.routes) if (r.service === s && !r.isDefault) lines.push(`    http ${r.httpMethod} http://${host}:${port}${r.template.text}`);
  }
  for (const s of plan.subscriptions) {
    lines.push(`  eventing: ${s.sourceId} → ${s.service.name} (consumer group "${s.group}")`);
  }
  for (const topic of [...plan.topics].sort()) {
    lines.push(`  topic ${topic}: POST (publish) / GET (SSE) http://${host}:${port}/eventing/topics/${topic}`);
  }
  lines.push(`  health: http://${host}:${port}/ready  http://${host}:${port}/alive`);
  if (config.console) lines.push(`  console: http://${host}:${port}/console/${config.consoleToken === undefined ? "" : " (bearer token required)"}`);
  if (metricsPort !== undefined) lines.push(`  metrics: http://${host}:${metricsPort}/metrics`);
  return lines;
}

