// The "popular products" projection. CartEvents consumes the cart event log (the journal of every
// shopping-cart entity, PROTOCOL.md §8) and forwards each event to the view of its product,
// PopularProducts: a value entity per product that counts adds, units and removals, queryable over
// gRPC and HTTP (GET /products/{product_id}/popularity).
//
// Delivery is at least once: after a crash the proxy delivers the events after its last committed
// offset again. The view stays exact because it remembers, per cart, the offset (ce-id) of the last
// event it counted: events of one cart arrive in journal order, so an offset not above it was
// counted. It forgets the offsets at or below the consumer's committed offset (metadata
// cloudstate-committed-offset): those events never come again, so the state stays small.
import { create } from "@bufbuild/protobuf";
import { action, valueEntity, type ActionContext } from "@cloudstate-ts/sdk";

/** The metadata in which the proxy gives each delivery its consumer's committed offset. */
const COMMITTED_OFFSET = "cloudstate-committed-offset";
import { ProductPopularityStateSchema } from "./gen/com/example/shoppingcart/domain/domain_pb.js";
import { CartEvents, PopularProducts, type CartEventSeen } from "./gen/com/example/shoppingcart/popularity_pb.js";

export const cartEvents = action({
  service: CartEvents,
  commands: {
    onItemAdded({ item }, ctx) {
      if (item === undefined) return ctx.noReply();
      return ctx.forward(PopularProducts.method.recordCartEvent, {
        ...seen(ctx),
        productId: item.productId,
        name: item.name,
        quantityAdded: item.quantity,
      });
    },
    onItemRemoved({ productId }, ctx) {
      return ctx.forward(PopularProducts.method.recordCartEvent, { ...seen(ctx), productId, removed: true });
    },
  },
});

/** Which cart journaled the event (ce-subject) and where it sits in the event log (ce-id). */
function seen(ctx: ActionContext): Pick<CartEventSeen, "cartId" | "offset" | "committedOffset"> {
  const event = ctx.cloudEvent;
  if (event?.subject === undefined || !/^\d+$/.test(event.id)) {
    ctx.fail("CartEvents only takes events of the shopping-cart event log (with ce-subject and a numeric ce-id)");
  }
  const committed = ctx.metadata.get(COMMITTED_OFFSET);
  return { cartId: event.subject, offset: BigInt(event.id), committedOffset: typeof committed === "string" && /^\d+$/.test(committed) ? BigInt(committed) : 0n };
}

export const popularProducts = valueEntity({
  service: PopularProducts,
  persistenceId: "popular-products",
  state: ProductPopularityStateSchema,
  initial: (productId) => create(ProductPopularityStateSchema, { productId }),
  commands: {
    recordCartEvent(event, ctx) {
      const state = ctx.state;
      const last = state.lastOffsetByCart[event.cartId] ?? 0n;
      // Already counted: a redelivery after a crash.
      if (event.offset <= last) return {};
      if (event.removed) {
        state.timesRemoved += 1n;
      } else {
        state.timesAdded += 1n;
        state.quantityAdded += BigInt(event.quantityAdded);
        if (event.name !== "") state.name = event.name;
      }
      state.lastOffsetByCart[event.cartId] = event.offset;
      // Events at or below the committed offset never come again: no need to recognise them.
      for (const [cartId, offset] of Object.entries(state.lastOffsetByCart)) {
        if (offset <= event.committedOffset) delete state.lastOffsetByCart[cartId];
      }
      ctx.setState(state);
      return {};
    },
    getPopularity({ productId }, ctx) {
      const { name, quantityAdded, timesAdded, timesRemoved } = ctx.state;
      return { productId, name, quantityAdded, timesAdded, timesRemoved };
    },
  },
});
