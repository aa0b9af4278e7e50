// Value entities through the proxy: the value-cart example (our SDK) served by an in-process proxy on
// SQLite, called by a plain grpc-js client. State is read before init, updates and deletes are
// durable before the reply, and survive a proxy restart.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { status } from "@grpc/grpc-js";
import { EmptySchema } from "@bufbuild/protobuf/wkt";
import { serve, type UserFunctionServer } from "../packages/sdk/src/index.js";
import { cart } from "../examples/value-cart/src/cart.js";
import { RemoveShoppingCartSchema } from "../examples/value-cart/src/gen/com/example/shoppingcart/value_cart_pb.js";
import { CartClient, rejectsWith } from "./support/cart-client.js";
import { startTestProxy } from "./support/proxy.js";
import type { RunningProxy } from "../packages/proxy/src/index.js";

const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };

describe("a value entity through the proxy", () => {
  let uf: UserFunctionServer;
  let proxy: RunningProxy;
  let client: CartClient;
  let dir: string;
  const store = () => `sqlite:${join(dir, "state.db")}`;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "value-entity-"));
    uf = await serve({ entities: [cart], port: 0, host: "127.0.0.1", logger: quiet });
    proxy = await startTestProxy(uf.port, { store: store() });
    client = new CartClient(proxy.port);
  });
  after(async () => {
    client.close();
    await proxy.stop();
    await uf.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test("discovery lists the value entity with its persistence id", () => {
    const service = proxy.model.services.get("com.example.shoppingcart.ShoppingCart")!;
    assert.equal(service.kind, "value");
    assert.equal(service.persistenceId, "value-cart");
  });

  test("updates are stored before the reply and read back", async () => {
    await client.addItem({ userId: "v1", productId: "a", name: "A", quantity: 2 });
    await client.addItem({ userId: "v1", productId: "a", name: "A", quantity: 1 });
    await client.addItem({ userId: "v1", productId: "b", name: "B", quantity: 1 });
    await client.removeItem({ userId: "v1", productId: "b" });
    assert.deepEqual((await client.getCart("v1")).items.map((i) => [i.productId, i.quantity]), [["a", 3]]);
    const stored = await proxy.store.values.get("value-cart", "v1");
    assert.equal(stored.version, 4);
    assert.ok(stored.value && stored.value.bytes.length > 0);
  });

  test("a failure changes nothing", async () => {
    const before = await proxy.store.values.get("value-cart", "v1");
    await rejectsWith(client.addItem({ userId: "v1", productId: "x", name: "X", quantity: 0 }), status.UNKNOWN, /Cannot add negative quantity of x/);
    assert.deepEqual(await proxy.store.values.get("value-cart", "v1"), before);
  });

  test("delete removes the state; the next read starts empty", async () => {
    await client.addItem({ userId: "v2", productId: "a", name: "A", quantity: 1 });
    await client.call("RemoveCart", RemoveShoppingCartSchema, EmptySchema, { userId: "v2" });
    const stored = await proxy.store.values.get("value-cart", "v2");
    assert.equal(stored.value, undefined);
    assert.deepEqual((await client.getCart("v2")).items, []);
    await client.addItem({ userId: "v2", productId: "c", name: "C", quantity: 5 });
    assert.deepEqual((await client.getCart("v2")).items.map((i) => i.productId), ["c"]);
  });

  test("state survives a proxy restart (the entity is initialised from the store)", async () => {
    await proxy.stop();
    proxy = await startTestProxy(uf.port, { store: store() });
    client.close();
    client = new CartClient(proxy.port);
    assert.deepEqual((await client.getCart("v1")).items.map((i) => [i.productId, i.quantity]), [["a", 3]]);
    assert.deepEqual((await client.getCart("v2")).items.map((i) => [i.productId, i.quantity]), [["c", 5]]);
  });

  test("an idle entity is passivated after the configured timeout and comes back with its state", async () => {
    await proxy.stop();
    proxy = await startTestProxy(uf.port, { store: store(), passivationTimeoutMs: 100 });
    client.close();
    client = new CartClient(proxy.port);
    await client.addItem({ userId: "v3", productId: "p", name: "P", quantity: 1 });
    assert.equal(proxy.activeEntities(), 1);
    const deadline = Date.now() + 3000;
    while (proxy.activeEntities() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(proxy.activeEntities(), 0, "passivated");
    assert.deepEqual((await client.getCart("v3")).items.map((i) => i.productId), ["p"]);
  });
});
