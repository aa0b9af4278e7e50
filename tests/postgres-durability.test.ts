// Invariant 2, "acknowledged means durable", on the PostgreSQL store against real processes: the
// proxy (`cloudstate proxy --store postgres://…`) is killed with -9, PostgreSQL is stopped and
// frozen under load, two proxies write the same entities, and the user function is killed with -9.
// After each, every acknowledged write must be in the journal exactly once, and every journal's
// sequence numbers must be 1..n. One throwaway PostgreSQL server serves the file; each test gets
// a database of its own.
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, test } from "node:test";
import { status, type ServiceError } from "@grpc/grpc-js";
import { CartClient } from "./support/cart-client.js";
import { assertContiguous } from "./support/journal.js";
import { createDatabase, readPostgresJournal } from "./support/postgres-journal.js";
import { pollUntil, startExampleUserFunctionProcess, startProxyProcess, startRawUserFunctionProcess, stopAll, type TrackedProcess } from "./support/processes.js";
import { cartScript, counted, differences, expectedView, readView, runScript } from "./support/cart-projection.js";
import { eventually, GrpcClient } from "./support/grpc-client.js";
import { startRawCartUserFunction, type RawUserFunction } from "./fixtures/raw-cart-user-function.js";
import { startTestPostgres, type TestPostgres } from "../packages/proxy/src/store/postgres/test-server.js";

interface Failure {
  readonly code: status;
  readonly details: string;
  /** How long the failed call took. */
  readonly ms: number;
  /** When it failed (Date.now()). */
  readonly at: number;
}

interface Totals {
  /** Products whose AddItem was acknowledged, per cart. */
  readonly acked: Map<string, Set<string>>;
  /** Products whose AddItem was sent (acknowledged or not), per cart. */
  readonly attempted: Map<string, Set<string>>;
}

interface Load extends Totals {
  readonly failures: Failure[];
  /** ABORTED answers that were retried. */
  aborted(): number;
  ackCount(): number;
  /** Workers finish their current call and end; resolves when all have. */
  stop(): Promise<void>;
}

interface LoadOptions {
  /** Proxy ports: the workers are spread over them round-robin. */
  readonly ports: readonly number[];
  readonly carts: readonly string[];
  readonly workers: number;
  readonly prefix: string;
  /** "stop": a worker ends at its first error; "continue": it records the error and goes on. */
  readonly onError: "stop" | "continue";
  /** Retries a call answered ABORTED (not applied, by contract) with the same product, up to 50 times. */
  readonly retryAborted?: boolean;
  readonly deadlineMs?: number;
  /** Picks the cart at random instead of in turn (more collisions between workers). */
  readonly randomCarts?: boolean;
  readonly into?: Totals;
}

/** `workers` clients, each adding distinct products (one unique id per request, quantity 1) until stop(). */
function startLoad(o: LoadOptions): Load {
  const acked = o.into?.acked ?? new Map<string, Set<string>>();
  const attempted = o.into?.attempted ?? new Map<string, Set<string>>();
  for (const c of o.carts) {
    if (!acked.has(c)) acked.set(c, new Set());
    if (!attempted.has(c)) attempted.set(c, new Set());
  }
  const failures: Failure[] = [];
  let stopped = false;
  let acks = 0;
  let aborted = 0;
  const run = async (w: number) => {
    const client = new CartClient(o.ports[w % o.ports.length]!);
    try {
      for (let n = 0; !stopped; n++) {
        const cart = o.randomCarts ? o.carts[Math.floor(Math.random() * o.carts.length)]! : o.carts[(w + n) % o.carts.length]!;
        const productId = `${o.prefix}-w${w}-${n}`;
        attempted.get(cart)!.add(productId);
        for (let attempt = 1; ; attempt++) {
          const started = Date.now();
          try {
            await client.addItem({ userId: cart, productId, name: productId, quantity: 1 }, o.deadlineMs ?? 15_000);
            acked.get(cart)!.add(productId);
            acks++;
            break;
          } catch (e) {
            const err = e as ServiceError;
            if (o.retryAborted && err.code === status.ABORTED && attempt < 50) {
              aborted++;
              await sleep(Math.floor(Math.random() * 5));
              continue;
            }
            failures.push({ code: err.code, details: err.details, ms: Date.now() - started, at: Date.now() });
            if (o.onError === "stop") return;
            await sleep(20); // do not spin while the proxy cannot serve
            break;
          }
        }
      }
    } finally {
      client.close();
    }
  };
  const running = Promise.all(Array.from({ length: o.workers }, (_, w) => run(w)));
  return {
    acked,
    attempted,
    failures,
    aborted: () => aborted,
    ackCount: () => acks,
    stop: async () => {
      stopped = true;
      await running;
    },
  };
}

const describeFailures = (failures: readonly Failure[]): string =>
  [...new Set(failures.map((f) => `${status[f.code]}: ${f.details}`))].slice(0, 3).join("; ");

/**
 * Checks the journal in PostgreSQL against what the clients saw: per cart, sequences 1..n; each
 * product at most once, with quantity 1; every acknowledged product present; nothing that was
 * never sent. Returns the journal's products per cart.
 */
async function checkJournal(url: string, load: Totals): Promise<Map<string, Set<string>>> {
  const journal = await readPostgresJournal(url);
  assertContiguous(journal);
  const out = new Map<string, Set<string>>();
  for (const [cart, attempted] of load.attempted) {
    const rows = journal.get(cart) ?? [];
    const products = rows.map((r) => r.productId);
    const set = new Set(products);
    assert.equal(set.size, products.length, `${cart}: a product was journaled twice`);
    for (const r of rows) {
      assert.equal(r.kind, "added");
      assert.equal(r.quantity, 1, `${cart}/${r.productId}: quantity ${r.quantity}`);
      assert.ok(attempted.has(r.productId), `${cart}: journal holds ${r.productId}, which no client sent`);
    }
    const lost = [...load.acked.get(cart)!].filter((p) => !set.has(p));
    assert.deepEqual(lost, [], `${cart}: acknowledged writes missing from the journal`);
    out.set(cart, set);
  }
  assert.deepEqual([...journal.keys()].filter((k) => !load.attempted.has(k)), [], "journal holds carts no client wrote to");
  return out;
}

/** GetCart through a proxy for each cart: exactly the journal's products, each with quantity 1. */
async function checkCarts(port: number, journaled: Map<string, Set<string>>): Promise<void> {
  const client = new CartClient(port);
  try {
    for (const [cart, products] of journaled) {
      const got = (await client.getCart(cart)).items.map((i) => [i.productId, i.quantity] as const);
      for (const [productId, quantity] of got) assert.equal(quantity, 1, `${cart}/${productId} has quantity ${quantity}`);
      assert.deepEqual(got.map(([p]) => p).sort(), [...products].sort(), `${cart}: the cart differs from its journal`);
    }
  } finally {
    client.close();
  }
}

const ackTotal = (t: Totals): number => [...t.acked.values()].reduce((n, s) => n + s.size, 0);
const cartsNamed = (prefix: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

/** Waits until `workers` calls in a row succeed through `port` (new products, recorded in `totals`). */
async function waitUntilServing(port: number, cart: string, prefix: string, totals: Totals, timeoutMs: number): Promise<number> {
  const started = Date.now();
  const client = new CartClient(port);
  totals.acked.set(cart, totals.acked.get(cart) ?? new Set());
  totals.attempted.set(cart, totals.attempted.get(cart) ?? new Set());
  try {
    for (let n = 0; ; n++) {
      const productId = `${prefix}-probe-${n}`;
      totals.attempted.get(cart)!.add(productId);
      try {
        await client.addItem({ userId: cart, productId, name: productId, quantity: 1 }, 5_000);
        totals.acked.get(cart)!.add(productId);
        return Date.now() - started;
      } catch (e) {
        if (Date.now() - started > timeoutMs) throw new Error(`not serving after ${timeoutMs} ms: ${(e as ServiceError).details}`);
        await sleep(100);
      }
    }
  } finally {
    client.close();
  }
}

describe("durability on the PostgreSQL store (proxy and user function as processes)", { concurrency: false }, () => {
  let server: TestPostgres;
  const ufs: RawUserFunction[] = [];
  let databases = 0;
  const freshDatabase = () => createDatabase(server.url, `durability_${++databases}`);

  before(async () => {
    server = await startTestPostgres();
  });
  after(async () => {
    await stopAll();
    await Promise.all(ufs.map((uf) => uf.close()));
    await server?.destroy();
  });

  test("kill -9 of the proxy during concurrent AddItems to many carts loses no acknowledged write and doubles none (3 cycles)", { timeout: 60_000 }, async (t) => {
    const url = await freshDatabase();
    const uf = await startRawCartUserFunction();
    ufs.push(uf);
    const carts = cartsNamed("k", 40);
    const totals: Totals = { acked: new Map(), attempted: new Map() };
    let proxy = await startProxyProcess({ ufPort: uf.port, store: url });
    for (let cycle = 1; cycle <= 3; cycle++) {
      const load = startLoad({ ports: [proxy.port], carts, workers: 24, prefix: `c${cycle}`, onError: "stop", into: totals });
      const started = Date.now();
      try {
        await pollUntil(() => Date.now() - started >= 1_000 && load.ackCount() >= 100, () => `acks in cycle ${cycle} (have ${load.ackCount()})`, {
          timeoutMs: 15_000,
        });
        proxy.kill("SIGKILL");
      } finally {
        await load.stop();
      }
      assert.equal(await proxy.exited, null);
      assert.equal(proxy.signal(), "SIGKILL");
      const early = load.failures.filter((f) => f.code !== status.UNAVAILABLE);
      assert.deepEqual(early, [], "calls cut by the kill fail with UNAVAILABLE, and no call fails before it");
      t.diagnostic(`cycle ${cycle}: ${load.ackCount()} acknowledged, ${load.failures.length} cut by the kill`);

      const journaled = await checkJournal(url, totals);
      proxy = await startProxyProcess({ ufPort: uf.port, store: url });
      await checkCarts(proxy.port, journaled);
    }
    proxy.kill("SIGTERM");
    assert.equal(await proxy.exited, 0);
    assert.ok(ackTotal(totals) >= 300, `expected many acknowledged writes over 3 cycles, got ${ackTotal(totals)}`);
  });

  test("PostgreSQL stopped, then frozen, under load: calls fail fast with UNAVAILABLE, the proxy stays up and recovers by itself", { timeout: 60_000 }, async (t) => {
    const url = await freshDatabase();
    const uf = await startRawCartUserFunction();
    ufs.push(uf);
    const carts = cartsNamed("d", 20);
    const totals: Totals = { acked: new Map(), attempted: new Map() };
    const proxy = await startProxyProcess({ ufPort: uf.port, store: url });

    // 1. Shutdown: connections are refused, so every call fails at once.
    let load = startLoad({ ports: [proxy.port], carts, workers: 16, prefix: "stop", onError: "continue", into: totals });
    let outage: { from: number; to: number };
    try {
      await pollUntil(() => load.ackCount() >= 100, () => `100 acks (have ${load.ackCount()})`, { timeoutMs: 15_000 });
      assert.equal(load.failures.length, 0, `no call may fail while PostgreSQL runs: ${describeFailures(load.failures)}`);
      const from = Date.now();
      await server.stop();
      await sleep(1_500);
      outage = { from, to: Date.now() };
      assert.ok(proxy.running(), "the proxy stays up while PostgreSQL is down");
      await server.restart();
    } finally {
      await load.stop();
    }
    let during = load.failures.filter((f) => f.at >= outage.from && f.at <= outage.to);
    assert.ok(during.length > 0, "calls made while PostgreSQL is down must fail");
    for (const f of load.failures) assert.equal(f.code, status.UNAVAILABLE, `${status[f.code]} ${f.details}`);
    let slowest = Math.max(...load.failures.map((f) => f.ms));
    assert.ok(slowest < 5_000, `a failing call took ${slowest} ms`);
    t.diagnostic(`stop(): ${load.ackCount()} acknowledged, ${load.failures.length} failed (slowest ${slowest} ms): ${describeFailures(load.failures)}`);

    // The same proxy serves again, and keeps doing so without errors.
    let recovered = await waitUntilServing(proxy.port, carts[0]!, "after-stop", totals, 15_000);
    t.diagnostic(`serving again ${recovered} ms after restart()`);
    load = startLoad({ ports: [proxy.port], carts, workers: 16, prefix: "after-stop", onError: "continue", into: totals });
    await sleep(1_000);
    await load.stop();
    assert.deepEqual(load.failures.map((f) => `${status[f.code]}: ${f.details}`), [], "no call fails once PostgreSQL is back");
    assert.ok(load.ackCount() > 50, `acks after recovery: ${load.ackCount()}`);
    await checkJournal(url, totals);

    // 2. Frozen server (SIGSTOP): connections stay open and nothing answers. The store's timeouts
    // (connect 3 s, statement 5 s + 1 s) bound each call.
    load = startLoad({ ports: [proxy.port], carts, workers: 16, prefix: "pause", onError: "continue", into: totals });
    try {
      await pollUntil(() => load.ackCount() >= 100, () => `100 acks (have ${load.ackCount()})`, { timeoutMs: 15_000 });
      const from = Date.now();
      server.pause();
      await sleep(8_000);
      outage = { from, to: Date.now() };
      assert.ok(proxy.running(), "the proxy stays up while PostgreSQL is frozen");
      server.resume();
    } finally {
      server.resume();
      await load.stop();
    }
    during = load.failures.filter((f) => f.at >= outage.from && f.at <= outage.to);
    assert.ok(during.length > 0, "calls made while PostgreSQL is frozen must fail");
    for (const f of load.failures) assert.equal(f.code, status.UNAVAILABLE, `${status[f.code]} ${f.details}`);
    slowest = Math.max(...load.failures.map((f) => f.ms));
    assert.ok(slowest < 8_000, `a failing call took ${slowest} ms`);
    t.diagnostic(`pause(): ${load.ackCount()} acknowledged, ${load.failures.length} failed (slowest ${slowest} ms): ${describeFailures(load.failures)}`);

    recovered = await waitUntilServing(proxy.port, carts[1]!, "after-pause", totals, 15_000);
    t.diagnostic(`serving again ${recovered} ms after resume()`);
    load = startLoad({ ports: [proxy.port], carts, workers: 16, prefix: "after-pause", onError: "continue", into: totals });
    await sleep(1_000);
    await load.stop();
    assert.deepEqual(load.failures.map((f) => `${status[f.code]}: ${f.details}`), [], "no call fails once PostgreSQL answers again");

    const journaled = await checkJournal(url, totals);
    await checkCarts(proxy.port, journaled);
    assert.ok(proxy.running());
    proxy.kill("SIGTERM");
    assert.equal(await proxy.exited, 0);
  });

  test("two proxies on one PostgreSQL writing the same carts: no fork, no duplicate, no gap; losers get ABORTED", { timeout: 60_000 }, async (t) => {
    const url = await freshDatabase();
    const uf = await startRawCartUserFunction();
    ufs.push(uf);
    const [a, b] = await Promise.all([startProxyProcess({ ufPort: uf.port, store: url }), startProxyProcess({ ufPort: uf.port, store: url })]);
    const carts = cartsNamed("s", 6);
    const load = startLoad({ ports: [a.port, b.port], carts, workers: 16, prefix: "two", onError: "continue", retryAborted: true, randomCarts: true });
    try {
      await sleep(3_000);
    } finally {
      await load.stop();
    }
    t.diagnostic(`${load.ackCount()} acknowledged, ${load.aborted()} ABORTED answers retried, ${load.failures.length} failed`);
    assert.deepEqual(load.failures.map((f) => `${status[f.code]}: ${f.details}`), [], "no call fails other than with ABORTED (retried)");
    assert.ok(load.aborted() > 0, "the two proxies must have raced for the same entity at least once");
    assert.ok(load.ackCount() >= 100, `acks: ${load.ackCount()}`);
    const journaled = await checkJournal(url, load);
    const journaledTotal = [...journaled.values()].reduce((n, s) => n + s.size, 0);
    // Every ABORTED call was retried until acknowledged: the journal is exactly the acknowledged writes.
    assert.equal(journaledTotal, ackTotal(load), "the journal holds exactly the acknowledged writes");
    for (const p of [a, b]) p.kill("SIGTERM");
    assert.deepEqual(await Promise.all([a.exited, b.exited]), [0, 0]);
  });

  test("two proxies on one PostgreSQL with an event-log projection: one consumes at a time; after a kill -9 of it, the other takes over and the view is exact", { timeout: 90_000 }, async (t) => {
    const url = await freshDatabase();
    const uf = await startExampleUserFunctionProcess("shopping-cart");
    const start = () =>
      startProxyProcess({
        ufPort: uf.port,
        store: url,
        // A short lease so that the take-over happens within the test; few messages at a time so
        // that the kill lands mid-consumption.
        env: { CLOUDSTATE_EVENTING_LEASE_MS: "1500", CLOUDSTATE_EVENTING_MAX_IN_FLIGHT: "4" },
      });
    const proxies = await Promise.all([start(), start()]);
    const metricsPorts = proxies.map((p) => p.metricsPort!);
    const delivered = async (metricsPort: number) => {
      const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      return Number(/cloudstate_eventing_messages_total\{group="com\.example\.shoppingcart\.CartEvents",source="event-log:shopping-cart",outcome="delivered"\} (\d+)/.exec(text)?.[1] ?? 0);
    };
    const script = cartScript(300, 10, "pg");
    const expected = expectedView(script);
    // Each cart is written through one proxy (a worker runs a cart's commands in order).
    const writers = Array.from({ length: 16 }, (_, i) => new GrpcClient(proxies[i % 2]!.port));
    await runScript(writers, script);
    for (const w of writers) w.close();
    await eventually(async () => (await delivered(metricsPorts[0]!)) + (await delivered(metricsPorts[1]!)) >= 300, () => "the projection to make progress", 30_000);
    const counts = [await delivered(metricsPorts[0]!), await delivered(metricsPorts[1]!)];
    t.diagnostic(`delivered before the kill: ${counts.join(" / ")}`);
    assert.equal(counts.filter((n) => n > 0).length, 1, `one consumer per (source, group): only one proxy delivers (${counts.join(" / ")})`);
    const active = counts[0]! > 0 ? 0 : 1;
    const survivor = 1 - active;
    proxies[active]!.kill("SIGKILL");
    await proxies[active]!.exited;
    const client = new GrpcClient(proxies[survivor]!.port);
    try {
      const before = counted(await readView(client));
      assert.ok(before < 3_000n, `the kill must land mid-consumption (${before} counted)`);
      let view = await readView(client);
      await eventually(
        async () => differences((view = await readView(client)), expected).length === 0,
        () => `the view to match after the take-over (counted ${counted(view)} of 3000):\n${differences(view, expected).slice(0, 5).join("\n")}`,
        60_000,
      );
      const tookOver = await delivered(metricsPorts[survivor]!);
      t.diagnostic(`the survivor delivered ${tookOver} events after the take-over (${before} were counted at the kill)`);
      assert.ok(tookOver >= 3_000 - Number(before), "the survivor delivered every event not yet counted");
    } finally {
      client.close();
    }
    proxies[survivor]!.kill("SIGTERM");
    assert.equal(await proxies[survivor]!.exited, 0);
    uf.kill("SIGTERM");
  });

  test("kill -9 of the user function under load: callers get UNAVAILABLE, the proxy serves again once it is back, nothing acknowledged is lost", { timeout: 60_000 }, async (t) => {
    const url = await freshDatabase();
    let uf: TrackedProcess = await startRawUserFunctionProcess({ env: { REPLY_DELAY_MS: "2" } });
    const proxy = await startProxyProcess({ ufPort: uf.port, store: url });
    const carts = cartsNamed("f", 20);
    const totals: Totals = { acked: new Map(), attempted: new Map() };
    const load = startLoad({ ports: [proxy.port], carts, workers: 12, prefix: "uf", onError: "continue", into: totals });
    let killedAt = 0;
    let ackedBeforeRestart = 0;
    try {
      await pollUntil(() => load.ackCount() >= 100, () => `100 acks (have ${load.ackCount()})`, { timeoutMs: 15_000 });
      assert.equal(load.failures.length, 0, `no call may fail before the kill: ${describeFailures(load.failures)}`);
      killedAt = Date.now();
      uf.kill("SIGKILL");
      assert.equal(await uf.exited, null);
      await sleep(1_000);
      ackedBeforeRestart = load.ackCount();
      uf = await startRawUserFunctionProcess({ port: uf.port });
      const acksAtRestart = load.ackCount();
      await pollUntil(() => load.ackCount() >= acksAtRestart + 200, () => `200 acks after the restart (have ${load.ackCount() - acksAtRestart})`, {
        timeoutMs: 20_000,
      });
    } finally {
      await load.stop();
    }
    assert.ok(load.failures.length > 0, "calls in flight or made while the user function is down must fail");
    for (const f of load.failures) {
      assert.ok(f.at >= killedAt, "no call fails before the kill");
      assert.equal(f.code, status.UNAVAILABLE, `${status[f.code]} ${f.details}`);
    }
    const slowest = Math.max(...load.failures.map((f) => f.ms));
    assert.ok(slowest < 5_000, `a failing call took ${slowest} ms`);
    t.diagnostic(`${ackedBeforeRestart} acknowledged before the restart, ${load.ackCount()} in all, ${load.failures.length} failed (slowest ${slowest} ms): ${describeFailures(load.failures)}`);
    const journaled = await checkJournal(url, totals);
    await checkCarts(proxy.port, journaled);
    proxy.kill("SIGTERM");
    assert.equal(await proxy.exited, 0);
    uf.kill("SIGKILL");
  });
});
