// The shopping cart alone (no "popular products" projection): the user function of the AddItem and
// GetCart scenarios (main.ts), and the eventing benchmark's writer, so that a proxy in front of it
// journals cart events with no consumer reading them. Listens on PORT.
import { serve } from "@cloudstate-ts/sdk";
import { cart } from "../../examples/shopping-cart/src/cart.js";

await serve({ entities: [cart], handleSignals: true });
