// Invariant 2, "acknowledged means durable", against real processes: the proxy (`cloudstate proxy`
// on a SQLite file) and the user function are stopped, killed with -9 and restarted, and every
// acknowledged write must still be there, exactly once, with a journal that has no gap.
import assert from "node:assert/strict";
import { copyFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { status, type ServiceError } from "@grpc/grpc-js";
import Database from "better-sqlite3";
import { CartClient, rejectsWith } from "./support/cart-client.js";
import { assertContiguous, readJournal, readSnapshots } from "./support/journal.js";
import { pollUntil, startProxyProcess, startRawUserFunctionProcess, stopAll, tempDir, type TrackedProcess } from "./support/processes.js";
import { startRawCartUserFunction, type RawUserFunction } from "./fixtures/raw-cart-user-function.js";

type Items = [productId: string, quantity: number][];

const items = (cart: { items: { productId: string; quantity: number }[] }): Items => cart.items.map((i) => [i.productId, i.quantity]);

/** SIGTERM, and the exit code (a graceful stop must exit 0). */
async function stopGracefully(proc: TrackedProcess): Promise<number | null> {
  proc.kill("SIGTERM");
  return proc.exited;
}

interface Load {
  /** Products whose AddItem was acknowledged, per cart. */
  readonly acked: Map<string, Set<string>>;
  /** Products whose AddItem was sent (acknowledged or not), per cart. */
  readonly attempted: Map<string, Set<string>>;
  /** Errors received before `stop()` was called: there must be none. */
  readonly early: string[];
  /** Errors received after `stop()`. */
  readonly late: ServiceError[];
  ackCount(): number;
  /** Workers finish their current call and end; resolves when all have. */
  stop(): Promise<void>;
}

/**
 * `workers` clients, each adding distinct products (one unique id per request, quantity 1) to the
 * carts in turn, as fast as the proxy answers, until stop().
 */
function startLoad(port: number, carts: readonly string[], workers: number, prefix: string, into?: Pick<Load, "acked" | "attempted">): Load {
  const acked = into?.acked ?? new Map<string, Set<string>>();
  const attempted = into?.attempted ?? new Map<string, Set<string>>();
  for (const c of carts) {
    if (!acked.has(c)) acked.set(c, new Set());
    if (!attempted.has(c)) attempted.set(c, new Set());
  }
  const early: string[] = [];
  const late: ServiceError[] = [];
  let stopped = false;
  let acks = 0;
  const run = async (w: number) => {
    const client = new CartClient(port);
    try {
      for (let n = 0; !stopped; n++) {
        const cart = carts[(w + n) % carts.length]!;
        const productId = `${prefix}-w${w}-${n}`;
        attempted.get(cart)!.add(productId);
        try {
          await client.addItem({ userId: cart, productId, name: productId, quantity: 1 }, 5_000);
          acked.get(cart)!.add(productId);
          acks++;
        } catch (e) {
          const err = e as ServiceError;
          if (stopped) late.push(err);
          else early.push(`${productId}: ${status[err.code]} ${err.details}`);
          return;
        }
      }
    } finally {
      client.close();
    }
  };
  const running = Promise.all(Array.from({ length: workers }, (_, w) => run(w)));
  return {
    acked,
    attempted,
    early,
    late,
    ackCount: () => acks,
    stop: async () => {
      stopped = true;
      await running;
    },
  };
}

/**
 * Checks the journal file against what the clients saw: per cart, sequences 1..n; each product at
 * most once, with quantity 1; every acknowledged product present; nothing that was never sent.
 * Returns the journal's products per cart.
 */
function checkJournal(dbPath: string, load: Pick<Load, "acked" | "attempted">): Map<string, Set<string>> {
  const journal = readJournal(dbPath);
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

/** GetCart through a proxy for each cart: exactly the journal's products, each with quantity 1, every acknowledged one. */
async function checkCarts(port: number, journaled: Map<string, Set<string>>, acked: Map<string, Set<string>>): Promise<void> {
  const client = new CartClient(port);
  try {
    for (const [cart, products] of journaled) {
      const got = items(await client.getCart(cart));
      for (const [productId, quantity] of got) assert.equal(quantity, 1, `${cart}/${productId} has quantity ${quantity}`);
      assert.deepEqual(got.map(([p]) => p).sort(), [...products].sort(), `${cart}: the cart differs from its journal`);
      for (const p of acked.get(cart)!) assert.ok(products.has(p), `${cart}: acknowledged ${p} lost`);
    }
  } finally {
    client.close();
  }
}

describe("durability across crashes (proxy and user function as processes, SQLite store)", { concurrency: false }, () => {
  const ufs: RawUserFunction[] = [];
  after(async () => {
    await stopAll();
    await Promise.all(ufs.map((uf) => uf.close()));
  });

  test("state survives a graceful restart of the proxy (SIGTERM exits 0)", { timeout: 30_000 }, async () => {
    const uf = await startRawCartUserFunction();
    ufs.push(uf);
    const db = join(tempDir(), "db.sqlite");
    let proxy = await startProxyProcess({ ufPort: uf.port, storePath: db });
    let client = new CartClient(proxy.port);
    let before;
    try {
      await client.addItem({ userId: "r1", productId: "apple", name: "Apple", quantity: 2 });
      await client.addItem({ userId: "r1", productId: "pear", name: "Pear", quantity: 1 });
      await client.addItem({ userId: "r1", productId: "apple", name: "Apple", quantity: 3 });
      await client.addItem({ userId: "r2", productId: "fig", name: "Fig", quantity: 7 });
      await client.removeItem({ userId: "r1", productId: "pear" });
      before = { r1: items(await client.getCart("r1")), r2: items(await client.getCart("r2")) };
      assert.deepEqual(before, { r1: [["apple", 5]], r2: [["fig", 7]] });
    } finally {
      client.close();
    }
    assert.equal(await stopGracefully(proxy), 0, `graceful stop must exit 0; stderr:\n${proxy.stderr()}`);

    proxy = await startProxyProcess({ ufPort: uf.port, storePath: db });
    client = new CartClient(proxy.port);
    try {
      assert.deepEqual({ r1: items(await client.getCart("r1")), r2: items(await client.getCart("r2")) }, before);
    } finally {
      client.close();
    }
    assert.equal(await stopGracefully(proxy), 0);
    assertContiguous(readJournal(db));
  });

  test("kill -9 of the proxy during a stream of AddItems loses no acknowledged write and doubles none (3 cycles)", { timeout: 55_000 }, async (t) => {
    const uf = await startRawCartUserFunction();
    ufs.push(uf);
    const db = join(tempDir(), "db.sqlite");
    const carts = ["k1", "k2", "k3", "k4", "k5"];
    const totals = { acked: new Map<string, Set<string>>(), attempted: new Map<string, Set<string>>() };
    let proxy = await startProxyProcess({ ufPort: uf.port, storePath: db });
    for (let cycle = 1; cycle <= 3; cycle++) {
      const load = startLoad(proxy.port, carts, 16, `c${cycle}`, totals);
      const started = Date.now();
      const before = load.ackCount();
      try {
        // Let writes flow for a while (and at least some be acknowledged), then pull the plug.
        await pollUntil(() => Date.now() - started >= 1_200 && load.ackCount() - before >= 50, () => `acks in cycle ${cycle} (have ${load.ackCount() - before})`, {
          timeoutMs: 15_000,
        });
        proxy.kill("SIGKILL");
      } finally {
        await load.stop();
      }
      assert.equal(await proxy.exited, null);
      assert.equal(proxy.signal(), "SIGKILL");
      assert.deepEqual(load.early, [], "no call may fail before the kill");
      for (const err of load.late) assert.equal(err.code, status.UNAVAILABLE, `a call cut by the kill: ${status[err.code]} ${err.details}`);
      t.diagnostic(`cycle ${cycle}: ${load.ackCount() - before} acknowledged, ${load.late.length} cut by the kill`);

      // The journal as the dead proxy left it, then the carts as a new proxy replays them.
      const journaled = checkJournal(db, totals);
      proxy = await startProxyProcess({ ufPort: uf.port, storePath: db });
      await checkCarts(proxy.port, journaled, totals.acked);
    }
    assert.equal(await stopGracefully(proxy), 0);
    const ackedTotal = [...totals.acked.values()].reduce((n, s) => n + s.size, 0);
    assert.ok(ackedTotal >= 150, `expected many acknowledged writes over 3 cycles, got ${ackedTotal}`);
  });

  test("kill of the user function mid-command: that caller gets UNAVAILABLE; after a restart on the same port the state is intact", { timeout: 40_000 }, async () => {
    let uf = await startRawUserFunctionProcess({ env: { MISBEHAVE: "crash-on-remove" } });
    const db = join(tempDir(), "db.sqlite");
    const proxy = await startProxyProcess({ ufPort: uf.port, storePath: db });
    const client = new CartClient(proxy.port);
    try {
      await client.addItem({ userId: "u1", productId: "apple", name: "Apple", quantity: 2 });
      await client.addItem({ userId: "u1", productId: "pear", name: "Pear", quantity: 1 });
      // The user function exits (code 70) while it handles RemoveItem.
      await rejectsWith(client.removeItem({ userId: "u1", productId: "apple" }), status.UNAVAILABLE);
      assert.equal(await uf.exited, 70);
      assert.deepEqual(
        readJournal(db).get("u1")?.map((r) => [r.sequence, r.kind, r.productId]),
        [
          [1, "added", "apple"],
          [2, "added", "pear"],
        ],
      );

      uf = await startRawUserFunctionProcess({ port: uf.port });
      // The very next call works: the entity is started afresh and replays its journal.
      assert.deepEqual(items(await client.getCart("u1")), [
        ["apple", 2],
        ["pear", 1],
      ]);
      await client.removeItem({ userId: "u1", productId: "apple" });
      assert.deepEqual(items(await client.getCart("u1")), [["pear", 1]]);
    } finally {
      client.close();
    }
    assert.equal(await stopGracefully(proxy), 0);
    uf.kill("SIGKILL");
  });

  test("kill -9 of the user function while calls are in flight: callers get UNAVAILABLE, acknowledged writes survive", { timeout: 40_000 }, async (t) => {
    let uf = await startRawUserFunctionProcess({ env: { REPLY_DELAY_MS: "5" } });
    const db = join(tempDir(), "db.sqlite");
    const proxy = await startProxyProcess({ ufPort: uf.port, storePath: db });
    const carts = ["f1", "f2", "f3", "f4"];
    const load = startLoad(proxy.port, carts, 8, "uf");
    try {
      await pollUntil(() => load.ackCount() >= 60, () => `60 acks (have ${load.ackCount()})`, { timeoutMs: 15_000 });
      uf.kill("SIGKILL");
    } finally {
      await load.stop();
    }
    assert.equal(await uf.exited, null);
    assert.deepEqual(load.early, [], "no call may fail before the kill");
    assert.ok(load.late.length > 0, "calls in flight when the user function died must fail");
    for (const err of load.late) {
      assert.equal(err.code, status.UNAVAILABLE, `${status[err.code]} ${err.details}`);
      assert.match(err.details, new RegExp(`127\\.0\\.0\\.1:${uf.port}`), "the error names the user function's address");
    }
    t.diagnostic(`${load.ackCount()} acknowledged, ${load.late.length} cut by the kill`);
    const journaled = checkJournal(db, load);

    uf = await startRawUserFunctionProcess({ port: uf.port });
    await checkCarts(proxy.port, journaled, load.acked);
    assert.equal(await stopGracefully(proxy), 0);
    uf.kill("SIGKILL");
  });

  test("recovery from a snapshot plus later events gives the same cart as a full replay", { timeout: 40_000 }, async () => {
    const uf = await startRawCartUserFunction({ snapshotEvery: 5 });
    ufs.push(uf);
    const dir = tempDir();
    const db = join(dir, "db.sqlite");
    let proxy = await startProxyProcess({ ufPort: uf.port, storePath: db });
    let client = new CartClient(proxy.port);
    let live;
    try {
      // 23 events on one cart; 7 products, so quantities merge and a replay that applied an event
      // twice (or skipped one) would show.
      for (let i = 0; i < 23; i++) {
        await client.addItem({ userId: "s1", productId: `p${i % 7}`, name: `P${i % 7}`, quantity: i + 1 });
      }
      await client.addItem({ userId: "s2", productId: "other", name: "Other", quantity: 1 });
      live = items(await client.getCart("s1"));
    } finally {
      client.close();
    }
    assert.equal(live.length, 7);
    assert.equal(live.reduce((n, [, q]) => n + q, 0), (23 * 24) / 2);
    assert.equal(await stopGracefully(proxy), 0);
    assert.deepEqual(readSnapshots(db), [{ entityId: "s1", sequence: 20 }]);
    assert.equal(readJournal(db).get("s1")?.length, 23);

    // 1. Recovery from the snapshot at 20 and the 3 events after it.
    const recoveriesBefore = uf.recoveries.length;
    proxy = await startProxyProcess({ ufPort: uf.port, storePath: db });
    client = new CartClient(proxy.port);
    try {
      assert.deepEqual(items(await client.getCart("s1")), live);
    } finally {
      client.close();
    }
    assert.deepEqual(uf.recoveries.slice(recoveriesBefore), [{ entityId: "s1", snapshotSequence: 20n, events: 3 }]);
    assert.equal(await stopGracefully(proxy), 0);

    // 2. A full replay: the same events without any snapshot, to a user function that never snapshots.
    const copy = join(dir, "copy.sqlite");
    copyFileSync(db, copy);
    if (existsSync(`${db}-wal`)) copyFileSync(`${db}-wal`, `${copy}-wal`);
    const writable = new Database(copy);
    try {
      assert.equal(writable.prepare("DELETE FROM snapshots").run().changes, 1);
    } finally {
      writable.close();
    }
    const noSnapshots = await startRawCartUserFunction({ snapshotEvery: 1_000_000 });
    ufs.push(noSnapshots);
    proxy = await startProxyProcess({ ufPort: noSnapshots.port, storePath: copy });
    client = new CartClient(proxy.port);
    try {
      assert.deepEqual(items(await client.getCart("s1")), live);
    } finally {
      client.close();
    }
    assert.deepEqual(noSnapshots.recoveries, [{ entityId: "s1", snapshotSequence: undefined, events: 23 }]);
    assert.equal(await stopGracefully(proxy), 0);
    assert.deepEqual(readSnapshots(copy), []);
  });
});
