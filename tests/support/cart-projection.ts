// The workload of the projection tests: a fixed script of cart commands (each emits exactly one
// event), the "popular products" view it must produce, and helpers to run the script through a
// proxy and to read the view back.
import { ShoppingCart } from "../../examples/shopping-cart/src/gen/com/example/shoppingcart/shoppingcart_pb.js";
import { PopularProducts } from "../../examples/shopping-cart/src/gen/com/example/shoppingcart/popularity_pb.js";
import type { GrpcClient } from "./grpc-client.js";

export const PRODUCTS = 20;

export type CartCommand =
  | { readonly kind: "add"; readonly cartId: string; readonly productId: string; readonly quantity: number }
  | { readonly kind: "remove"; readonly cartId: string; readonly productId: string };

export interface ProductView {
  quantityAdded: bigint;
  timesAdded: bigint;
  timesRemoved: bigint;
}

const productId = (n: number) => `product-${String(n % PRODUCTS).padStart(2, "0")}`;

/**
 * `carts` carts × `eventsPerCart` commands: adds of products spread over PRODUCTS, then (the last
 * two commands) removals of the first two products added — which are still in the cart, so every
 * command emits exactly one event. Commands of one cart must run in order.
 */
export function cartScript(carts: number, eventsPerCart = 10, prefix = "cart"): CartCommand[][] {
  const script: CartCommand[][] = [];
  for (let c = 0; c < carts; c++) {
    const cartId = `${prefix}-${c}`;
    const commands: CartCommand[] = [];
    for (let i = 0; i < eventsPerCart - 2; i++) {
      commands.push({ kind: "add", cartId, productId: productId(c * 7 + i * 3), quantity: 1 + ((c + i) % 5) });
    }
    commands.push({ kind: "remove", cartId, productId: productId(c * 7) });
    commands.push({ kind: "remove", cartId, productId: productId(c * 7 + 3) });
    script.push(commands);
  }
  return script;
}

/** The view the script must produce, per product id. */
export function expectedView(script: readonly CartCommand[][]): Map<string, ProductView> {
  const view = new Map<string, ProductView>();
  for (let n = 0; n < PRODUCTS; n++) view.set(productId(n), { quantityAdded: 0n, timesAdded: 0n, timesRemoved: 0n });
  for (const cart of script) {
    for (const command of cart) {
      const v = view.get(command.productId)!;
      if (command.kind === "add") {
        v.timesAdded++;
        v.quantityAdded += BigInt(command.quantity);
      } else {
        v.timesRemoved++;
      }
    }
  }
  return view;
}

/** Runs the script with `callers` concurrent callers (each cart's commands in order); rejects on the first failure. */
export async function runScript(clients: readonly GrpcClient[], script: readonly CartCommand[][]): Promise<void> {
  let next = 0;
  await Promise.all(
    clients.map(async (client) => {
      for (let c = next++; c < script.length; c = next++) {
        for (const command of script[c]!) {
          if (command.kind === "add") {
            await client.unary(ShoppingCart.method.addItem, { userId: command.cartId, productId: command.productId, name: `Product ${command.productId}`, quantity: command.quantity });
          } else {
            await client.unary(ShoppingCart.method.removeItem, { userId: command.cartId, productId: command.productId });
          }
        }
      }
    }),
  );
}

/** The view as the proxy serves it now, per product id. */
export async function readView(client: GrpcClient): Promise<Map<string, ProductView>> {
  const view = new Map<string, ProductView>();
  await Promise.all(
    Array.from({ length: PRODUCTS }, async (_, n) => {
      const p = await client.unary(PopularProducts.method.getPopularity, { productId: productId(n) });
      view.set(productId(n), { quantityAdded: p.quantityAdded, timesAdded: p.timesAdded, timesRemoved: p.timesRemoved });
    }),
  );
  return view;
}

/** Events the view has counted so far (adds + removals). */
export function counted(view: Map<string, ProductView>): bigint {
  let n = 0n;
  for (const v of view.values()) n += v.timesAdded + v.timesRemoved;
  return n;
}

/** The products whose view differs from the expectation, for an assertion message. */
export function differences(actual: Map<string, ProductView>, expected: Map<string, ProductView>): string[] {
  const out: string[] = [];
  for (const [id, want] of expected) {
    const got = actual.get(id);
    const show = (v: ProductView | undefined) => (v ? `added ${v.timesAdded}×/${v.quantityAdded} units, removed ${v.timesRemoved}×` : "none");
    if (got === undefined || got.quantityAdded !== want.quantityAdded || got.timesAdded !== want.timesAdded || got.timesRemoved !== want.timesRemoved) {
      out.push(`${id}: got ${show(got)}, want ${show(want)}`);
    }
  }
  return out;
}
