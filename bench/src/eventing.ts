// The eventing benchmark. Two measurements, the proxy on SQLite with fsync (or --store memory):
//
// 1. drain: the shopping cart's "popular products" projection catching up with a backlog. N cart
//    events (AddItems) are journaled through a proxy whose user function serves only the cart
//    (src/cart-only-uf.ts: no consumer runs while writing); that proxy stops; then the full
//    example (examples/shopping-cart/src/main.ts) and a proxy start on the same database, and its
//    consumer starts at offset 0 with N events behind. Measured: from the proxy's /ready until
//    cloudstate_eventing_messages_total{outcome="delivered"} (GET /metrics) reaches N and
//    cloudstate_eventing_lag is 0 → events/s; then the view is read back (PopularProducts/
//    GetPopularity: the timesAdded must add up to N).
// 2. live: a fixed rate of AddItems (open loop) through a proxy whose user function is the cart plus
//    a subscriber of the cart event log (src/subscriber-uf.ts) that records, per event,
//    Date.now() − ce-time (the journal commit time): commit → subscriber latency percentiles.
//
// Servers run as child processes on free loopback ports. Prints ONE JSON document on stdout;
// progress goes to stderr.
//
//   npm run bench:eventing -- --events 20000 --rate 1000 --duration 10
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  GetProductPopularitySchema,
  ProductPopularitySchema,
} from "../../examples/shopping-cart/src/gen/com/example/shoppingcart/popularity_pb.js";
import {
  Child,
  CLI,
  cpuDelta,
  cpuSnapshot,
  freePort,
  HOST,
  httpGet,
  httpReady,
  killChildrenOnSignal,
  optionParsers,
  machineCpu,
  progress,
  ROOT,
  round2,
  sleep,
  stopAll,
  tcpOpen,
  tempDirs,
  waitFor,
} from "./children.js";
import { ADD_ITEM_PATH, connect, encodeRequests, latencyStats, populateCarts, type LatencyStats } from "./load.js";

const FULL_UF = join(ROOT, "examples/shopping-cart/src/main.ts");
const CART_ONLY_UF = join(ROOT, "bench/src/cart-only-uf.ts");
const SUBSCRIBER_UF = join(ROOT, "bench/src/subscriber-uf.ts");
const GET_POPULARITY_PATH = "/com.example.shoppingcart.PopularProducts/GetPopularity";
/** The consumer groups (default: the subscriber's service name) and the source, as the metrics label them. */
const PROJECTION_GROUP = "com.example.shoppingcart.CartEvents";
const EVENT_LOG = "event-log:shopping-cart";
// `npm run bench:eventing` runs in bench/; relative paths given on the command line are the caller's.
const INVOKED_FROM = process.env.INIT_CWD ?? process.cwd();
/** Longest wait for the projection to catch up, or for the live subscriber to see every event. */
const DRAIN_TIMEOUT_MS = 600_000;
const LIVE_CATCH_UP_TIMEOUT_MS = 30_000;
const DRAIN_TIMELINE_S = 5;

const PHASES = ["drain", "live"] as const;
type Phase = (typeof PHASES)[number];

const USAGE = `usage: npm run bench:eventing -- [options]
  --phase drain|live|all   what to measure (default all; a comma-separated list also works)
  --events N               drain: cart events (AddItems) journaled before the projection starts (default 20000)
  --events-per-cart N      drain: AddItems per cart, so carts = events / this (default 10)
  --products N             distinct products, i.e. projection view entities (default 10)
  --concurrency N          drain: concurrent gRPC callers journaling the backlog (default 64)
  --rate R                 live: AddItems per second, open loop (default 1000)
  --carts N                live: carts the AddItems are spread over, round-robin (default 1000)
  --duration S             live: measured seconds (default 10)
  --warmup S               live: seconds at the same rate before measuring (default 2)
  --store sqlite|memory    the proxy's store (default sqlite, fsync durability); with memory the
                           drain is skipped (the backlog does not survive the proxy restart)
  --json-out FILE          also write the JSON document to FILE
  --verbose                echo the children's output to stderr`;

interface Params {
  phases: Phase[];
  events: number;
  eventsPerCart: number;
  products: number;
  concurrency: number;
  rate: number;
  carts: number;
  durationS: number;
  warmupS: number;
  store: "sqlite" | "memory";
  jsonOut: string | undefined;
  verbose: boolean;
}

function parseParams(argv: string[]): Params {
  const { values } = parseArgs({
    args: argv,
    options: {
      phase: { type: "string", default: "all" },
      events: { type: "string", default: "20000" },
      "events-per-cart": { type: "string", default: "10" },
      products: { type: "string", default: "10" },
      concurrency: { type: "string", default: "64" },
      rate: { type: "string", default: "1000" },
      carts: { type: "string", default: "1000" },
      duration: { type: "string", default: "10" },
      warmup: { type: "string", default: "2" },
      store: { type: "string", default: "sqlite" },
      "json-out": { type: "string" },
      verbose: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    process.stderr.write(`${USAGE}\n`);
    process.exit(0);
  }
  const phases: Phase[] = [];
  for (const s of values.phase.split(",").map((x) => x.trim())) {
    if (s === "all") phases.push(...PHASES);
    else if ((PHASES as readonly string[]).includes(s)) phases.push(s as Phase);
    else usage(`unknown --phase "${s}": expected drain, live or all`);
  }
  const store = values.store;
  if (store !== "sqlite" && store !== "memory") usage(`unknown --store "${store}": expected sqlite or memory`);
  return {
    phases: PHASES.filter((x) => phases.includes(x)),
    events: int("events", values.events),
    eventsPerCart: int("events-per-cart", values["events-per-cart"]),
    products: int("products", values.products),
    concurrency: int("concurrency", values.concurrency),
    rate: num("rate", values.rate, 0),
    carts: int("carts", values.carts),
    durationS: num("duration", values.duration, 0),
    warmupS: values.warmup.trim() === "0" ? 0 : num("warmup", values.warmup, 0),
    store,
    jsonOut: values["json-out"] === undefined ? undefined : resolve(INVOKED_FROM, values["json-out"]),
    verbose: values.verbose,
  };
}

const { int, num } = optionParsers(usage);

function usage(message: string): never {
  process.stderr.write(`bench:eventing: ${message}\n${USAGE}\n`);
  process.exit(2);
}

// ---- proxy + user function ------------------------------------------------------------------------

interface Pair {
  port: number;
  metricsPort: number;
  uf: Child;
  proxy: Child;
  children: Child[];
}

/** Starts a user function, then a proxy in front of it; resolves when the proxy answers /ready. */
async function startPair(p: Params, ufScript: string, store: string, ufEnv: NodeJS.ProcessEnv = {}, readyEveryMs = 100): Promise<Pair> {
  const ufPort = await freePort();
  const port = await freePort();
  const metricsPort = await freePort();
  const uf = new Child("uf", ["--import", "tsx", ufScript], { ...ufEnv, PORT: String(ufPort) }, p.verbose);
  const children: Child[] = [uf];
  try {
    await waitFor("the user function listened", uf, () => tcpOpen(ufPort), 60_000);
    const proxy = new Child(
      "proxy",
      [
        CLI,
        "proxy",
        "--host",
        HOST,
        "--port",
        String(port),
        "--user-function",
        `${HOST}:${ufPort}`,
        "--store",
        store,
        ...(store === "memory" ? [] : ["--durability", "fsync"]),
        "--log-level",
        "warn",
        "--metrics-port",
        String(metricsPort),
      ],
      {},
      p.verbose,
    );
    children.push(proxy);
    await waitFor("the proxy was ready", proxy, () => httpReady(port), 60_000, readyEveryMs);
    return { port, metricsPort, uf, proxy, children };
  } catch (e) {
    await stopAll(children);
    throw e;
  }
}

const identity = (b: Buffer): Buffer => b;

function unary(client: grpc.Client, path: string, request: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    client.makeUnaryRequest(path, identity, identity, request, new grpc.Metadata(), { deadline: Date.now() + 30_000 }, (err, value) =>
      err || value === undefined ? reject(err ?? new Error(`${path}: no reply`)) : resolve(value),
    ),
  );
}

const errorText = (e: unknown): string => {
  const err = e as grpc.ServiceError;
  return typeof err.code === "number" ? `${grpc.status[err.code] ?? err.code}: ${err.details || err.message}` : String((e as Error).message ?? e);
};

// ---- metrics ------------------------------------------------------------------------------------

interface EventingCounters {
  delivered: number;
  unmatched: number;
  deadLetters: number;
  retries: number;
  /** cloudstate_eventing_lag of the group, when its consumer is active. */
  lag: number | undefined;
}

const SAMPLE = /^(\w+)\{([^}]*)\}\s+(\S+)/;
const LABEL = /(\w+)="((?:[^"\\]|\\.)*)"/g;

/** The eventing counters of (group, EVENT_LOG) in a Prometheus text exposition. */
function eventingCounters(text: string, group: string): EventingCounters {
  const out: EventingCounters = { delivered: 0, unmatched: 0, deadLetters: 0, retries: 0, lag: undefined };
  for (const line of text.split("\n")) {
    const m = SAMPLE.exec(line);
    if (m === null || (m[1] !== "cloudstate_eventing_messages_total" && m[1] !== "cloudstate_eventing_lag")) continue;
    const labels = new Map([...m[2]!.matchAll(LABEL)].map((l) => [l[1]!, l[2]!]));
    if (labels.get("group") !== group || labels.get("source") !== EVENT_LOG) continue;
    const value = Number(m[3]);
    if (m[1] === "cloudstate_eventing_lag") out.lag = value;
    else if (labels.get("outcome") === "delivered") out.delivered = value;
    else if (labels.get("outcome") === "unmatched") out.unmatched = value;
    else if (labels.get("outcome") === "dead_letter") out.deadLetters = value;
    else if (labels.get("outcome") === "retry") out.retries = value;
  }
  return out;
}

async function scrape(metricsPort: number, group: string): Promise<EventingCounters> {
  const { status, body } = await httpGet(metricsPort, "/metrics");
  if (status !== 200) throw new Error(`GET /metrics: HTTP ${status}: ${body.slice(0, 200)}`);
  return eventingCounters(body, group);
}

// ---- drain --------------------------------------------------------------------------------------

interface DrainResult {
  events: number;
  carts: number;
  products: number;
  store: string;
  /** Journaling the backlog through the cart-only proxy (not part of the drain). */
  journal: { seconds: number; addItemsPerSecond: number; concurrency: number };
  /** From the proxy's /ready (its consumers start then) until every event was delivered and the committed offset reached the head (lag 0). */
  seconds: number;
  /** From /ready until delivered reached the event count (before the last offset commit). */
  allDeliveredSeconds: number;
  eventsPerSecond: number;
  /** Delivered at the first scrape after /ready (the clock starts at /ready). */
  deliveredAtFirstScrape: number;
  outcomes: { delivered: number; unmatched: number; deadLetters: number; retries: number };
  /** The view adds up: Σ timesAdded == Σ quantityAdded == events over the products. */
  viewExact: boolean;
  view: { timesAdded: number; quantityAdded: number; productsRead: number };
  /** Delivered so far, every DRAIN_TIMELINE_S seconds after /ready: how the rate changes as the views grow. */
  timeline: { second: number; delivered: number }[];
  cpuSeconds: Record<string, number>;
  cpuMicrosPerEvent: Record<string, number>;
  /** Busy CPU seconds of the whole machine during the drain, and the part used by other processes. */
  machine?: { busySeconds: number; othersSeconds: number };
}

/** Journals `events` AddItems: carts of `eventsPerCart` items each, a cart's items in order, `concurrency` carts at a time. */
async function journalBacklog(target: string, p: Params): Promise<{ events: number; carts: number; seconds: number }> {
  const carts = Math.ceil(p.events / p.eventsPerCart);
  const requests = encodeRequests(carts, p.products);
  const [client] = await connect(target, 1);
  let nextCart = 0;
  let written = 0;
  let failure: string | undefined;
  const t0 = process.hrtime.bigint();
  let lastReport = Date.now();
  try {
    await Promise.all(
      Array.from({ length: Math.min(p.concurrency, carts) }, async () => {
        for (let c = nextCart++; c < carts && failure === undefined; c = nextCart++) {
          const items = Math.min(p.eventsPerCart, p.events - c * p.eventsPerCart);
          for (let i = 0; i < items && failure === undefined; i++) {
            try {
              await unary(client!, ADD_ITEM_PATH, requests[c * p.products + ((c + i) % p.products)]!);
              written++;
            } catch (e) {
              failure ??= `AddItem to cart-${c}: ${errorText(e)}`;
            }
          }
          if (Date.now() - lastReport > 5_000) {
            lastReport = Date.now();
            progress(`drain: journaled ${written} of ${p.events} events`);
          }
        }
      }),
    );
  } finally {
    client!.close();
  }
  if (failure !== undefined) throw new Error(`journaling the backlog failed after ${written} events: ${failure}`);
  return { events: written, carts, seconds: Number(process.hrtime.bigint() - t0) / 1e9 };
}

/** Σ timesAdded and Σ quantityAdded of the products' views, read over gRPC. */
async function readView(target: string, products: number): Promise<DrainResult["view"]> {
  const [client] = await connect(target, 1);
  try {
    const views = await Promise.all(
      Array.from({ length: products }, async (_, n) => {
        const request = toBinary(GetProductPopularitySchema, create(GetProductPopularitySchema, { productId: `product-${n}` }));
        return fromBinary(ProductPopularitySchema, await unary(client!, GET_POPULARITY_PATH, Buffer.from(request)));
      }),
    );
    return {
      timesAdded: Number(views.reduce((n, v) => n + v.timesAdded, 0n)),
      quantityAdded: Number(views.reduce((n, v) => n + v.quantityAdded, 0n)),
      productsRead: views.length,
    };
  } finally {
    client!.close();
  }
}

async function runDrain(p: Params): Promise<DrainResult> {
  const dir = mkdtempSync(join(tmpdir(), "cloudstate-bench-eventing-"));
  tempDirs.add(dir);
  const store = `sqlite:${join(dir, "eventing.db")}`;
  try {
    // 1. The backlog, with no consumer: the user function serves the cart only.
    progress(`drain: journaling ${p.events} events (${Math.ceil(p.events / p.eventsPerCart)} carts × ≤ ${p.eventsPerCart} AddItems, ${p.products} products, ${p.concurrency} callers) through a cart-only proxy on ${store} (fsync)`);
    const writer = await startPair(p, CART_ONLY_UF, store);
    let journal: Awaited<ReturnType<typeof journalBacklog>>;
    try {
      journal = await journalBacklog(`${HOST}:${writer.port}`, p);
    } finally {
      await stopAll(writer.children);
    }
    const n = journal.events;
    progress(`drain: journaled ${n} events in ${round2(journal.seconds)} s (${Math.round(n / journal.seconds)} AddItems/s); starting the shopping cart with its projection`);

    // 2. The full example on the same database: its consumer starts at offset 0, n events behind.
    const reader = await startPair(p, FULL_UF, store, {}, 10);
    const t0 = process.hrtime.bigint();
    const cpuBefore = cpuSnapshot(reader.children);
    const busyBefore = machineCpu()?.busy;
    const elapsed = () => Number(process.hrtime.bigint() - t0) / 1e9;
    try {
      let first: EventingCounters | undefined;
      let last: EventingCounters;
      let allDelivered: number | undefined;
      let nextReport = 2;
      const timeline: DrainResult["timeline"] = [];
      for (;;) {
        if (reader.proxy.hasExited) throw new Error(`the proxy exited (${String(await reader.proxy.exited)}) during the drain:\n${reader.proxy.output()}`);
        if (reader.uf.hasExited) throw new Error(`the user function exited (${String(await reader.uf.exited)}) during the drain:\n${reader.uf.output()}`);
        last = await scrape(reader.metricsPort, PROJECTION_GROUP);
        const t = elapsed();
        first ??= last;
        if (allDelivered === undefined && last.delivered >= n) allDelivered = t;
        const finished = last.delivered + last.unmatched + last.deadLetters;
        if (finished >= n && last.lag === 0) break;
        if (t * 1000 > DRAIN_TIMEOUT_MS) throw new Error(`the projection did not catch up within ${DRAIN_TIMEOUT_MS / 1000} s: ${JSON.stringify(last)}`);
        if (t >= (timeline.length + 1) * DRAIN_TIMELINE_S) timeline.push({ second: round2(t), delivered: last.delivered });
        if (t >= nextReport) {
          nextReport += 2;
          progress(`drain: ${last.delivered} of ${n} delivered after ${round2(t)} s (lag ${last.lag ?? "?"})`);
        }
        await sleep(20);
      }
      const seconds = elapsed();
      const cpuSeconds = cpuDelta(cpuBefore, cpuSnapshot(reader.children));
      const machine = machineShare(busyBefore, cpuSeconds, t0);
      const view = await readView(`${HOST}:${reader.port}`, p.products);
      const viewExact = view.timesAdded === n && view.quantityAdded === n;
      const cpuMicrosPerEvent: Record<string, number> = {};
      for (const [name, s] of Object.entries(cpuSeconds)) cpuMicrosPerEvent[name] = Math.round((s * 1e6) / n);
      const result: DrainResult = {
        events: n,
        carts: journal.carts,
        products: p.products,
        store: "sqlite (fsync)",
        journal: { seconds: round2(journal.seconds), addItemsPerSecond: Math.round(n / journal.seconds), concurrency: p.concurrency },
        seconds: round3(seconds),
        allDeliveredSeconds: round3(allDelivered ?? seconds),
        eventsPerSecond: Math.round(n / seconds),
        deliveredAtFirstScrape: first.delivered,
        outcomes: { delivered: last.delivered, unmatched: last.unmatched, deadLetters: last.deadLetters, retries: last.retries },
        viewExact,
        view,
        timeline,
        cpuSeconds,
        cpuMicrosPerEvent,
        ...(machine ? { machine } : {}),
      };
      progress(
        `drain: ${n} events in ${result.seconds} s = ${result.eventsPerSecond} events/s (all delivered at ${result.allDeliveredSeconds} s); ` +
          `view ${viewExact ? "exact" : `NOT exact (timesAdded ${view.timesAdded}, quantityAdded ${view.quantityAdded}, want ${n})`}; cpu ${JSON.stringify(cpuSeconds)}`,
      );
      return result;
    } finally {
      await stopAll(reader.children);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
    tempDirs.delete(dir);
  }
}

// ---- live ---------------------------------------------------------------------------------------

interface LiveResult {
  rate: number;
  /** AddItems sent per second over the whole run (the open loop's own rate: should be `rate`). */
  achievedRate: number;
  carts: number;
  products: number;
  store: string;
  warmupS: number;
  durationS: number;
  /** AddItems before the open loop (one per cart, not measured): every cart entity running, the subscriber caught up. */
  prefilled: number;
  /** AddItems of the open loop acknowledged ok (each journaled one ItemAdded), warm-up included. */
  written: number;
  errors: number;
  errorSamples: string[];
  /** Distinct events (ce-id) of the open loop the subscriber received, warm-up included. */
  seen: number;
  /** Deliveries beyond the first of an event (at least once: 0 unless something failed). */
  duplicates: number;
  /** Events committed inside the measured window (by ce-time): the latency samples. */
  measuredEvents: number;
  /** Journal commit (ce-time, ms resolution) → the subscriber's handler, events committed in the measured window. */
  latencyMs: { p50: number; p90: number; p99: number; max: number; mean: number };
  /** The writers' own AddItem round trip, requests sent in the measured window. */
  addItemLatencyMs: { p50: number; p90: number; p99: number; max: number; mean: number };
  /** Commit → subscriber latency per second of commit time since the open loop started (second 0 = the warm-up's first). */
  timeline: { second: number; events: number; p50: number; p99: number; max: number }[];
  /** CPU seconds over the open loop and the catch-up after it. */
  cpuSeconds: Record<string, number>;
  /** Busy CPU seconds of the whole machine over the load and catch-up, and the part used by other processes. */
  machine?: { busySeconds: number; othersSeconds: number };
}

const msStats = (s: LatencyStats) => ({ p50: s.p50Ms, p90: s.p90Ms, p99: s.p99Ms, max: s.maxMs, mean: s.meanMs });

interface OpenLoopResult {
  sent: number;
  ok: number;
  errors: number;
  errorSamples: string[];
  achievedRate: number;
  /** Wall-clock (Date.now()) start of the open loop and bounds of the measured window. */
  startMs: number;
  measureFromMs: number;
  measureToMs: number;
  latenciesNs: number[];
}

/**
 * AddItems at `rate` per second for warm-up + duration, open loop: a 1 ms timer sends whatever is
 * due by then, whether or not earlier requests have answered. Request k goes to cart k mod carts,
 * product ⌊k / carts⌋ mod products.
 */
async function openLoop(target: string, p: Params): Promise<OpenLoopResult> {
  const requests = encodeRequests(p.carts, p.products);
  const [client] = await connect(target, 1);
  const totalS = p.warmupS + p.durationS;
  const total = Math.round(p.rate * totalS);
  const firstMeasured = Math.ceil(p.rate * p.warmupS);
  let sent = 0;
  let ok = 0;
  let errors = 0;
  let inFlight = 0;
  const errorSamples = new Set<string>();
  const latenciesNs: number[] = [];
  const startNs = process.hrtime.bigint();
  const startMs = Date.now();
  let endNs = startNs;
  try {
    await new Promise<void>((resolve) => {
      let allSent = false;
      const send = (k: number) => {
        const request = requests[(k % p.carts) * p.products + (Math.floor(k / p.carts) % p.products)]!;
        const t0 = process.hrtime.bigint();
        inFlight++;
        client!.makeUnaryRequest(ADD_ITEM_PATH, identity, identity, request, new grpc.Metadata(), { deadline: Date.now() + 30_000 }, (err) => {
          inFlight--;
          if (err) {
            errors++;
            if (errorSamples.size < 5) errorSamples.add(errorText(err));
          } else {
            ok++;
            if (k >= firstMeasured) latenciesNs.push(Number(process.hrtime.bigint() - t0));
          }
          if (allSent && inFlight === 0) resolve();
        });
      };
      let nextReport = 2;
      const timer = setInterval(() => {
        const elapsedS = Number(process.hrtime.bigint() - startNs) / 1e9;
        const due = Math.min(total, Math.floor(elapsedS * p.rate));
        while (sent < due) send(sent++);
        if (elapsedS >= nextReport) {
          nextReport += 2;
          progress(`live: ${sent} AddItems sent, ${ok} ok, ${errors} errors, ${inFlight} in flight after ${Math.round(elapsedS)} s`);
        }
        if (sent >= total) {
          clearInterval(timer);
          endNs = process.hrtime.bigint();
          allSent = true;
          if (inFlight === 0) resolve();
        }
      }, 1);
    });
  } finally {
    client!.close();
  }
  return {
    sent,
    ok,
    errors,
    errorSamples: [...errorSamples],
    achievedRate: round2(sent / (Number(endNs - startNs) / 1e9)),
    startMs,
    measureFromMs: startMs + p.warmupS * 1000,
    measureToMs: startMs + totalS * 1000,
    latenciesNs,
  };
}

interface Samples {
  received: number;
  distinct: number;
  samples?: [number, number][];
}

async function probe(port: number, path: "/count" | "/samples"): Promise<Samples> {
  const { status, body } = await httpGet(port, path, 10_000);
  if (status !== 200) throw new Error(`GET ${path} of the subscriber: HTTP ${status}: ${body.slice(0, 200)}`);
  return JSON.parse(body) as Samples;
}

/** Polls the subscriber until it has seen `events` distinct events, or LIVE_CATCH_UP_TIMEOUT_MS. */
async function waitSeen(port: number, events: number): Promise<Samples> {
  const deadline = Date.now() + LIVE_CATCH_UP_TIMEOUT_MS;
  let count = await probe(port, "/count");
  while (count.distinct < events && Date.now() < deadline) {
    await sleep(50);
    count = await probe(port, "/count");
  }
  return count;
}

async function runLive(p: Params): Promise<LiveResult> {
  const dir = p.store === "sqlite" ? mkdtempSync(join(tmpdir(), "cloudstate-bench-eventing-")) : undefined;
  if (dir) tempDirs.add(dir);
  const store = dir ? `sqlite:${join(dir, "live.db")}` : "memory";
  try {
    const latencyPort = await freePort();
    const pair = await startPair(p, SUBSCRIBER_UF, store, { LATENCY_PORT: String(latencyPort) });
    try {
      await waitFor("the subscriber's samples endpoint listened", pair.uf, () => tcpOpen(latencyPort), 10_000);
      progress(`live: proxy on ${HOST}:${pair.port}, store ${store}${dir ? " (fsync)" : ""}; ${p.rate} AddItems/s over ${p.carts} carts, ${p.warmupS} s warm-up + ${p.durationS} s`);
      // Not measured: one AddItem per cart first, so every cart entity is running (its first command
      // recovers it from the store) before the open loop starts, and the subscriber has caught up.
      const prefilled = await populateCarts(`${HOST}:${pair.port}`, p.carts, 1);
      await waitSeen(latencyPort, prefilled);
      const cpuBefore = cpuSnapshot(pair.children);
      const busyBefore = machineCpu()?.busy;
      const wallBefore = process.hrtime.bigint();
      const load = await openLoop(`${HOST}:${pair.port}`, p);
      // Every acknowledged AddItem journaled an event: wait until the subscriber has seen them all.
      const count = await waitSeen(latencyPort, prefilled + load.ok);
      const cpuSeconds = cpuDelta(cpuBefore, cpuSnapshot(pair.children));
      const machine = machineShare(busyBefore, cpuSeconds, wallBefore);
      if (count.distinct < prefilled + load.ok) {
        progress(`live: warning: the subscriber saw ${count.distinct} of ${prefilled + load.ok} events ${LIVE_CATCH_UP_TIMEOUT_MS / 1000} s after the last write`);
      }
      const all = await probe(latencyPort, "/samples");
      const samples = (all.samples ?? []).filter(([at]) => at >= load.startMs);
      const measured = samples.filter(([at]) => at >= load.measureFromMs && at < load.measureToMs).map(([, ms]) => ms * 1e6);
      const latency = latencyStats(measured);
      // Per second of commit time since the open loop started (warm-up seconds first): transients show here.
      const perSecond: number[][] = [];
      for (const [at, ms] of samples) (perSecond[Math.floor((at - load.startMs) / 1000)] ??= []).push(ms * 1e6);
      const timeline = Array.from(perSecond, (ns, second) => {
        const s = latencyStats(ns ?? []);
        return { second, events: s.count, p50: s.p50Ms, p99: s.p99Ms, max: s.maxMs };
      });
      const result: LiveResult = {
        rate: p.rate,
        achievedRate: load.achievedRate,
        carts: p.carts,
        products: p.products,
        store: dir ? "sqlite (fsync)" : "memory",
        warmupS: p.warmupS,
        durationS: p.durationS,
        prefilled,
        written: load.ok,
        errors: load.errors,
        errorSamples: load.errorSamples,
        seen: all.distinct - prefilled,
        duplicates: all.received - all.distinct,
        measuredEvents: latency.count,
        latencyMs: msStats(latency),
        addItemLatencyMs: msStats(latencyStats(load.latenciesNs)),
        timeline,
        cpuSeconds,
        ...(machine ? { machine } : {}),
      };
      progress(
        `live: written ${result.written} (errors ${result.errors}), seen ${result.seen}; commit → subscriber p50 ${latency.p50Ms} ms, p90 ${latency.p90Ms} ms, ` +
          `p99 ${latency.p99Ms} ms, max ${latency.maxMs} ms over ${latency.count} events; AddItem p99 ${result.addItemLatencyMs.p99} ms`,
      );
      return result;
    } finally {
      await stopAll(pair.children);
    }
  } finally {
    if (dir) {
      rmSync(dir, { recursive: true, force: true });
      tempDirs.delete(dir);
    }
  }
}

const round3 = (x: number): number => Math.round(x * 1000) / 1000;

/**
 * The machine's busy CPU seconds since `busyBefore` and the part other processes used (busy − ours);
 * warns on stderr when others took more than 10% of the machine: those numbers are noise.
 */
function machineShare(busyBefore: number | undefined, ours: Record<string, number>, wallBefore: bigint): { busySeconds: number; othersSeconds: number } | undefined {
  const busyAfter = machineCpu()?.busy;
  if (busyBefore === undefined || busyAfter === undefined) return undefined;
  const busy = busyAfter - busyBefore;
  const others = Math.max(0, busy - Object.values(ours).reduce((a, b) => a + b, 0));
  const wall = Number(process.hrtime.bigint() - wallBefore) / 1e9;
  if (others > 0.1 * wall * cpus().length) {
    progress(`  warning: other processes used ${Math.round((others / (wall * cpus().length)) * 100)}% of the machine's CPU during this run; its numbers are not reliable`);
  }
  return { busySeconds: round2(busy), othersSeconds: round2(others) };
}

// ---- main ---------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const p = parseParams(process.argv.slice(2));
  killChildrenOnSignal();
  // A shared machine skews every number: say how busy it was before we started.
  const before = machineCpu()?.busy;
  await sleep(1000);
  const after = machineCpu()?.busy;
  const busyBeforeStartPercent = before !== undefined && after !== undefined ? Math.round(((after - before) / cpus().length) * 100) : null;
  if (busyBeforeStartPercent !== null) {
    progress(`machine busy before start: ${busyBeforeStartPercent}% of ${cpus().length} CPUs${busyBeforeStartPercent > 10 ? " (other work is running: numbers will be noisy)" : ""}`);
  }
  let drain: DrainResult | null = null;
  let drainSkipped: string | undefined;
  if (p.phases.includes("drain")) {
    if (p.store === "memory") {
      drainSkipped = "--store memory: the backlog would not survive the restart between journaling and draining";
      progress(`drain: skipped (${drainSkipped})`);
    } else {
      drain = await runDrain(p);
    }
  }
  const live = p.phases.includes("live") ? await runLive(p) : null;
  const cpu = cpus();
  const doc = {
    machine: {
      cpus: cpu.length,
      model: cpu[0]?.model ?? "unknown",
      node: process.version,
      platform: `${process.platform}-${process.arch}`,
      busyBeforeStartPercent,
    },
    params: {
      phases: p.phases,
      store: p.store === "sqlite" ? "sqlite (fsync)" : "memory",
      events: p.events,
      eventsPerCart: p.eventsPerCart,
      products: p.products,
      concurrency: p.concurrency,
      rate: p.rate,
      carts: p.carts,
      durationS: p.durationS,
      warmupS: p.warmupS,
    },
    drain,
    ...(drainSkipped ? { drainSkipped } : {}),
    live,
  };
  const json = `${JSON.stringify(doc, null, 2)}\n`;
  process.stdout.write(json);
  if (p.jsonOut) {
    writeFileSync(p.jsonOut, json);
    progress(`wrote ${p.jsonOut}`);
  }
}

main().catch((e: unknown) => {
  progress(`failed: ${(e as Error).stack ?? String(e)}`);
  process.exitCode = 1;
});
