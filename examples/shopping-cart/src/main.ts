// Runs the shopping cart user function: listens on PORT (default 8080) for the proxy. Besides the
// cart, it serves the "popular products" projection fed by the cart event log.
import { serve } from "@cloudstate-ts/sdk";
import { cart } from "./cart.js";
import { cartEvents, popularProducts } from "./popularity.js";

await serve({ entities: [cart, cartEvents, popularProducts], handleSignals: true });
