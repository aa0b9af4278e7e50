// GET /metrics (Prometheus text format) on a port of its own, beside the ingress.
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "./logger.js";
import type { ProxyMetrics } from "./metrics.js";

export interface MetricsServer {
  readonly port: number;
  close(): Promise<void>;
}

/** Answers a scrape on any HTTP server; false when the request is not `GET /metrics`. */
export function serveMetrics(metrics: ProxyMetrics, req: http.IncomingMessage, res: http.ServerResponse, log: Logger): boolean {
  const path = (req.url ?? "/").split("?")[0];
  if (path !== "/metrics" || (req.method !== "GET" && req.method !== "HEAD")) return false;
  metrics.render().then(
    ({ body, contentType }) => {
      res.writeHead(200, { "content-type": contentType });
      res.end(req.method === "HEAD" ? undefined : body);
    },
    (err: unknown) => {
      log.error({ err: (err as Error).message }, "collecting metrics failed");
      res.writeHead(500, { "content-type": "text/plain" }).end("collecting metrics failed");
    },
  );
  return true;
}

export function startMetricsServer(metrics: ProxyMetrics, host: string, port: number, log: Logger): Promise<MetricsServer> {
  const server = http.createServer((req, res) => {
    if (!serveMetrics(metrics, req, res, log)) res.writeHead(404, { "content-type": "text/plain" }).end("not found: try GET /metrics");
  });
  // Scrapers keep connections alive; they must not hold a stopping proxy open.
  server.keepAliveTimeout = 5_000;
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve({
        port: (server.address() as AddressInfo).port,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
  });
}
