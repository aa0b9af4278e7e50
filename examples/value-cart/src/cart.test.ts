// The value cart as the proxy drives it, over the Cloudstate protocol on loopback, and with the
// in-process testkit. The behaviours are those of the event-sourced cart, plus RemoveCart.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { fromBinary, getExtension } from "@bufbuild/protobuf";
import { anyUnpack, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { CommandFailure, serve, type UserFunctionServer } from "@cloudstate-ts/sdk";
import { ProxyDriver, replyOf, testkit, type EntitySpec, type ValueEntityReply, type ValueEntityStreamDriver } from "@cloudstate-ts/sdk/testing";
import { cart } from "./cart.js";
import { CartSchema as StateSchema } from "./gen/com/example/shoppingcart/domain/cart_state_pb.js";
import { CartSchema, ShoppingCart } from "./gen/com/example/shoppingcart/value_cart_pb.js";
import { http } from "./gen/google/api/annotations_pb.js";

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

type Line = [productId: string, name: string, quantity: number];

function open(userId: string, stored?: Line[]): ValueEntityStreamDriver {
  const stream = proxy.valueEntity();
  const items = stored?.map(([productId, name, quantity]) => ({ productId, name, quantity }));
  stream.init(SERVICE, userId, items && { schema: StateSchema, state: { items } });
  return stream;
}

async function add(stream: ValueEntityStreamDriver, userId: string, productId: string, quantity: number, name = `Product ${productId}`) {
  return replyOf(await stream.command(ShoppingCart.method.addItem, { userId, productId, name, quantity }));
}

async function remove(stream: ValueEntityStreamDriver, userId: string, productId: string) {
  return replyOf(await stream.command(ShoppingCart.method.removeItem, { userId, productId }));
}

async function items(stream: ValueEntityStreamDriver, userId: string): Promise<Line[]> {
  const reply = replyOf(await stream.command(ShoppingCart.method.getCart, { userId }));
  assert.equal(reply.stateAction, undefined, "reading the cart stores nothing");
  const action = reply.clientAction?.action;
  assert.equal(action?.case, "reply");
  assert.equal(action.value.payload?.typeUrl, "type.googleapis.com/com.example.shoppingcart.Cart");
  return anyUnpack(action.value.payload, CartSchema)!.items.map((i) => [i.productId, i.name, i.quantity]);
}

/** The cart a reply stores. */
function stored(reply: ValueEntityReply): Line[] {
  const action = reply.stateAction?.action;
  assert.equal(action?.case, "update", `expected a state update, got ${action?.case}`);
  assert.equal(action.value.value?.typeUrl, "type.googleapis.com/com.example.shoppingcart.domain.Cart");
  return anyUnpack(action.value.value!, StateSchema)!.items.map((i) => [i.productId, i.name, i.quantity]);
}

function failureOf(reply: ValueEntityReply): string {
  const action = reply.clientAction?.action;
  assert.equal(action?.case, "failure", `expected a failure, got ${action?.case}`);
  assert.equal(action.value.restart, false, "a validation failure does not restart the entity");
  assert.equal(reply.stateAction, undefined, "a failure stores nothing");
  return action.value.description;
}

describe("discovery", () => {
  let spec: EntitySpec;
  before(async () => {
    spec = await proxy.discover();
  });

  test("declares one value entity, ShoppingCart, persisted as value-cart", () => {
    assert.deepEqual(
      spec.entities.map((e) => [e.entityType, e.serviceName, e.persistenceId]),
      [["cloudstate.valueentity.ValueEntity", SERVICE, "value-cart"]],
    );
  });

  test("sends the API, the state and the annotation files with all their imports", () => {
    const names = fromBinary(FileDescriptorSetSchema, spec.proto).file.map((f) => f.name);
    for (const name of [
      "com/example/shoppingcart/value_cart.proto",
      "com/example/shoppingcart/domain/cart_state.proto",
      "cloudstate/entity_key.proto",
      "google/api/annotations.proto",
      "google/api/http.proto",
      "google/protobuf/empty.proto",
    ]) {
      assert.ok(names.includes(name), `${name} missing`);
    }
  });

  test("keeps the HTTP rules, RemoveCart's included, and the entity key of RemoveShoppingCart", () => {
    const file = fromBinary(FileDescriptorSetSchema, spec.proto).file.find((f) => f.name === "com/example/shoppingcart/value_cart.proto")!;
    const method = (name: string) => file.service[0]!.method.find((m) => m.name === name)!;
    const removeCart = getExtension(method("RemoveCart").options!, http);
    assert.deepEqual(removeCart.pattern, { case: "post", value: "/carts/{user_id}/remove" });
    assert.deepEqual(getExtension(method("GetCart").options!, http).pattern, { case: "get", value: "/carts/{user_id}" });
    const userId = file.messageType.find((m) => m.name === "RemoveShoppingCart")!.field.find((f) => f.name === "user_id")!;
    assert.deepEqual([...(userId.options?.$unknown?.find((u) => u.no === 1080)?.data ?? [])], [1], "entity_key on user_id");
  });
});

describe("cart behaviour", () => {
  test("a new cart is empty", async () => {
    const s = open("u0");
    assert.deepEqual(await items(s, "u0"), []);
    s.end();
  });

  test("an added item is stored and in the cart, and the reply to AddItem is an Empty", async () => {
    const s = open("u1");
    const reply = await add(s, "u1", "p1", 2, "Apple");
    const action = reply.clientAction?.action;
    assert.equal(action?.case === "reply" && action.value.payload?.typeUrl, "type.googleapis.com/google.protobuf.Empty");
    assert.deepEqual(stored(reply), [["p1", "Apple", 2]]);
    assert.deepEqual(await items(s, "u1"), [["p1", "Apple", 2]]);
    s.end();
  });

  test("adding a product already in the cart adds to its quantity", async () => {
    const s = open("u2");
    await add(s, "u2", "p1", 2, "Apple");
    assert.deepEqual(stored(await add(s, "u2", "p1", 3, "Apple")), [["p1", "Apple", 5]]);
    assert.deepEqual(await items(s, "u2"), [["p1", "Apple", 5]]);
    s.end();
  });

  test("a zero or negative quantity fails the command and changes nothing", async () => {
    const s = open("u3", [["p1", "Apple", 1]]);
    for (const quantity of [0, -1]) {
      assert.equal(failureOf(await add(s, "u3", "p1", quantity)), "Cannot add negative quantity of p1: quantity must be positive");
    }
    assert.deepEqual(await items(s, "u3"), [["p1", "Apple", 1]]);
    s.end();
  });

  test("removing an item takes it out of the stored cart", async () => {
    const s = open("u4");
    await add(s, "u4", "p1", 1);
    await add(s, "u4", "p2", 1);
    assert.deepEqual(stored(await remove(s, "u4", "p1")), [["p2", "Product p2", 1]]);
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

  test("RemoveCart deletes the stored cart; the cart is empty again and can be filled anew", async () => {
    const s = open("u7", [["p1", "Apple", 3]]);
    const reply = replyOf(await s.command(ShoppingCart.method.removeCart, { userId: "u7" }));
    assert.equal(reply.stateAction?.action.case, "delete");
    assert.equal(reply.clientAction?.action.case, "reply");
    assert.deepEqual(await items(s, "u7"), []);
    assert.deepEqual(stored(await add(s, "u7", "p2", 1)), [["p2", "Product p2", 1]]);
    s.end();
  });

  test("a cart recovered from its stored state is the cart that was stored", async () => {
    const first = open("u8");
    await add(first, "u8", "p1", 1, "Apple");
    const last = stored(await add(first, "u8", "p2", 2, "Pear"));
    first.end();
    const again = open("u8", last);
    assert.deepEqual(await items(again, "u8"), [["p1", "Apple", 1], ["p2", "Pear", 2]]);
    again.end();
  });
});

test("the in-process testkit gives the same behaviour without a proxy", async () => {
  const t = testkit(cart, { entityId: "alice" });
  await t.call("addItem", { userId: "alice", productId: "p1", name: "P", quantity: 2 });
  assert.equal((await t.send("addItem", { userId: "alice", productId: "p1", name: "P", quantity: 1 })).stateAction, "update");
  assert.equal(t.stored?.items[0]?.quantity, 3);
  assert.equal((await t.call("getCart", { userId: "alice" })).items[0]?.quantity, 3);
  await assert.rejects(t.call("addItem", { userId: "alice", productId: "p1", quantity: 0 }), CommandFailure);
  await assert.rejects(t.call("removeItem", { userId: "alice", productId: "p9" }), /not in the cart/);
  assert.equal((await t.send("removeCart", { userId: "alice" })).stateAction, "delete");
  assert.equal(t.stored, undefined);
  assert.deepEqual((await t.call("getCart", { userId: "alice" })).items, []);
});
