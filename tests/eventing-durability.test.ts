// Eventing survives a crash: the shopping cart's "popular products" projection (examples/shopping-cart)
// is consuming the cart event log when the proxy is killed with -9. A new proxy on the same SQLite
// file resumes from the committed offset: it delivers the uncommitted tail again (not everything),
// loses nothing, and the view (which ignores offsets it already counted) is exactly right.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { cartScript, counted, differences, expectedView, readView, runScript } from "./support/cart-projection.js";
import { eventually, GrpcClient } from "./support/grpc-client.js";
import { startExampleUserFunctionProcess, startProxyProcess, stopAll, tempDir } from "./support/processes.js";

const CARTS = 1_000;
const EVENTS = CARTS * 10;
const CALLERS = 32;

after(stopAll);

async function delivered(metricsPort: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const m = /cloudstate_eventing_messages_total\{group="com\.example\.shoppingcart\.CartEvents",source="event-log:shopping-cart",outcome="delivered"\} (\d+)/.exec(text);
  return Number(m?.[1] ?? 0);
}

describe("eventing across a proxy crash", () => {
  test(`kill -9 of the proxy while the projection consumes ${EVENTS} events: after a restart the view is exact and nothing is lost`, { timeout: 120_000 }, async (t) => {
    const uf = await startExampleUserFunctionProcess("shopping-cart");
    const db = join(tempDir("cloudstate-eventing-"), "cloudstate.db");
    // Relaxed durability: a kill -9 of the process loses nothing with it (WAL in the OS), and the
    // test stays short. The first proxy consumes slowly (2 messages at a time) so that the kill
    // lands in the middle of the consumption.
    let proxy = await startProxyProcess({
      ufPort: uf.port,
      storePath: db,
      extraArgs: ["--durability", "relaxed"],
      env: { CLOUDSTATE_EVENTING_MAX_IN_FLIGHT: "2", CLOUDSTATE_EVENTING_COMMIT_INTERVAL_MS: "100" },
    });
    const firstMetrics = proxy.metricsPort!;
    const script = cartScript(CARTS, 10);
    const expected = expectedView(script);
    const clients = Array.from({ length: CALLERS }, () => new GrpcClient(proxy.port));
    await runScript(clients, script);
    for (const c of clients) c.close();

    let client = new GrpcClient(proxy.port);
    await eventually(async () => (await delivered(firstMetrics)) >= 1_000, () => "the projection to make progress", 60_000);
    const before = counted(await readView(client));
    const deliveredBefore = await delivered(firstMetrics);
    proxy.kill("SIGKILL");
    await proxy.exited;
    client.close();
    t.diagnostic(`killed with ${before} of ${EVENTS} events counted in the view (${deliveredBefore} delivered)`);
    assert.ok(before < BigInt(EVENTS), "the kill must land while the projection is still consuming");

    proxy = await startProxyProcess({ ufPort: uf.port, storePath: db, extraArgs: ["--durability", "relaxed"] });
    const secondMetrics = proxy.metricsPort!;
    client = new GrpcClient(proxy.port);
    let view = await readView(client);
    await eventually(
      async () => {
        view = await readView(client);
        return differences(view, expected).length === 0;
      },
      () => `the view to match after the restart (counted ${counted(view)} of ${EVENTS}):\n${differences(view, expected).slice(0, 5).join("\n")}`,
      90_000,
    );
    const redelivered = await delivered(secondMetrics);
    t.diagnostic(`after the restart: ${redelivered} events delivered (${EVENTS - Number(before)} were left)`);
    // It resumed from the committed offset: not from the start, and at least everything not counted.
    assert.ok(redelivered >= EVENTS - Number(before), `every event not yet counted is delivered (${redelivered})`);
    assert.ok(redelivered < EVENTS, `the new proxy resumes from the committed offset instead of the start (${redelivered} delivered)`);
    client.close();
    proxy.kill("SIGTERM");
    await proxy.exited;
    uf.kill("SIGTERM");
  });
});
