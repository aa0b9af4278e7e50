// Runs the counters' user function: listens on PORT (default 8080) for the proxy.
import { serve } from "@cloudstate-ts/sdk";
import { counter, poll, upDownCounter } from "./counters.js";

await serve({ entities: [counter, upDownCounter, poll], handleSignals: true });
