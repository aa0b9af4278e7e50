// Graceful shutdown of `cloudstate proxy` on SIGTERM: commands already in flight (sent to the user
// function, or queued behind one) complete and their callers get OK; the process exits 0 within the
// grace period; what was acknowledged is there after a restart. A command that outlives the grace
// period does not hold the process, and writes nothing.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { status, type ServiceError } from "@grpc/grpc-js";
import { CartClient } from "./support/cart-client.js";
import { assertContiguous, readJournal } from "./support/journal.js";
import { httpStatus, pollUntil, startProxyProcess, stopAll, tempDir } from "./support/processes.js";
import { startRawCartUserFunction, type RawUserFunction } from "./fixtures/raw-cart-user-function.js";

type Items = [productId: string, quantity: number][];
const items = (cart: { items: { productId: string; quantity: number }[] }): Items => cart.items.map((i) => [i.productId, i.quantity]);

type Settled = { ok: true } | { ok: false; code: number; details: string };
const settle = (p: Promise<unknown>): Promise<Settled> =>
  p.then(
    () => ({ ok: true as const }),
    (e: ServiceError) => ({ ok: false as const, code: e.code, details: e.details }),
  );

describe("graceful shutdown on SIGTERM", { concurrency: false }, () => {
  const ufs: RawUserFunction[] = [];
  after(async () => {
    await stopAll();
    await Promise.all(ufs.map((uf) => uf.close()));
  });

  test("commands in flight complete with OK, the process exits 0 within the grace period, and the writes survive", { timeout: 40_000 }, async (t) => {
    // Every reply takes 300 ms, so commands are surely in flight when SIGTERM arrives.
    const uf = await startRawCartUserFunction({ replyDelayMs: 300 });
    ufs.push(uf);
    const db = join(tempDir(), "db.sqlite");
    const graceMs = 8_000;
    let proxy = await startProxyProcess({ ufPort: uf.port, storePath: db, extraArgs: ["--shutdown-grace", String(graceMs)] });
    const client = new CartClient(proxy.port);
    const carts = ["g1", "g2", "g3", "g4", "g5", "g6"];
    let calls: Promise<Settled>[];
    let late: Promise<Settled>;
    let signalledAt: number;
    try {
      // Three commands per cart: one at the user function, two queued behind it in the entity's mailbox.
      calls = carts.flatMap((cart) =>
        [1, 2, 3].map((n) => settle(client.addItem({ userId: cart, productId: `${cart}-p${n}`, name: `P${n}`, quantity: n }, 20_000))),
      );
      await pollUntil(() => uf.commands() >= carts.length, () => `the first command of each cart to reach the user function (${uf.commands()})`);
      signalledAt = Date.now();
      proxy.kill("SIGTERM");
      // Once the proxy is no longer ready, a new call is refused (not written) or, if it slipped in, completed (and durable).
      await pollUntil(async () => (await httpStatus(proxy.port, "/ready")) !== 200, () => "the proxy to stop being ready");
      late = settle(client.addItem({ userId: "g1", productId: "late", name: "Late", quantity: 1 }, 20_000));
      const results = await Promise.all(calls);
      assert.deepEqual(
        results.filter((r) => !r.ok),
        [],
        "every command in flight at SIGTERM completes with OK",
      );
    } finally {
      client.close();
    }
    const code = await proxy.exited;
    const tookMs = Date.now() - signalledAt;
    assert.equal(code, 0, `exit code; stderr:\n${proxy.stderr()}`);
    assert.ok(tookMs < graceMs, `exited ${tookMs} ms after SIGTERM; the grace period is ${graceMs} ms`);
    const lateResult = await late;
    t.diagnostic(`exited ${tookMs} ms after SIGTERM; a call made during shutdown: ${lateResult.ok ? "completed" : `${status[lateResult.code]} ${lateResult.details}`}`);
    if (!lateResult.ok) assert.equal(lateResult.code, status.UNAVAILABLE, lateResult.details);

    const journal = readJournal(db);
    assertContiguous(journal);
    proxy = await startProxyProcess({ ufPort: uf.port, storePath: db });
    const after = new CartClient(proxy.port);
    try {
      for (const cart of carts) {
        const expected: Items = [1, 2, 3].map((n) => [`${cart}-p${n}`, n]);
        if (cart === "g1" && lateResult.ok) expected.push(["late", 1]);
        const got = items(await after.getCart(cart));
        assert.deepEqual(got.filter(([p]) => p !== "late"), expected.filter(([p]) => p !== "late"), cart);
        assert.equal(got.some(([p]) => p === "late"), lateResult.ok, "a call refused during shutdown must not be written");
      }
    } finally {
      after.close();
    }
    proxy.kill("SIGTERM");
    assert.equal(await proxy.exited, 0);
  });

  test("a command that outlives the grace period does not hold the process: it exits 0, the caller gets an error, nothing is written", { timeout: 30_000 }, async () => {
    const uf = await startRawCartUserFunction({ misbehave: "hang-on-remove" });
    ufs.push(uf);
    const db = join(tempDir(), "db.sqlite");
    const graceMs = 1_500;
    const proxy = await startProxyProcess({ ufPort: uf.port, storePath: db, extraArgs: ["--shutdown-grace", String(graceMs)] });
    const client = new CartClient(proxy.port);
    let hanging: Promise<Settled>;
    let signalledAt: number;
    try {
      await client.addItem({ userId: "h1", productId: "apple", name: "Apple", quantity: 1 });
      const commands = uf.commands();
      hanging = settle(client.removeItem({ userId: "h1", productId: "apple" }, 20_000));
      await pollUntil(() => uf.commands() > commands, () => "RemoveItem to reach the user function");
      signalledAt = Date.now();
      proxy.kill("SIGTERM");
      const result = await hanging;
      assert.equal(result.ok, false, "the hanging command cannot have succeeded");
      if (!result.ok) assert.equal(result.code, status.UNAVAILABLE, `${status[result.code]}: ${result.details}`);
    } finally {
      client.close();
    }
    assert.equal(await proxy.exited, 0, proxy.stderr());
    const tookMs = Date.now() - signalledAt;
    assert.ok(tookMs >= graceMs - 100, `exited after ${tookMs} ms: in-flight work gets the grace period`);
    assert.ok(tookMs < graceMs + 2_000, `exited ${tookMs} ms after SIGTERM; the grace period is ${graceMs} ms`);
    assert.deepEqual(readJournal(db).get("h1")?.map((r) => [r.sequence, r.kind, r.productId]), [[1, "added", "apple"]]);
  });
});
