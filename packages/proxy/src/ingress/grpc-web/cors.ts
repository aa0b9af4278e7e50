// CORS for browsers calling the proxy from another origin (--cors-origins / CORS_ORIGINS). With no
// origins configured the proxy sends no CORS headers and preflights get no special answer.
import type * as http from "node:http";

/** Request headers a browser client of gRPC-web, Connect or HTTP/JSON needs to send. */
export const CORS_ALLOWED_HEADERS = [
  "content-type",
  "x-grpc-web",
  "x-user-agent",
  "grpc-timeout",
  "connect-protocol-version",
  "connect-timeout-ms",
  "connect-accept-encoding",
  "connect-content-encoding",
  "authorization",
];
export const CORS_ALLOWED_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS";
/** Response headers the browser lets the client read (gRPC-web statuses may come as headers). */
export const CORS_EXPOSED_HEADERS = "grpc-status, grpc-message, grpc-status-details-bin, connect-content-encoding";
const MAX_AGE_SECONDS = "7200";

export class Cors {
  private readonly any: boolean;
  private readonly origins: ReadonlySet<string>;

  constructor(origins: readonly string[]) {
    this.any = origins.includes("*");
    this.origins = new Set(origins.map((o) => o.replace(/\/+$/, "").toLowerCase()));
  }

  get enabled(): boolean {
    return this.any || this.origins.size > 0;
  }

  /** The Access-Control-Allow-Origin value for this origin, or undefined when it is not allowed. */
  allowOrigin(origin: string | undefined): string | undefined {
    if (origin === undefined || !this.enabled) return undefined;
    if (this.any) return "*";
    return this.origins.has(origin.toLowerCase()) ? origin : undefined;
  }

  /**
   * Sets the CORS headers of an actual request and answers a preflight. Returns true when the request
   * was a preflight and has been answered.
   */
  handle(req: http.IncomingMessage, res: http.ServerResponse): boolean {
    if (!this.enabled) return false;
    const origin = req.headers.origin;
    const allowed = this.allowOrigin(origin);
    const preflight = req.method === "OPTIONS" && origin !== undefined && req.headers["access-control-request-method"] !== undefined;
    if (!this.any) res.setHeader("vary", "Origin");
    if (preflight) {
      if (allowed === undefined) {
        res.writeHead(403, { "content-type": "text/plain" }).end(`origin ${origin} is not allowed`);
        return true;
      }
      const requested = (req.headers["access-control-request-headers"] ?? "")
        .split(",")
        .map((h) => h.trim().toLowerCase())
        .filter((h) => /^[!#$%&'*+\-.^_`|~0-9a-z]+$/.test(h));
      res.writeHead(204, {
        "access-control-allow-origin": allowed,
        "access-control-allow-methods": CORS_ALLOWED_METHODS,
        "access-control-allow-headers": [...new Set([...CORS_ALLOWED_HEADERS, ...requested])].join(", "),
        "access-control-max-age": MAX_AGE_SECONDS,
      });
      res.end();
      return true;
    }
    if (allowed !== undefined) {
      res.setHeader("access-control-allow-origin", allowed);
      res.setHeader("access-control-expose-headers", CORS_EXPOSED_HEADERS);
    }
    return false;
  }
}
