// Runs the fraud detection user function: listens on PORT (default 8080) for the proxy. It serves
// the accounts (event-sourced) and the fraud monitor (a value entity fed by the account event log).
import { serve } from "@cloudstate-ts/sdk";
import { account } from "./account.js";
import { fraudMonitor } from "./monitor.js";

await serve({ entities: [account, fraudMonitor], handleSignals: true });
