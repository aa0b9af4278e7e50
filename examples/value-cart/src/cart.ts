// The shopping cart as a value entity: its state is the cart, stored whole after every change.
// Its behaviour matches the event-sourced cart of examples/shopping-cart, plus RemoveCart.
import { create } from "@bufbuild/protobuf";
import { valueEntity } from "@cloudstate-ts/sdk";
import { CartSchema, LineItemSchema } from "./gen/com/example/shoppingcart/domain/cart_state_pb.js";
import { ShoppingCart } from "./gen/com/example/shoppingcart/value_cart_pb.js";

export const cart = valueEntity({
  service: ShoppingCart,
  persistenceId: "value-cart",
  state: CartSchema,
  initial: () => create(CartSchema),
  commands: {
    addItem({ productId, name, quantity }, ctx) {
      if (quantity <= 0) {
        ctx.fail(`Cannot add negative quantity of ${productId}: quantity must be positive`);
      }
      // ctx.state is this command's own copy: change it, then store it with setState.
      const cart = ctx.state;
      const line = cart.items.find((l) => l.productId === productId);
      if (line) line.quantity += quantity;
      else cart.items.push(create(LineItemSchema, { productId, name, quantity }));
      ctx.setState(cart);
      return {};
    },
    removeItem({ productId }, ctx) {
      const cart = ctx.state;
      if (!cart.items.some((line) => line.productId === productId)) {
        ctx.fail(`Cannot remove item ${productId} because it is not in the cart`);
      }
      cart.items = cart.items.filter((line) => line.productId !== productId);
      ctx.setState(cart);
      return {};
    },
    getCart(_query, ctx) {
      // The API's Cart is its own type: map the stored lines to it (in the order they were added).
      return { items: ctx.state.items.map(({ productId, name, quantity }) => ({ productId, name, quantity })) };
    },
    removeCart(_query, ctx) {
      ctx.deleteState();
      return {};
    },
  },
});
