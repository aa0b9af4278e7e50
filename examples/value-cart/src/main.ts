// Runs the value cart user function: listens on PORT (default 8080) for the proxy.
import { serve } from "@cloudstate-ts/sdk";
import { cart } from "./cart.js";

await serve({ entities: [cart], handleSignals: true });
