// The "popular products" projection end to end: the user function in-process, a proxy on a SQLite
// file (fsync, the default), 1,000 carts × 10 events written by 64 gRPC callers while the proxy
// consumes the cart event log; the view must count every event exactly once. (The kill -9 variant
// is in tests/eventing-durability.test.ts.)
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { serve, type UserFunctionServer } from "@cloudstate-ts/sdk";
import type { RunningProxy } from "../../../packages/proxy/src/index.js";
import { cartScript, counted, differences, expectedView, readView, runScript } from "../../../tests/support/cart-projection.js";
import { eventually, GrpcClient } from "../../../tests/support/grpc-client.js";
import { startTestProxy } from "../../../tests/support/proxy.js";
import { cart } from "./cart.js";
import { cartEvents, popularProducts } from "./popularity.js";

const quiet = { info() {}, warn() {}, error() {} };
const CARTS = 1_000;
const EVENTS_PER_CART = 10;
const CALLERS = 64;

describe("the popular-products projection through the proxy", () => {
  const dir = mkdtempSync(join(tmpdir(), "cloudstate-projection-"));
  let server: UserFunctionServer;
  let proxy: RunningProxy;
  const clients: GrpcClient[] = [];

  before(async () => {
    server = await serve({ entities: [cart, cartEvents, popularProducts], port: 0, host: "127.0.0.1", logger: quiet });
    proxy = await startTestProxy(server.port, { store: `sqlite:${join(dir, "cloudstate.db")}`, metricsPort: 0 });
    for (let i = 0; i < CALLERS; i++) clients.push(new GrpcClient(proxy.port));
  });

  after(async () => {
    for (const c of clients) c.close();
    await proxy?.stop();
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test(`every event of ${CARTS} carts × ${EVENTS_PER_CART} reaches the view, which is exactly right`, { timeout: 120_000 }, async (t) => {
    const script = cartScript(CARTS, EVENTS_PER_CART);
    const expected = expectedView(script);
    const start = Date.now();
    await runScript(clients, script);
    const written = Date.now();
    let view = await readView(clients[0]!);
    await eventually(
      async () => {
        view = await readView(clients[0]!);
        return differences(view, expected).length === 0;
      },
      () => `the view to match (counted ${counted(view)} of ${CARTS * EVENTS_PER_CART} events):\n${differences(view, expected).slice(0, 5).join("\n")}`,
      60_000,
    );
    t.diagnostic(`${CARTS * EVENTS_PER_CART} events written in ${written - start} ms; view complete ${Date.now() - written} ms later`);
    // The consumer's own account: every event delivered, none skipped or set aside.
    const metrics = await (await fetch(`http://127.0.0.1:${proxy.metricsPort}/metrics`)).text();
    const sample = (outcome: string) =>
      Number(/cloudstate_eventing_messages_total\{group="com\.example\.shoppingcart\.CartEvents",source="event-log:shopping-cart",outcome="([a-z_]+)"\} (\d+)/g.exec(metrics) && new RegExp(`outcome="${outcome}"\\} (\\d+)`).exec(metrics)?.[1] || 0);
    assert.ok(sample("delivered") >= CARTS * EVENTS_PER_CART, `delivered ${sample("delivered")}`);
    assert.equal(sample("unmatched"), 0);
    assert.equal(sample("dead_letter"), 0);
    assert.equal(Number(/cloudstate_eventing_lag\{group="com\.example\.shoppingcart\.CartEvents",source="event-log:shopping-cart"\} (\d+)/.exec(metrics)?.[1] ?? -1) >= 0, true);
  });

  test("the view is queryable over HTTP/JSON", async () => {
    const res = await fetch(`http://127.0.0.1:${proxy.port}/products/product-03/popularity`);
    assert.equal(res.status, 200);
    const body = (await res.json()) as Record<string, string>;
    const want = expectedView(cartScript(CARTS, EVENTS_PER_CART)).get("product-03")!;
    assert.deepEqual(
      [body.productId, body.quantityAdded, body.timesAdded, body.timesRemoved],
      ["product-03", String(want.quantityAdded), String(want.timesAdded), String(want.timesRemoved)],
    );
  });
});
