// The benchmark: AddItem under a closed-loop load, against the bare-gRPC floor and through the
// proxy (SQLite, memory and PostgreSQL stores); and GetCart through the proxy on SQLite over gRPC
// and over HTTP/JSON (getcart-grpc, getcart-http). Servers run as child processes on free loopback ports; the
// load generator runs here. Prints ONE JSON document to stdout; progress goes to stderr.
//
//   npm run bench -- --scenario all --duration 10
//
// Options: --scenario floor|proxy-sqlite|proxy-memory|proxy-postgres|getcart-grpc|getcart-http|all, --concurrency N, --keys N,
// --duration S, --warmup S, --channels N, --threads N, --uf sdk|raw, --durability fsync|relaxed,
// --key-order round-robin|random, --repeat N, --proxy-node-args=A, --profile DIR, --json-out FILE,
// --verbose (see USAGE below).
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createRequire } from "node:module";
import { parseArgs } from "node:util";
import { startTestPostgres } from "../../packages/proxy/src/store/postgres/test-server.js";
import type * as PgTypes from "pg";
import { cartItems, populateCarts, runLoad, type LoadMode, type LoadResult } from "./load.js";
import {
  Child,
  CLI,
  cpuDelta,
  cpuSnapshot,
  freePort,
  HOST,
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

const FLOOR = join(ROOT, "bench/src/floor.ts");
// The cart alone: the example's main.ts also serves the "popular products" projection, whose
// consumer would double the work per AddItem (eventing has its own benchmark, eventing.ts).
const SDK_UF = join(ROOT, "bench/src/cart-only-uf.ts");
const RAW_UF = join(ROOT, "tests/fixtures/raw-cart-user-function.ts");
// `npm run bench` runs in bench/; relative paths given on the command line are the caller's.
const INVOKED_FROM = process.env.INIT_CWD ?? process.cwd();

const SCENARIOS = ["floor", "proxy-sqlite", "proxy-memory", "proxy-postgres", "getcart-grpc", "getcart-http"] as const;
type Scenario = (typeof SCENARIOS)[number];
/** What `all` runs: the AddItem scenarios (the GetCart pair is asked for by name). */
const ALL: readonly Scenario[] = ["floor", "proxy-sqlite", "proxy-memory", "proxy-postgres"];
type ProxyScenario = Exclude<Scenario, "floor">;
/** Line items put into every cart before a GetCart load (AddItem of products 0..n-1). */
const GETCART_ITEMS_PER_CART = 3;
type UfKind = "sdk" | "raw";

const USAGE = `usage: npm run bench -- [options]
  --scenario floor|proxy-sqlite|proxy-memory|proxy-postgres|getcart-grpc|getcart-http|all
                       (default all = the four AddItem scenarios; a comma-separated list also
                       works; proxy-postgres starts a throwaway PostgreSQL server from the
                       installed binaries; getcart-grpc / getcart-http: GetCart through the proxy
                       on SQLite over gRPC / over HTTP/1.1 GET /carts/{user_id}, every cart first
                       filled with ${GETCART_ITEMS_PER_CART} items)
  --concurrency N      callers, one request in flight each (default 64)
  --keys N             distinct carts (default 1000)
  --duration S         measured seconds (default 10)
  --warmup S           seconds of load before measuring (default 2)
  --channels N         client HTTP/2 connections (default 1; with --threads, at least one per thread)
  --threads N          worker threads the load generator's callers are spread over (default 1)
  --key-order O        round-robin | random (default round-robin)
  --uf sdk|raw         user function: our SDK's shopping cart or the raw-protocol one
                       (default sdk when it starts and passes discovery, else raw)
  --durability D       fsync | relaxed, for proxy-sqlite and proxy-postgres (default fsync)
  --proxy-node-args=A  extra node flags for the proxy process, space-separated
                       (e.g. --proxy-node-args=--max-semi-space-size=64; note the "=")
  --profile DIR        run the proxy and the user function with --cpu-prof into DIR/<scenario>-*/
  --repeat N           run the scenarios N times, interleaved; report each one's median run (default 1)
  --json-out FILE      also write the JSON document to FILE
  --verbose            echo the children's output to stderr`;

interface Params {
  scenarios: Scenario[];
  concurrency: number;
  keys: number;
  durationS: number;
  warmupS: number;
  channels: number;
  threads: number;
  repeat: number;
  keyOrder: "round-robin" | "random";
  uf: UfKind | "auto";
  durability: "fsync" | "relaxed";
  proxyNodeArgs: string[];
  profileDir: string | undefined;
  jsonOut: string | undefined;
  verbose: boolean;
}

interface ScenarioResult extends Measured {
  scenario: Scenario;
  /** With --repeat: every run, in order; the entry itself is the median run by throughput. */
  repeats?: { throughputs: number[]; p99Ms: number[]; errors: number };
  /** Which user function served a proxy scenario. */
  uf?: UfKind;
  store?: string;
  /** proxy-postgres: what PostgreSQL counted over the load (pg_stat_database), see postgresStats(). */
  postgres?: PostgresLoadStats;
  /** getcart-*: how the carts were filled before the (GetCart-only) load, and the transport. */
  getCart?: { itemsPerCart: number; populateAddItems: number; transport: string };
}

function parseParams(argv: string[]): Params {
  const { values } = parseArgs({
    args: argv,
    options: {
      scenario: { type: "string", default: "all" },
      concurrency: { type: "string", default: "64" },
      keys: { type: "string", default: "1000" },
      duration: { type: "string", default: "10" },
      warmup: { type: "string", default: "2" },
      channels: { type: "string", default: "1" },
      threads: { type: "string", default: "1" },
      repeat: { type: "string", default: "1" },
      "key-order": { type: "string", default: "round-robin" },
      uf: { type: "string" },
      durability: { type: "string", default: "fsync" },
      profile: { type: "string" },
      "proxy-node-args": { type: "string", default: "" },
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
  const scenarios: Scenario[] = [];
  for (const s of values.scenario.split(",").map((x) => x.trim())) {
    if (s === "all") scenarios.push(...ALL);
    else if ((SCENARIOS as readonly string[]).includes(s)) scenarios.push(s as Scenario);
    else usage(`unknown --scenario "${s}": expected floor, proxy-sqlite, proxy-memory, proxy-postgres, getcart-grpc, getcart-http or all`);
  }
  const uf = values.uf ?? "auto";
  if (uf !== "sdk" && uf !== "raw" && uf !== "auto") usage(`unknown --uf "${uf}": expected sdk or raw`);
  const durability = values.durability;
  if (durability !== "fsync" && durability !== "relaxed") usage(`unknown --durability "${durability}": expected fsync or relaxed`);
  const keyOrder = values["key-order"];
  if (keyOrder !== "round-robin" && keyOrder !== "random") usage(`unknown --key-order "${keyOrder}": expected round-robin or random`);
  return {
    scenarios: [...new Set(scenarios)],
    concurrency: int("concurrency", values.concurrency),
    keys: int("keys", values.keys),
    durationS: num("duration", values.duration, 0),
    warmupS: values.warmup.trim() === "0" ? 0 : num("warmup", values.warmup, 0),
    channels: int("channels", values.channels),
    threads: int("threads", values.threads),
    repeat: int("repeat", values.repeat),
    keyOrder,
    uf,
    durability,
    proxyNodeArgs: values["proxy-node-args"].split(/\s+/).filter((a) => a !== ""),
    profileDir: values.profile === undefined ? undefined : resolve(INVOKED_FROM, values.profile),
    jsonOut: values["json-out"] === undefined ? undefined : resolve(INVOKED_FROM, values["json-out"]),
    verbose: values.verbose,
  };
}

const { int, num } = optionParsers(usage);

function usage(message: string): never {
  process.stderr.write(`bench: ${message}\n${USAGE}\n`);
  process.exit(2);
}

// ---- scenarios ----------------------------------------------------------------------------------

const nodeArgs = (script: string, profile: string | undefined): string[] => [
  ...(profile ? ["--cpu-prof", "--cpu-prof-dir", profile] : []),
  "--import",
  "tsx",
  script,
];

async function runMeasured(p: Params, port: number, children: Child[], mode: LoadMode = "add-item"): Promise<Measured> {
  const machineBefore = machineCpu();
  const wallBefore = process.hrtime.bigint();
  const before = cpuSnapshot(children);
  const result = await runLoad({
    target: `${HOST}:${port}`,
    concurrency: p.concurrency,
    keys: p.keys,
    durationS: p.durationS,
    warmupS: p.warmupS,
    channels: p.channels,
    threads: p.threads,
    keyOrder: p.keyOrder,
    mode,
  });
  const cpuSeconds = cpuDelta(before, cpuSnapshot(children));
  const wallSeconds = Number(process.hrtime.bigint() - wallBefore) / 1e9;
  const machineAfter = machineCpu();
  let machine: Measured["machineCpu"];
  if (machineBefore && machineAfter) {
    const busy = machineAfter.busy - machineBefore.busy;
    const ours = Object.values(cpuSeconds).reduce((n, x) => n + x, 0);
    machine = {
      wallSeconds: round2(wallSeconds),
      busySeconds: round2(busy),
      othersSeconds: round2(Math.max(0, busy - ours)),
      iowaitSeconds: round2(machineAfter.iowait - machineBefore.iowait),
      stealSeconds: round2(machineAfter.steal - machineBefore.steal),
    };
  }
  const cpuMicrosPerRequest: Record<string, number> = {};
  for (const [name, seconds] of Object.entries(cpuSeconds)) {
    if (result.completed > 0) cpuMicrosPerRequest[name] = Math.round((seconds * 1e6) / result.completed);
  }
  return { ...result, cpuSeconds, cpuMicrosPerRequest, ...(machine ? { machineCpu: machine } : {}) };
}


interface Measured extends LoadResult {
  cpuSeconds: Record<string, number>;
  /**
   * CPU µs each process spent per finished request (cpuSeconds / completed): how much work a
   * request costs, less sensitive to a noisy machine than throughput.
   */
  cpuMicrosPerRequest: Record<string, number>;
  /**
   * The whole machine over the load (warm-up included): CPU seconds busy on all cores, the part
   * not used by the bench and its children (other processes: noise), iowait and steal.
   */
  machineCpu?: { wallSeconds: number; busySeconds: number; othersSeconds: number; iowaitSeconds: number; stealSeconds: number };
}

async function runFloor(p: Params): Promise<ScenarioResult> {
  const port = await freePort();
  const floor = new Child("floor", nodeArgs(FLOOR, undefined), { PORT: String(port), HOST }, p.verbose);
  try {
    await waitFor("the floor server listened", floor, () => tcpOpen(port), 30_000);
    progress(`floor: listening on ${HOST}:${port}; loading`);
    return { scenario: "floor", ...(await runMeasured(p, port, [floor])) };
  } finally {
    await floor.stop();
  }
}

/** Starts a user function and a proxy in front of it; resolves when the proxy answers /ready. */
async function startProxyPair(
  p: Params,
  scenario: Scenario,
  uf: UfKind,
  store: string,
): Promise<{ port: number; children: Child[] }> {
  const ufPort = await freePort();
  const port = await freePort();
  const profile = (who: string) => {
    if (p.profileDir === undefined) return undefined;
    const dir = join(p.profileDir, `${scenario}-${who}`);
    mkdirSync(dir, { recursive: true });
    return dir;
  };
  const children: Child[] = [];
  const ufChild = new Child(`uf-${uf}`, nodeArgs(uf === "sdk" ? SDK_UF : RAW_UF, profile("uf")), { PORT: String(ufPort) }, p.verbose);
  children.push(ufChild);
  try {
    await waitFor("the user function listened", ufChild, () => tcpOpen(ufPort), 60_000);
    const proxy = new Child(
      "proxy",
      [
        ...p.proxyNodeArgs,
        ...(p.profileDir ? ["--cpu-prof", "--cpu-prof-dir", profile("proxy")!] : []),
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
        "--durability",
        p.durability,
        "--log-level",
        "warn",
        // Metrics on (as in production), on a free port rather than 9090.
        "--metrics-port",
        "0",
      ],
      {},
      p.verbose,
    );
    children.push(proxy);
    await waitFor("the proxy was ready", proxy, () => httpReady(port), 60_000);
    return { port, children };
  } catch (e) {
    await stopAll(children);
    throw e;
  }
}

let chosenUf: UfKind | undefined;

async function runProxy(p: Params, scenario: ProxyScenario): Promise<ScenarioResult> {
  const dir = mkdtempSync(join(tmpdir(), "cloudstate-bench-"));
  tempDirs.add(dir);
  // proxy-postgres: a throwaway server (initdb in a temp dir, fsync on), destroyed after the run.
  const postgres = scenario === "proxy-postgres" ? await startTestPostgres() : undefined;
  const sqlite = scenario === "proxy-sqlite" || scenario === "getcart-grpc" || scenario === "getcart-http";
  const mode: LoadMode = scenario === "getcart-grpc" ? "get-cart-grpc" : scenario === "getcart-http" ? "get-cart-http" : "add-item";
  const store = postgres ? postgres.url : sqlite ? `sqlite:${join(dir, "bench.db")}` : "memory";
  // What logs and the report may say about the store: never the password.
  const storeLabel = postgres ? `postgres://cloudstate@${HOST}:${postgres.port}/postgres` : store;
  try {
    let pair: { port: number; children: Child[] };
    let uf: UfKind = chosenUf ?? (p.uf === "auto" ? (existsSync(SDK_UF) ? "sdk" : "raw") : p.uf);
    try {
      pair = await startProxyPair(p, scenario, uf, store);
    } catch (e) {
      if (p.uf !== "auto" || uf === "raw") throw e;
      progress(`the SDK shopping cart did not start or pass discovery, using the raw-protocol one:\n${(e as Error).message}`);
      uf = "raw";
      pair = await startProxyPair(p, scenario, uf, store);
    }
    chosenUf = uf;
    const durable = scenario !== "proxy-memory";
    progress(`${scenario}: proxy on ${HOST}:${pair.port}, user function ${uf}, store ${storeLabel}${durable ? ` (${p.durability})` : ""}; loading`);
    const label = sqlite ? `sqlite (${p.durability})` : postgres ? `postgres (${p.durability}, local server)` : "memory";
    let result: Measured;
    let getCart: ScenarioResult["getCart"];
    const before = postgres ? await postgresCounters(postgres.url) : undefined;
    try {
      if (mode !== "add-item") {
        // Not measured (before the CPU snapshot): every cart gets a few items, so each GetCart
        // replays a journal and returns a non-empty cart.
        const target = `${HOST}:${pair.port}`;
        const t0 = Date.now();
        const added = await populateCarts(target, p.keys, GETCART_ITEMS_PER_CART, p.concurrency);
        const items = await cartItems(target, mode, 0);
        if (items !== GETCART_ITEMS_PER_CART) throw new Error(`${scenario}: cart-0 has ${items} items after populating, expected ${GETCART_ITEMS_PER_CART}`);
        getCart = { itemsPerCart: GETCART_ITEMS_PER_CART, populateAddItems: added, transport: mode === "get-cart-http" ? "http/1.1 json (keep-alive)" : "grpc" };
        progress(`${scenario}: filled ${p.keys} carts with ${GETCART_ITEMS_PER_CART} items (${added} AddItems, ${Date.now() - t0} ms); cart-0 reads back ${items} items; loading GetCart`);
      }
      result = await runMeasured(p, pair.port, pair.children, mode);
    } finally {
      await stopAll(pair.children);
    }
    if (!postgres || !before) return { scenario, uf, store: label, ...result, ...(getCart ? { getCart } : {}) };
    // The proxy's sessions have ended: their statistics reach pg_stat_* as each backend exits.
    await sleep(1_000);
    const stats = postgresStats(before, await postgresCounters(postgres.url), result.completed);
    progress(`${scenario}: ${stats.commits} commits, ${stats.journalRows} journal rows, ${stats.entities} entities recovered: ≈ ${stats.meanBatchSize} writes per batch, ${stats.commitsPerRequest} commits per request`);
    return { scenario, uf, store: label, ...result, postgres: stats };
  } finally {
    await postgres?.destroy();
    rmSync(dir, { recursive: true, force: true });
    tempDirs.delete(dir);
  }
}

// ---- PostgreSQL statistics ----------------------------------------------------------------------
// The store's own stats() (batches, writes) live in the proxy process; the bench reads what the
// server counted instead. pg is the proxy package's dependency: load it from there.

const pg = createRequire(join(ROOT, "packages/proxy/package.json"))("pg") as typeof PgTypes;

interface PostgresCounters {
  commits: number;
  journalRows: number;
  entities: number;
}

interface PostgresLoadStats extends PostgresCounters {
  /** Estimated write transactions: commits − one read per recovered entity − the bench's own session. */
  writeBatches: number;
  /** journalRows / writeBatches: the mean group-commit batch (an estimate: other commits, e.g. autovacuum's, count too). */
  meanBatchSize: number;
  /** commits / completed requests (warm-up included). */
  commitsPerRequest: number;
}

/** xact_commit of the database, rows inserted into the journal, and distinct journaled entities. */
async function postgresCounters(url: string): Promise<PostgresCounters> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  client.on("error", () => undefined);
  await client.connect();
  try {
    // One statement, so the bench's session adds exactly one commit to the next reading.
    const { rows } = await client.query<{ commits: string; ins: string; entities: string }>(
      "SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()) AS commits," +
        " (SELECT coalesce(sum(n_tup_ins), 0) FROM pg_stat_user_tables WHERE relname = 'journal') AS ins," +
        " (SELECT count(DISTINCT entity_id) FROM journal) AS entities",
    );
    const r = rows[0]!;
    return { commits: Number(r.commits), journalRows: Number(r.ins), entities: Number(r.entities) };
  } finally {
    await client.end().catch(() => undefined);
  }
}

function postgresStats(before: PostgresCounters, after: PostgresCounters, requests: number): PostgresLoadStats {
  const commits = after.commits - before.commits;
  const journalRows = after.journalRows - before.journalRows;
  const entities = after.entities - before.entities;
  const writeBatches = Math.max(1, commits - entities - 1);
  return {
    commits,
    journalRows,
    entities,
    writeBatches,
    meanBatchSize: round2(journalRows / writeBatches),
    commitsPerRequest: requests > 0 ? Math.round((commits / requests) * 1000) / 1000 : 0,
  };
}

// ---- report -------------------------------------------------------------------------------------

const BAR = {
  text: "AddItem through the proxy on the fsync-safe SQLite store, 64 concurrent callers over 1,000 carts: at least 60% of the bare-gRPC floor's throughput measured in the same run, p99 under 50 ms, zero errors",
  minThroughputRatio: 0.6,
  maxP99Ms: 50,
};

const POSTGRES_BAR = {
  text: "on PostgreSQL (local server, default durability) AddItem with 64 concurrent callers over 1,000 carts reaches at least 70% of the SQLite store's throughput in the same run",
  minThroughputRatio: 0.7,
};

const GETCART_BAR = {
  text: "HTTP/JSON GetCart sustains at least 80% of the gRPC path's throughput at 64 concurrent callers",
  minThroughputRatio: 0.8,
};

const ratio = (a: ScenarioResult | undefined, b: ScenarioResult | undefined): number | null =>
  a && b && b.throughput > 0 ? Math.round((a.throughput / b.throughput) * 1000) / 1000 : null;

function report(p: Params, results: ScenarioResult[], busyBeforeStartPercent: number | null) {
  const by = (s: Scenario) => results.find((r) => r.scenario === s);
  const floor = by("floor");
  const sqlite = by("proxy-sqlite");
  const ratios = {
    proxySqliteVsFloor: ratio(sqlite, floor),
    proxyMemoryVsFloor: ratio(by("proxy-memory"), floor),
    proxyPostgresVsFloor: ratio(by("proxy-postgres"), floor),
    proxyPostgresVsSqlite: ratio(by("proxy-postgres"), sqlite),
    getCartHttpVsGrpc: ratio(by("getcart-http"), by("getcart-grpc")),
  };
  const getCartGrpc = by("getcart-grpc");
  const getCartHttp = by("getcart-http");
  const postgres = by("proxy-postgres");
  const postgresBarApplies = postgres !== undefined && sqlite !== undefined && p.durability === "fsync";
  const cpu = cpus();
  const barApplies = floor !== undefined && sqlite !== undefined && p.durability === "fsync";
  return {
    machine: {
      cpus: cpu.length,
      model: cpu[0]?.model ?? "unknown",
      node: process.version,
      platform: `${process.platform}-${process.arch}`,
      busyBeforeStartPercent,
    },
    params: {
      scenarios: p.scenarios,
      concurrency: p.concurrency,
      keys: p.keys,
      durationS: p.durationS,
      warmupS: p.warmupS,
      channels: p.channels,
      threads: p.threads,
      repeat: p.repeat,
      keyOrder: p.keyOrder,
      uf: chosenUf ?? (p.uf === "auto" ? null : p.uf),
      durability: p.durability,
      proxyNodeArgs: p.proxyNodeArgs,
      profiled: p.profileDir !== undefined,
    },
    results,
    ratios,
    bar: barApplies
      ? {
          text: BAR.text,
          throughputRatioOk: ratios.proxySqliteVsFloor !== null && ratios.proxySqliteVsFloor >= BAR.minThroughputRatio,
          p99Ok: sqlite.p99Ms < BAR.maxP99Ms,
          zeroErrors: (sqlite.repeats?.errors ?? sqlite.errors) === 0,
          met:
            ratios.proxySqliteVsFloor !== null &&
            ratios.proxySqliteVsFloor >= BAR.minThroughputRatio &&
            sqlite.p99Ms < BAR.maxP99Ms &&
            (sqlite.repeats?.errors ?? sqlite.errors) === 0 &&
            p.concurrency === 64 &&
            p.keys === 1000 &&
            p.proxyNodeArgs.length === 0 &&
            p.profileDir === undefined,
        }
      : null,
    postgresBar: postgresBarApplies
      ? {
          text: POSTGRES_BAR.text,
          ratio: ratios.proxyPostgresVsSqlite,
          zeroErrors: (postgres.repeats?.errors ?? postgres.errors) === 0,
          met:
            ratios.proxyPostgresVsSqlite !== null &&
            ratios.proxyPostgresVsSqlite >= POSTGRES_BAR.minThroughputRatio &&
            p.concurrency === 64 &&
            p.keys === 1000 &&
            p.proxyNodeArgs.length === 0 &&
            p.profileDir === undefined,
        }
      : null,
    getCartBar:
      getCartGrpc && getCartHttp
        ? {
            text: GETCART_BAR.text,
            ratio: ratios.getCartHttpVsGrpc,
            zeroErrors: (getCartGrpc.repeats?.errors ?? getCartGrpc.errors) === 0 && (getCartHttp.repeats?.errors ?? getCartHttp.errors) === 0,
            met:
              ratios.getCartHttpVsGrpc !== null &&
              ratios.getCartHttpVsGrpc >= GETCART_BAR.minThroughputRatio &&
              (getCartGrpc.repeats?.errors ?? getCartGrpc.errors) === 0 &&
              (getCartHttp.repeats?.errors ?? getCartHttp.errors) === 0 &&
              p.concurrency === 64 &&
              p.proxyNodeArgs.length === 0 &&
              p.profileDir === undefined,
          }
        : null,
  };
}

function line(r: ScenarioResult): string {
  const cpu = Object.entries(r.cpuSeconds)
    .map(([k, v]) => `${k} ${v}s (${r.cpuMicrosPerRequest[k] ?? "?"} µs/req)`)
    .join(", ");
  const m = r.machineCpu ? `; machine busy ${r.machineCpu.busySeconds}s of ${r.machineCpu.wallSeconds}s wall (others ${r.machineCpu.othersSeconds}s, iowait ${r.machineCpu.iowaitSeconds}s, steal ${r.machineCpu.stealSeconds}s)` : "";
  return `${r.scenario}: ${r.throughput} req/s, p50 ${r.p50Ms} ms, p90 ${r.p90Ms} ms, p99 ${r.p99Ms} ms, max ${r.maxMs} ms, ok ${r.ok}, errors ${r.errors}; cpu ${cpu}${m}`;
}

/** The median run by throughput (the lower one of an even count), with every run's numbers. */
function medianRun(all: ScenarioResult[]): ScenarioResult {
  if (all.length === 1) return all[0]!;
  const sorted = [...all].sort((a, b) => a.throughput - b.throughput);
  const median = sorted[Math.floor((sorted.length - 1) / 2)]!;
  return {
    ...median,
    repeats: {
      throughputs: all.map((r) => r.throughput),
      p99Ms: all.map((r) => r.p99Ms),
      errors: all.reduce((n, r) => n + r.errors, 0),
    },
  };
}

async function main(): Promise<void> {
  const p = parseParams(process.argv.slice(2));
  killChildrenOnSignal();
  if (p.profileDir) mkdirSync(p.profileDir, { recursive: true });
  // A shared machine skews every number: say how busy it was before we started.
  const before = machineCpu();
  await sleep(1000);
  const after = machineCpu();
  const busyBeforeStart = before && after ? Math.round(((after.busy - before.busy) / cpus().length) * 100) : null;
  if (busyBeforeStart !== null) {
    progress(`machine busy before start: ${busyBeforeStart}% of ${cpus().length} CPUs${busyBeforeStart > 10 ? " (other work is running: numbers will be noisy)" : ""}`);
  }
  const runs = new Map<Scenario, ScenarioResult[]>(p.scenarios.map((s) => [s, []]));
  // Repeats are interleaved (floor, proxy, …, floor, proxy, …) so slow drifts of a shared machine
  // hit every scenario alike; each scenario then reports its median run by throughput.
  for (let round = 1; round <= p.repeat; round++) {
    for (const scenario of p.scenarios) {
      const of = p.repeat > 1 ? ` (run ${round} of ${p.repeat})` : "";
      progress(`${scenario}${of}: ${p.concurrency} callers, ${p.keys} carts, ${p.warmupS} s warm-up + ${p.durationS} s, ${p.channels} channel(s), ${p.threads} generator thread(s)`);
      const result = scenario === "floor" ? await runFloor(p) : await runProxy(p, scenario);
      progress(line(result));
      for (const e of result.errorSamples) progress(`  error: ${e}`);
      const busyElsewhere = result.machineCpu ? result.machineCpu.othersSeconds / (result.machineCpu.wallSeconds * cpus().length) : 0;
      if (busyElsewhere > 0.1) {
        progress(`  warning: other processes used ${Math.round(busyElsewhere * 100)}% of the machine's CPU during this run; its numbers are not reliable`);
      }
      runs.get(scenario)!.push(result);
    }
  }
  const results = p.scenarios.map((s) => medianRun(runs.get(s)!));
  const doc = report(p, results, busyBeforeStart);
  if (doc.getCartBar) {
    const g = doc.getCartBar;
    progress(`getcart http/grpc = ${g.ratio} (bar ≥ ${GETCART_BAR.minThroughputRatio}), zero errors ${g.zeroErrors}: bar ${g.met ? "met" : "NOT met"}`);
  }
  const json = `${JSON.stringify(doc, null, 2)}\n`;
  process.stdout.write(json);
  if (p.jsonOut) {
    writeFileSync(p.jsonOut, json);
    progress(`wrote ${p.jsonOut}`);
  }
  if (p.profileDir) progress(`CPU profiles in ${p.profileDir}/<scenario>-{proxy,uf}/ (CPU.*.<pid>.0.*.cpuprofile is the main thread); summarize with: npx tsx bench/src/profile-summary.ts FILE.cpuprofile`);
}

main().catch((e: unknown) => {
  progress(`failed: ${(e as Error).stack ?? String(e)}`);
  process.exitCode = 1;
});
