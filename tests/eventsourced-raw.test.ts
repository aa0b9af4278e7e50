// The proxy with a user function written directly against the protocol (grpc-js, no SDK): the
// event-sourced flow, bad input, and a user function that breaks the protocol.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { status } from "@grpc/grpc-js";
import { CartClient, rejectsWith } from "./support/cart-client.js";
import { startTestProxy } from "./support/proxy.js";
import { startRawCartUserFunction, type RawUserFunction } from "./fixtures/raw-cart-user-function.js";
import type { RunningProxy } from "../packages/proxy/src/index.js";

describe("a raw-protocol user function through the proxy", () => {
  let uf: RawUserFunction;
  let proxy: RunningProxy;
  let client: CartClient;
  before(async () => {
    uf = await startRawCartUserFunction();
    proxy = await startTestProxy(uf.port);
    client = new CartClient(proxy.port);
  });
  after(async () => {
    client.close();
    await proxy.stop();
    await uf.close();
  });

  test("discovery sends ProxyInfo 0.2 with the supported entity types", () => {
    assert.equal(uf.discoveries.length, 1);
    const info = uf.discoveries[0]!;
    assert.equal(info.protocolMajorVersion, 0);
    assert.equal(info.protocolMinorVersion, 2);
    assert.ok(info.supportedEntityTypes.includes("cloudstate.eventsourced.EventSourced"));
  });

  test("adds, merges, removes and reads items", async () => {
    await client.addItem({ userId: "u1", productId: "apple", name: "Apple", quantity: 2 });
    await client.addItem({ userId: "u1", productId: "pear", name: "Pear", quantity: 1 });
    await client.addItem({ userId: "u1", productId: "apple", name: "Apple", quantity: 3 });
    await client.removeItem({ userId: "u1", productId: "pear" });
    const cart = await client.getCart("u1");
    assert.deepEqual(cart.items.map((i) => [i.productId, i.quantity]), [["apple", 5]]);
    const other = await client.getCart("u2");
    assert.equal(other.items.length, 0);
  });

  test("a failure reaches the client with its text and persists nothing", async () => {
    await rejectsWith(client.addItem({ userId: "u3", productId: "x", name: "X", quantity: -1 }), status.UNKNOWN, /Cannot add negative quantity of x/);
    await rejectsWith(client.removeItem({ userId: "u3", productId: "nope" }), status.UNKNOWN, /not in the cart/);
    assert.deepEqual(await proxy.store.journal.events("shopping-cart", "u3"), []);
  });

  test("an unknown method is UNIMPLEMENTED", async () => {
    await rejectsWith(client.callBytes("/com.example.shoppingcart.ShoppingCart/Checkout", Buffer.alloc(0)), status.UNIMPLEMENTED);
    await rejectsWith(client.callBytes("/no.Such/Service", Buffer.alloc(0)), status.UNIMPLEMENTED);
  });

  test("a missing key or a malformed payload is INVALID_ARGUMENT and changes nothing", async () => {
    await rejectsWith(client.addItem({ userId: "", productId: "x", name: "X", quantity: 1 }), status.INVALID_ARGUMENT, /user_id/);
    await rejectsWith(client.callBytes("/com.example.shoppingcart.ShoppingCart/AddItem", Buffer.from([0x0a, 0x10, 0x61])), status.INVALID_ARGUMENT);
    await rejectsWith(client.callBytes("/com.example.shoppingcart.ShoppingCart/AddItem", Buffer.from([0xff, 0xff])), status.INVALID_ARGUMENT);
    assert.deepEqual(await proxy.store.journal.entityIds("shopping-cart"), ["u1"]);
  });
});
