// The load generator: a closed loop of `concurrency` callers sending ShoppingCart/AddItem (or
// GetCart) over grpc-js, or GetCart as HTTP/1.1 `GET /carts/{user_id}` over node's http module
// with a keep-alive agent. gRPC requests are encoded once up front and passed through identity
// serializers, so the generator spends its time in grpc-js, not in protobuf; replies are not
// decoded (HTTP bodies are read, not parsed).
import * as http from "node:http";
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  AddLineItemSchema,
  CartSchema,
  GetShoppingCartSchema,
} from "../../examples/shopping-cart/src/gen/com/example/shoppingcart/shoppingcart_pb.js";

export const ADD_ITEM_PATH = "/com.example.shoppingcart.ShoppingCart/AddItem";
export const GET_CART_PATH = "/com.example.shoppingcart.ShoppingCart/GetCart";

/**
 * What each caller sends: `add-item` (gRPC AddItem, the default), `get-cart-grpc` (gRPC GetCart)
 * or `get-cart-http` (HTTP/1.1 `GET /carts/{user_id}`, the proxy's transcoded route).
 */
export type LoadMode = "add-item" | "get-cart-grpc" | "get-cart-http";

export interface LoadOptions {
  /** host:port of the server. */
  readonly target: string;
  /** Callers, each with one request in flight at a time. Default 64. */
  readonly concurrency?: number;
  /** Distinct carts (user ids). Default 1000. */
  readonly keys?: number;
  /** Measured seconds. Default 10. */
  readonly durationS?: number;
  /** Seconds of load before measuring (connections, JIT, entity start-up). Default 2. */
  readonly warmupS?: number;
  /** Client channels (HTTP/2 connections); callers are spread over them. Default 1. */
  readonly channels?: number;
  /** Distinct product ids. Default 4. */
  readonly products?: number;
  /** How a request picks its cart. Default "round-robin". */
  readonly keyOrder?: "round-robin" | "random";
  /** Worker threads the callers are spread over (the generator's cores). Default 1. */
  readonly threads?: number;
  /** Per-request deadline. Default 30 s. */
  readonly deadlineMs?: number;
  /** What to send. Default "add-item". */
  readonly mode?: LoadMode;
}

export interface LatencyStats {
  readonly count: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly meanMs: number;
}

export interface LoadResult extends LatencyStats {
  /** ok requests per measured second. */
  readonly throughput: number;
  readonly ok: number;
  /** Failed requests at any time of the run (warm-up and measured window alike): the bar is zero. */
  readonly errors: number;
  /** The first few distinct error messages (status code name: details). */
  readonly errorSamples: string[];
  readonly measuredSeconds: number;
  /** Every request that finished, warm-up and drain included (for CPU cost per request). */
  readonly completed: number;
}

const MAX_ERROR_SAMPLES = 5;

/** The user id of cart i. */
export const cartId = (i: number): string => `cart-${i}`;

/**
 * The p-th percentile (0 < p ≤ 100) of ascending-sorted values, nearest-rank: the smallest value
 * such that at least p% of the values are ≤ it. NaN for an empty array.
 */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (!(p > 0 && p <= 100)) throw new RangeError(`percentile must be in (0, 100], got ${p}`);
  const n = sorted.length;
  if (n === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * n);
  return sorted[Math.min(n, Math.max(1, rank)) - 1]!;
}

/** Percentiles, max and mean of latencies given in nanoseconds, reported in milliseconds. */
export function latencyStats(latenciesNs: ArrayLike<number>): LatencyStats {
  const sorted = Float64Array.from(latenciesNs).sort();
  const n = sorted.length;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += sorted[i]!;
  const ms = (ns: number) => (Number.isNaN(ns) ? 0 : round3(ns / 1e6));
  return {
    count: n,
    p50Ms: ms(percentile(sorted, 50)),
    p90Ms: ms(percentile(sorted, 90)),
    p99Ms: ms(percentile(sorted, 99)),
    maxMs: ms(n === 0 ? Number.NaN : sorted[n - 1]!),
    meanMs: ms(n === 0 ? Number.NaN : sum / n),
  };
}

const round3 = (x: number): number => Math.round(x * 1000) / 1000;

/** Every (cart, product) request encoded once: index cart * products + product. */
export function encodeRequests(keys: number, products: number): Buffer[] {
  const out: Buffer[] = [];
  for (let k = 0; k < keys; k++) {
    for (let p = 0; p < products; p++) {
      const bytes = toBinary(
        AddLineItemSchema,
        create(AddLineItemSchema, { userId: cartId(k), productId: `product-${p}`, name: `Product ${p}`, quantity: 1 }),
      );
      out.push(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    }
  }
  return out;
}

/** GetCart of every cart encoded once: index cart. */
export function encodeGetCartRequests(keys: number): Buffer[] {
  const out: Buffer[] = [];
  for (let k = 0; k < keys; k++) {
    const bytes = toBinary(GetShoppingCartSchema, create(GetShoppingCartSchema, { userId: cartId(k) }));
    out.push(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  }
  return out;
}

/** The HTTP path of cart i's GetCart (`GET /carts/{user_id}`). */
export const getCartHttpPath = (i: number): string => `/carts/${encodeURIComponent(cartId(i))}`;

const identity = (b: Buffer): Buffer => b;

/** Opens `channels` clients on separate HTTP/2 connections and waits until each is connected. */
export async function connect(target: string, channels: number, timeoutMs = 10_000): Promise<grpc.Client[]> {
  const clients: grpc.Client[] = [];
  for (let i = 0; i < channels; i++) {
    clients.push(
      new grpc.Client(target, grpc.credentials.createInsecure(), {
        // Without a local pool, clients with equal options share one subchannel (one connection).
        "grpc.use_local_subchannel_pool": 1,
      }),
    );
  }
  try {
    await Promise.all(
      clients.map(
        (c) =>
          new Promise<void>((resolve, reject) =>
            c.waitForReady(Date.now() + timeoutMs, (err) => (err ? reject(err) : resolve())),
          ),
      ),
    );
  } catch (e) {
    for (const c of clients) c.close();
    throw new Error(`could not connect to ${target}: ${(e as Error).message}`, { cause: e });
  }
  return clients;
}

/** What one thread's callers measured; merged across threads by runLoad. */
export interface CallerTally {
  /** Latencies (ns) of the ok requests that completed inside the measured window. */
  readonly latencies: Float64Array;
  readonly ok: number;
  readonly errors: number;
  readonly errorSamples: string[];
  /** Every request that finished, warm-up and drain included. */
  readonly completed: number;
}

/** One thread's share of the load; measureFrom/measureTo are process.hrtime.bigint() instants. */
export interface CallerPlan {
  readonly target: string;
  readonly concurrency: number;
  readonly channels: number;
  readonly keys: number;
  readonly products: number;
  readonly random: boolean;
  /** Where round-robin starts, so threads do not walk the carts in lockstep. */
  readonly firstKey: number;
  readonly deadlineMs: number;
  /** What to send; absent means "add-item". */
  readonly mode?: LoadMode;
}

/** Connected callers, waiting for the instants at which to start, measure and stop. */
export interface PreparedCallers {
  run(measureFrom: bigint, measureTo: bigint): Promise<CallerTally>;
  close(): void;
}

export function prepareCallers(plan: CallerPlan): Promise<PreparedCallers> {
  return plan.mode === "get-cart-http" ? prepareHttpCallers(plan) : prepareGrpcCallers(plan);
}

/** The growing array of measured latencies plus the counters every caller updates. */
class Tally {
  latencies = new Float64Array(1 << 16);
  ok = 0;
  errors = 0;
  completed = 0;
  readonly errorSamples: string[] = [];

  constructor(
    private readonly measureFrom: bigint,
    private readonly measureTo: bigint,
  ) {}

  success(sent: bigint, done: bigint): void {
    this.completed++;
    if (done < this.measureFrom || done >= this.measureTo) return;
    if (this.ok === this.latencies.length) {
      const grown = new Float64Array(this.latencies.length * 2);
      grown.set(this.latencies);
      this.latencies = grown;
    }
    this.latencies[this.ok++] = Number(done - sent);
  }

  failure(text: string): void {
    this.completed++;
    this.errors++;
    if (this.errorSamples.length < MAX_ERROR_SAMPLES && !this.errorSamples.includes(text)) this.errorSamples.push(text);
  }

  result(): CallerTally {
    const { ok, errors, errorSamples, completed } = this;
    return { latencies: this.latencies.slice(0, ok), ok, errors, errorSamples, completed };
  }
}

/** Runs `concurrency` closed-loop callers until measureTo; send(done) issues one request. */
async function closedLoop(
  concurrency: number,
  measureTo: bigint,
  send: (caller: number, done: () => void) => void,
): Promise<void> {
  await Promise.all(
    Array.from(
      { length: concurrency },
      (_, i) =>
        new Promise<void>((resolve) => {
          const next = (): void => {
            if (process.hrtime.bigint() >= measureTo) resolve();
            else send(i, next);
          };
          next();
        }),
    ),
  );
}

/** Callers of HTTP/1.1 `GET /carts/{user_id}` over one keep-alive agent (maxSockets = concurrency). */
async function prepareHttpCallers(plan: CallerPlan): Promise<PreparedCallers> {
  const { concurrency, keys, random, deadlineMs } = plan;
  const colon = plan.target.lastIndexOf(":");
  const host = plan.target.slice(0, colon);
  const port = Number(plan.target.slice(colon + 1));
  const paths = Array.from({ length: keys }, (_, k) => getCartHttpPath(k));
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency, maxFreeSockets: concurrency });
  let next = plan.firstKey;
  const pick = (): string => paths[random ? Math.floor(Math.random() * keys) : next++ % keys]!;

  const run = async (measureFrom: bigint, measureTo: bigint): Promise<CallerTally> => {
    const tally = new Tally(measureFrom, measureTo);
    await closedLoop(concurrency, measureTo, (_caller, done) => {
      const sent = process.hrtime.bigint();
      let finished = false;
      const finish = (error: string | undefined): void => {
        if (finished) return;
        finished = true;
        if (error === undefined) tally.success(sent, process.hrtime.bigint());
        else tally.failure(error);
        done();
      };
      const req = http.request({ agent, host, port, path: pick(), method: "GET", timeout: deadlineMs }, (res) => {
        const status = res.statusCode ?? 0;
        if (status === 200) {
          res.on("data", () => undefined);
        } else {
          let body = "";
          res.setEncoding("utf8");
          res.on("data", (chunk: string) => {
            if (body.length < 200) body += chunk;
          });
          res.once("end", () => finish(`HTTP ${status}: ${body.slice(0, 200)}`));
        }
        res.once("end", () => finish(undefined));
        res.once("error", (e) => finish(`response: ${e.message}`));
      });
      req.once("timeout", () => req.destroy(new Error(`no reply within ${deadlineMs} ms`)));
      req.once("error", (e) => finish(`request: ${e.message}`));
      req.end();
    });
    return tally.result();
  };
  return { run, close: () => agent.destroy() };
}

async function prepareGrpcCallers(plan: CallerPlan): Promise<PreparedCallers> {
  const { concurrency, channels, keys, products, random, deadlineMs } = plan;
  const getCart = plan.mode === "get-cart-grpc";
  const path = getCart ? GET_CART_PATH : ADD_ITEM_PATH;
  const requests = getCart ? encodeGetCartRequests(keys) : encodeRequests(keys, products);
  const clients = await connect(plan.target, channels);
  let next = plan.firstKey;
  const pick = (): Buffer => {
    const k = random ? Math.floor(Math.random() * keys) : next++ % keys;
    return getCart ? requests[k]! : requests[k * products + Math.floor(Math.random() * products)]!;
  };

  const run = async (measureFrom: bigint, measureTo: bigint): Promise<CallerTally> => {
    const tally = new Tally(measureFrom, measureTo);
    await closedLoop(concurrency, measureTo, (caller, done) => {
      const sent = process.hrtime.bigint();
      clients[caller % channels]!.makeUnaryRequest(
        path,
        identity,
        identity,
        pick(),
        new grpc.Metadata(),
        { deadline: Date.now() + deadlineMs },
        (err) => {
          if (err) tally.failure(`${grpc.status[err.code] ?? err.code}: ${err.details || err.message}`);
          else tally.success(sent, process.hrtime.bigint());
          done();
        },
      );
    });
    return tally.result();
  };
  return { run, close: () => clients.forEach((c) => c.close()) };
}

/**
 * Fills carts before a GetCart load: `itemsPerCart` AddItems (products 0..itemsPerCart-1) for each
 * of the `keys` carts, `concurrency` at a time over one connection. Not measured; throws on the
 * first error, since a GetCart load over carts that failed to fill would measure something else.
 */
export async function populateCarts(target: string, keys: number, itemsPerCart: number, concurrency = 64): Promise<number> {
  const requests = encodeRequests(keys, itemsPerCart);
  const [client] = await connect(target, 1);
  let next = 0;
  let failure: Error | undefined;
  try {
    await Promise.all(
      Array.from(
        { length: Math.min(concurrency, requests.length) },
        () =>
          new Promise<void>((resolve) => {
            const send = (): void => {
              if (failure || next >= requests.length) return resolve();
              client!.makeUnaryRequest(ADD_ITEM_PATH, identity, identity, requests[next++]!, new grpc.Metadata(), { deadline: Date.now() + 30_000 }, (err) => {
                if (err) failure ??= new Error(`populating carts: ${grpc.status[err.code] ?? err.code}: ${err.details || err.message}`);
                send();
              });
            };
            send();
          }),
      ),
    );
  } finally {
    client!.close();
  }
  if (failure) throw failure;
  return requests.length;
}

/** Line items in cart i as GetCart returns it over gRPC or HTTP/JSON: a check that the load reads real carts. */
export async function cartItems(target: string, mode: "get-cart-grpc" | "get-cart-http", i: number): Promise<number> {
  if (mode === "get-cart-grpc") {
    const [client] = await connect(target, 1);
    try {
      const reply = await new Promise<Buffer>((resolve, reject) =>
        client!.makeUnaryRequest(GET_CART_PATH, identity, identity, encodeGetCartRequests(i + 1)[i]!, (err, value) =>
          err || !value ? reject(err ?? new Error("no reply")) : resolve(value),
        ),
      );
      return fromBinary(CartSchema, reply).items.length;
    } finally {
      client!.close();
    }
  }
  const colon = target.lastIndexOf(":");
  const body = await new Promise<string>((resolve, reject) => {
    const req = http.get({ host: target.slice(0, colon), port: Number(target.slice(colon + 1)), path: getCartHttpPath(i), timeout: 10_000 }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (text += c));
      res.once("end", () => (res.statusCode === 200 ? resolve(text) : reject(new Error(`GET ${getCartHttpPath(i)}: HTTP ${res.statusCode}: ${text.slice(0, 200)}`))));
    });
    req.once("timeout", () => req.destroy(new Error("timeout")));
    req.once("error", reject);
  });
  const items = (JSON.parse(body) as { items?: unknown[] }).items;
  return Array.isArray(items) ? items.length : 0;
}

/** Merges the tallies of several threads into the reported result. */
export function summarizeLoad(tallies: readonly CallerTally[], measuredSeconds: number): LoadResult {
  const all = new Float64Array(tallies.reduce((n, t) => n + t.latencies.length, 0));
  let at = 0;
  for (const t of tallies) {
    all.set(t.latencies, at);
    at += t.latencies.length;
  }
  const ok = tallies.reduce((n, t) => n + t.ok, 0);
  const errorSamples = [...new Set(tallies.flatMap((t) => t.errorSamples))].slice(0, MAX_ERROR_SAMPLES);
  return {
    throughput: Math.round((ok / measuredSeconds) * 10) / 10,
    ...latencyStats(all),
    ok,
    errors: tallies.reduce((n, t) => n + t.errors, 0),
    errorSamples,
    measuredSeconds,
    completed: tallies.reduce((n, t) => n + t.completed, 0),
  };
}

/**
 * Runs warm-up then the measured window; resolves once every caller has stopped. With threads > 1
 * the callers (and channels) are split over worker threads, each with its own event loop, so the
 * generator can use more than one core.
 */
export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const concurrency = positiveInt("concurrency", options.concurrency ?? 64);
  const keys = positiveInt("keys", options.keys ?? 1000);
  const channels = positiveInt("channels", options.channels ?? 1);
  const products = positiveInt("products", options.products ?? 4);
  const threads = positiveInt("threads", options.threads ?? 1);
  const durationS = options.durationS ?? 10;
  const warmupS = options.warmupS ?? 2;
  if (!(durationS > 0)) throw new RangeError(`duration must be > 0 s, got ${durationS}`);
  if (!(warmupS >= 0)) throw new RangeError(`warmup must be ≥ 0 s, got ${warmupS}`);
  if (threads > concurrency) throw new RangeError(`threads (${threads}) must not exceed concurrency (${concurrency})`);
  if (threads > channels && channels !== 1) throw new RangeError(`channels (${channels}) must be 1 or at least threads (${threads})`);

  const plans: CallerPlan[] = Array.from({ length: threads }, (_, t) => ({
    target: options.target,
    concurrency: share(concurrency, threads, t),
    // Every thread needs at least its own connection.
    channels: Math.max(1, share(channels, threads, t)),
    keys,
    products,
    random: options.keyOrder === "random",
    firstKey: Math.floor((t * keys) / threads),
    deadlineMs: options.deadlineMs ?? 30_000,
    mode: options.mode ?? "add-item",
  }));
  const window = (): [bigint, bigint] => {
    const measureFrom = process.hrtime.bigint() + BigInt(Math.round(warmupS * 1e9));
    return [measureFrom, measureFrom + BigInt(Math.round(durationS * 1e9))];
  };

  if (threads === 1) {
    const callers = await prepareCallers(plans[0]!);
    try {
      return summarizeLoad([await callers.run(...window())], durationS);
    } finally {
      callers.close();
    }
  }
  const { runInThreads } = await import("./load-threads.js");
  return summarizeLoad(await runInThreads(plans, window), durationS);
}

/** The t-th of n near-equal parts of total. */
const share = (total: number, n: number, t: number): number => Math.floor(total / n) + (t < total % n ? 1 : 0);

function positiveInt(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer, got ${value}`);
  return value;
}
