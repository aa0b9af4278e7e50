// The projection's two halves with the testkit: the action turns cart events into the view's
// command (addressed by product, carrying the cart and the event's offset), and the view counts
// each event once, whatever the redeliveries.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import { testkit } from "@cloudstate-ts/sdk/testing";
import { CartEventSeenSchema } from "./gen/com/example/shoppingcart/popularity_pb.js";
import { cartEvents, popularProducts } from "./popularity.js";

describe("CartEvents (the projection's consumer)", () => {
  test("an ItemAdded becomes a RecordCartEvent for the product, with the cart and the offset", async () => {
    const t = testkit(cartEvents);
    const result = await t.deliver("onItemAdded", { item: { productId: "p1", name: "Pen", quantity: 3 } }, { subject: "cart-7", id: "42" });
    assert.equal(result.forward?.serviceName, "com.example.shoppingcart.PopularProducts");
    assert.equal(result.forward?.commandName, "RecordCartEvent");
    const seen = anyUnpack(result.forward!.payload!, CartEventSeenSchema)!;
    assert.deepEqual(
      { productId: seen.productId, cartId: seen.cartId, offset: seen.offset, name: seen.name, quantityAdded: seen.quantityAdded, removed: seen.removed, committed: seen.committedOffset },
      { productId: "p1", cartId: "cart-7", offset: 42n, name: "Pen", quantityAdded: 3, removed: false, committed: 0n },
    );
  });

  test("an ItemRemoved is forwarded as a removal", async () => {
    const t = testkit(cartEvents);
    const result = await t.deliver("onItemRemoved", { productId: "p1" }, { subject: "cart-7", id: "43", metadata: { "cloudstate-committed-offset": "40" } });
    const seen = anyUnpack(result.forward!.payload!, CartEventSeenSchema)!;
    assert.deepEqual([seen.productId, seen.cartId, seen.offset, seen.removed, seen.committedOffset], ["p1", "cart-7", 43n, true, 40n], "with the consumer's committed offset");
  });

  test("a call that is not a delivery of the cart event log fails clearly", async () => {
    const t = testkit(cartEvents);
    await assert.rejects(t.call("onItemRemoved", { productId: "p1" }), /only takes events of the shopping-cart event log/);
  });
});

describe("PopularProducts (the view)", () => {
  const event = (cartId: string, offset: bigint, quantityAdded = 1) => ({ productId: "p1", cartId, offset, name: "Pen", quantityAdded });

  test("counts adds, units and removals", async () => {
    const t = testkit(popularProducts, { entityId: "p1" });
    await t.call("recordCartEvent", event("a", 1n, 2));
    await t.call("recordCartEvent", event("b", 2n, 5));
    await t.call("recordCartEvent", { productId: "p1", cartId: "a", offset: 3n, removed: true });
    const view = await t.call("getPopularity", { productId: "p1" });
    assert.deepEqual(
      [view.productId, view.name, view.quantityAdded, view.timesAdded, view.timesRemoved],
      ["p1", "Pen", 7n, 2n, 1n],
    );
  });

  test("a redelivered event (an offset already counted for its cart) changes nothing", async () => {
    const t = testkit(popularProducts, { entityId: "p1" });
    await t.call("recordCartEvent", event("a", 5n, 2));
    await t.call("recordCartEvent", event("a", 9n, 1));
    const again = await t.send("recordCartEvent", event("a", 5n, 2));
    assert.equal(again.stateAction, undefined, "nothing stored for a redelivery");
    await t.send("recordCartEvent", event("a", 9n, 1));
    // Another cart's offsets are its own.
    await t.call("recordCartEvent", event("b", 6n, 4));
    const view = await t.call("getPopularity", { productId: "p1" });
    assert.deepEqual([view.quantityAdded, view.timesAdded], [7n, 3n]);
  });

  test("it forgets the offsets at or below the consumer's committed offset, so its state stays small", async () => {
    const t = testkit(popularProducts, { entityId: "p1" });
    for (let c = 0; c < 50; c++) await t.call("recordCartEvent", { ...event(`cart-${c}`, BigInt(c + 1)), committedOffset: BigInt(Math.max(0, c - 3)) });
    await t.call("recordCartEvent", { ...event("last", 100n), committedOffset: 48n });
    const kept = Object.keys(t.state.lastOffsetByCart);
    assert.deepEqual(kept.sort(), ["cart-48", "cart-49", "last"], "only offsets above the committed one are kept");
    assert.equal((await t.call("getPopularity", { productId: "p1" })).timesAdded, 51n);
  });

  test("an unknown product reads as zero", async () => {
    const t = testkit(popularProducts, { entityId: "nothing" });
    const view = await t.call("getPopularity", { productId: "nothing" });
    assert.deepEqual([view.productId, view.quantityAdded, view.timesAdded], ["nothing", 0n, 0n]);
  });
});
