// The eventing benchmark's live subscriber: the shopping cart plus LatencyProbe, an action that
// consumes the cart event log ("shopping-cart") and records, per event, Date.now() − ce-time (the
// journal commit time, in ms): commit → subscriber latency. It answers nothing (ctx.noReply()).
//
// The samples are served as JSON on a plain HTTP endpoint on 127.0.0.1:$LATENCY_PORT:
// GET /count → { received, distinct }; GET /samples → the same plus samples: [[ceTimeMs, latencyMs], …]
// (one sample per first delivery of an event id; `received` counts redeliveries too). The proxy
// finds the user function on PORT.
import * as http from "node:http";
import { action, serve } from "@cloudstate-ts/sdk";
import { cart } from "../../examples/shopping-cart/src/cart.js";
import { LatencyProbe } from "./gen/bench/latency_pb.js";

const latencyPort = Number(process.env.LATENCY_PORT);
if (!Number.isInteger(latencyPort) || latencyPort <= 0) throw new Error(`LATENCY_PORT must be a port, got "${process.env.LATENCY_PORT ?? ""}"`);

/** Flat pairs: ce-time (ms since the epoch), latency (ms). */
const samples: number[] = [];
const ids = new Set<string>();
let received = 0;

const latencyProbe = action({
  service: LatencyProbe,
  commands: {
    onItemAdded(_event, ctx) {
      const now = Date.now();
      received++;
      const event = ctx.cloudEvent;
      if (event?.time !== undefined && !ids.has(event.id)) {
        ids.add(event.id);
        const at = event.time.getTime();
        samples.push(at, now - at);
      }
      return ctx.noReply();
    },
  },
});

const server = http.createServer((req, res) => {
  if (req.method === "GET" && req.url === "/count") {
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ received, distinct: ids.size }));
    return;
  }
  if (req.method !== "GET" || req.url !== "/samples") {
    res.writeHead(404, { "content-type": "text/plain" }).end("not found: try GET /count or GET /samples");
    return;
  }
  const pairs: [number, number][] = [];
  for (let i = 0; i < samples.length; i += 2) pairs.push([samples[i]!, samples[i + 1]!]);
  res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ received, distinct: ids.size, samples: pairs }));
});
server.listen(latencyPort, "127.0.0.1");
// The SDK closes its server on SIGTERM and then exits; this endpoint must not hold the process open.
server.unref();

await serve({ entities: [cart, latencyProbe], handleSignals: true });
