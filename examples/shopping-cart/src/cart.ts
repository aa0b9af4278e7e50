// The shopping cart: an event-sourced entity whose state is the cart, rebuilt from ItemAdded and
// ItemRemoved events. Its behaviour matches the Cloudstate reference sample.
import { create } from "@bufbuild/protobuf";
import { eventSourced } from "@cloudstate-ts/sdk";
import { ShoppingCart } from "./gen/com/example/shoppingcart/shoppingcart_pb.js";
import {
  CartSchema,
  ItemAddedSchema,
  ItemRemovedSchema,
  type Cart,
  type ItemAdded,
  type ItemRemoved,
} from "./gen/com/example/shoppingcart/domain/domain_pb.js";

export const cart = eventSourced({
  service: ShoppingCart,
  persistenceId: "shopping-cart",
  state: CartSchema,
  initial: () => create(CartSchema),
  snapshotEvery: snapshotEveryFromEnv(5),
  events: [
    [ItemAddedSchema, itemAdded],
    [ItemRemovedSchema, itemRemoved],
  ],
  commands: {
    addItem(item, ctx) {
      if (item.quantity <= 0) {
        ctx.fail(`Cannot add negative quantity of ${item.productId}: quantity must be positive`);
      }
      const { productId, name, quantity } = item;
      ctx.emit(create(ItemAddedSchema, { item: { productId, name, quantity } }));
      return {};
    },
    removeItem({ productId }, ctx) {
      if (!ctx.state.items.some((line) => line.productId === productId)) {
        ctx.fail(`Cannot remove item ${productId} because it is not in the cart`);
      }
      ctx.emit(create(ItemRemovedSchema, { productId }));
      return {};
    },
    getCart(_query, ctx) {
      // The API's Cart is its own type: map the domain lines to it (in the order they were added).
      return { items: ctx.state.items.map(({ productId, name, quantity }) => ({ productId, name, quantity })) };
    },
  },
});

// Event handlers update the state they are given and return it.
function itemAdded(cart: Cart, { item }: ItemAdded): Cart {
  if (!item) return cart;
  const line = cart.items.find((l) => l.productId === item.productId);
  if (line) line.quantity += item.quantity;
  else cart.items.push(item);
  return cart;
}

function itemRemoved(cart: Cart, { productId }: ItemRemoved): Cart {
  cart.items = cart.items.filter((l) => l.productId !== productId);
  return cart;
}

/** SNAPSHOT_EVERY lets experiments change the snapshot interval without a code change. */
function snapshotEveryFromEnv(fallback: number): number {
  const raw = process.env["SNAPSHOT_EVERY"];
  if (raw === undefined || raw === "") return fallback;
  const every = Number(raw);
  if (!Number.isInteger(every) || every < 0) throw new TypeError(`SNAPSHOT_EVERY must be a whole number >= 0, got "${raw}"`);
  return every;
}
