// The shopping cart as the proxy drives it, over the Cloudstate protocol on loopback; the behaviours
// are those clients of the reference sample rely on.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { fromBinary } from "@bufbuild/protobuf";
import { anyUnpack, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { serve, type UserFunctionServer } from "@cloudstate-ts/sdk";
import {
  ProxyDriver,
  replyOf,
  testkit,
  type EntitySpec,
  type EventSourcedReply,
  type EventSourcedStreamDriver,
} from "@cloudstate-ts/sdk/testing";
import { cart } from "./cart.js";
import { CartSchema as DomainCartSchema, ItemAddedSchema, ItemRemovedSchema } from "./gen/com/example/shoppingcart/domain/domain_pb.js";
import { CartSchema, ShoppingCart } from "./gen/com/example/shoppingcart/shoppingcart_pb.js";

const SERVICE = "com.example.shoppingcart.ShoppingCart";
const quiet = { info() {}, warn() {}, error() {} };
let server: UserFunctionServer;
let proxy: ProxyDriver;

before(async () => {
  server = await serve({ entities: [cart], port: 0, logger: quiet });
  proxy = new ProxyDriver(server.port);
});

after(async () => {
  proxy.close();
  await server.close();
});

function open(userId: string): EventSourcedStreamDriver {
  const stream = proxy.eventSourced();
  stream.init(SERVICE, userId);
  return stream;
}

async function add(stream: EventSourcedStreamDriver, userId: string, productId: string, quantity: number, name = `Product ${productId}`) {
  return replyOf(await stream.command(ShoppingCart.method.addItem, { userId, productId, name, quantity }));
}

async function remove(stream: EventSourcedStreamDriver, userId: string, productId: string) {
  return replyOf(await stream.command(ShoppingCart.method.removeItem, { userId, productId }));
}

async function items(stream: EventSourcedStreamDriver, userId: string): Promise<[string, string, number][]> {
  const reply = replyOf(await stream.command(ShoppingCart.method.getCart, { userId }));
  const action = reply.clientAction?.action;
  assert.equal(action?.case, "reply");
  assert.equal(action.value.payload?.typeUrl, "type.googleapis.com/com.example.shoppingcart.Cart");
  return anyUnpack(action.value.payload, CartSchema)!.items.map((i) => [i.productId, i.name, i.quantity]);
}

function failureOf(reply: EventSourcedReply): string {
  const action = reply.clientAction?.action;
  assert.equal(action?.case, "failure", `expected a failure, got ${action?.case}`);
  assert.equal(action.value.restart, false, "a validation failure does not restart the entity");
  assert.equal(reply.events.length, 0, "a failure persists no events");
  return action.value.description;
}

describe("discovery", () => {
  let spec: EntitySpec;
  before(async () => {
    spec = await proxy.discover();
  });

  test("declares one event-sourced entity, ShoppingCart, persisted as shopping-cart", () => {
    assert.deepEqual(
      spec.entities.map((e) => [e.entityType, e.serviceName, e.persistenceId]),
      [["cloudstate.eventsourced.EventSourced", SERVICE, "shopping-cart"]],
    );
    assert.deepEqual([spec.serviceInfo?.protocolMajorVersion, spec.serviceInfo?.protocolMinorVersion], [0, 2]);
  });

  test("sends the API, domain and annotation files with all their imports", () => {
    const names = fromBinary(FileDescriptorSetSchema, spec.proto).file.map((f) => f.name);
    for (const name of [
      "com/example/shoppingcart/shoppingcart.proto",
      "com/example/shoppingcart/domain/domain.proto",
      "cloudstate/entity_key.proto",
      "google/api/annotations.proto",
      "google/api/http.proto",
      "google/protobuf/descriptor.proto",
      "google/protobuf/empty.proto",
    ]) {
      assert.ok(names.includes(name), `${name} missing`);
    }
  });

  test("keeps the entity key option (1080) on AddLineItem.user_id and the HTTP rules (72295728)", () => {
    const file = fromBinary(FileDescriptorSetSchema, spec.proto).file.find((f) => f.name === "com/example/shoppingcart/shoppingcart.proto")!;
    const userId = file.messageType.find((m) => m.name === "AddLineItem")!.field.find((f) => f.name === "user_id")!;
    const key = userId.options?.$unknown?.find((u) => u.no === 1080);
    assert.ok(key, "entity_key on user_id");
    assert.deepEqual([...key.data], [1]);
    const addItem = file.service[0]!.method.find((m) => m.name === "AddItem")!;
    assert.ok(addItem.options?.$unknown?.some((u) => u.no === 72295728), "google.api.http on AddItem");
  });
});

describe("cart behaviour", () => {
  test("an added item is in the cart, and the reply to AddItem is an Empty", async () => {
    const s = open("u1");
    const reply = await add(s, "u1", "p1", 2, "Apple");
    const action = reply.clientAction?.action;
    assert.equal(action?.case === "reply" && action.value.payload?.typeUrl, "type.googleapis.com/google.protobuf.Empty");
    const event = anyUnpack(reply.events[0]!, ItemAddedSchema)!;
    assert.deepEqual([event.item?.productId, event.item?.name, event.item?.quantity], ["p1", "Apple", 2]);
    assert.deepEqual(await items(s, "u1"), [["p1", "Apple", 2]]);
    s.end();
  });

  test("adding a product already in the cart adds to its quantity", async () => {
    const s = open("u2");
    await add(s, "u2", "p1", 2, "Apple");
    await add(s, "u2", "p1", 3, "Apple");
    assert.deepEqual(await items(s, "u2"), [["p1", "Apple", 5]]);
    s.end();
  });

  test("a zero or negative quantity fails the command", async () => {
    const s = open("u3");
    for (const quantity of [0, -1]) {
      const description = failureOf(await add(s, "u3", "p1", quantity));
      assert.equal(description, "Cannot add negative quantity of p1: quantity must be positive");
    }
    assert.deepEqual(await items(s, "u3"), []);
    s.end();
  });

  test("removing an item takes it out of the cart", async () => {
    const s = open("u4");
    await add(s, "u4", "p1", 1);
    await add(s, "u4", "p2", 1);
    const reply = await remove(s, "u4", "p1");
    assert.equal(anyUnpack(reply.events[0]!, ItemRemovedSchema)!.productId, "p1");
    assert.deepEqual(await items(s, "u4"), [["p2", "Product p2", 1]]);
    s.end();
  });

  test("removing an item not in the cart fails the command", async () => {
    const s = open("u5");
    await add(s, "u5", "p1", 1);
    assert.equal(failureOf(await remove(s, "u5", "p9")), "Cannot remove item p9 because it is not in the cart");
    assert.deepEqual(await items(s, "u5"), [["p1", "Product p1", 1]]);
    s.end();
  });

  test("GetCart lists items in the order they were first added", async () => {
    const s = open("u6");
    await add(s, "u6", "p2", 1);
    await add(s, "u6", "p1", 1);
    await add(s, "u6", "p3", 1);
    await add(s, "u6", "p2", 4);
    assert.deepEqual(
      (await items(s, "u6")).map(([id, , q]) => [id, q]),
      [["p2", 5], ["p1", 1], ["p3", 1]],
    );
    s.end();
  });

  test("a snapshot of the cart comes with every fifth event", async () => {
    assert.equal(cart.snapshotEvery, 5, "the default (SNAPSHOT_EVERY unset)");
    const s = open("u7");
    const snapshots: number[] = [];
    for (let i = 1; i <= 10; i++) {
      const reply = await add(s, "u7", `p${i}`, 1);
      if (reply.snapshot) snapshots.push(anyUnpack(reply.snapshot, DomainCartSchema)!.items.length);
    }
    assert.deepEqual(snapshots, [5, 10], "at events 5 and 10, each with the cart after its event");
    s.end();
  });

  test("a cart recovered from a snapshot and later events equals the cart replayed from every event", async () => {
    const replayed = proxy.eventSourced();
    replayed.init(SERVICE, "u8");
    replayed.event(1, ItemAddedSchema, { item: { productId: "p1", name: "Apple", quantity: 1 } });
    replayed.event(2, ItemAddedSchema, { item: { productId: "p2", name: "Pear", quantity: 2 } });
    replayed.event(3, ItemAddedSchema, { item: { productId: "p1", name: "Apple", quantity: 3 } });
    replayed.event(4, ItemRemovedSchema, { productId: "p2" });

    const restored = proxy.eventSourced();
    restored.init(SERVICE, "u8", {
      sequence: 2,
      schema: DomainCartSchema,
      state: { items: [{ productId: "p1", name: "Apple", quantity: 1 }, { productId: "p2", name: "Pear", quantity: 2 }] },
    });
    restored.event(3, ItemAddedSchema, { item: { productId: "p1", name: "Apple", quantity: 3 } });
    restored.event(4, ItemRemovedSchema, { productId: "p2" });

    const full = await items(replayed, "u8");
    assert.deepEqual(full, [["p1", "Apple", 4]]);
    assert.deepEqual(await items(restored, "u8"), full);
    replayed.end();
    restored.end();
  });
});

test("the in-process testkit gives the same behaviour without a proxy", async () => {
  const t = testkit(cart, { entityId: "alice" });
  await t.call("addItem", { userId: "alice", productId: "p1", name: "P", quantity: 2 });
  assert.deepEqual(
    t.events.map((e) => e.$typeName),
    ["com.example.shoppingcart.domain.ItemAdded"],
  );
  assert.equal((await t.call("getCart", { userId: "alice" })).items[0]?.quantity, 2);
  await assert.rejects(t.call("addItem", { userId: "alice", productId: "p1", quantity: 0 }), /negative quantity/);
});
