// The web console under /console: three static files (plain JS, no build step) and the JSON API.
// With a token, every API request needs `Authorization: Bearer <token>`; without one, only loopback
// clients are served (config refuses a token-less console on a non-loopback interface).
import { readFileSync } from "node:fs";
import type * as http from "node:http";
import type { AdminApi } from "./admin-api.js";
import { readBody } from "../ingress/http/http-handler.js";
import { bearerTokenMatches, sendJson } from "../ingress/http/headers.js";

const STATIC: Record<string, string> = {
  "index.html": "text/html; charset=utf-8",
  "console.js": "text/javascript; charset=utf-8",
  "console.css": "text/css; charset=utf-8",
};

export interface ConsoleHandlerOptions {
  readonly api: AdminApi;
  readonly token?: string | undefined;
  readonly maxBodyBytes: number;
}

export class ConsoleHandler {
  private readonly files = new Map<string, Buffer>();

  constructor(private readonly o: ConsoleHandlerOptions) {
    for (const name of Object.keys(STATIC)) this.files.set(name, readFileSync(new URL(`./static/${name}`, import.meta.url)));
  }

  /** Whether the ingress should hand this path to the console. */
  static owns(path: string): boolean {
    return path === "/console" || path.startsWith("/console/");
  }

  handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? "/", "http://console");
    const path = url.pathname;
    if (this.o.token === undefined && !isLoopback(req.socket.remoteAddress)) {
      sendJson(res, 403, { error: { code: "PERMISSION_DENIED", message: "the console without a token serves loopback clients only" } });
      return;
    }
    if (path === "/console") {
      res.writeHead(301, { location: "/console/" }).end();
      return;
    }
    if (path.startsWith("/console/api/")) {
      if (!bearerTokenMatches(req, this.o.token)) {
        sendJson(res, 401, { error: { code: "UNAUTHENTICATED", message: "the console API needs Authorization: Bearer <token>" } }, { "www-authenticate": "Bearer" });
        return;
      }
      const body = () => readBody(req, this.o.maxBodyBytes);
      this.o.api
        .handle(req.method ?? "GET", path.slice("/console/api".length), url.searchParams, body)
        .then((r) => sendJson(res, r.status, r.body))
        .catch((e: unknown) => sendJson(res, 500, { error: { code: "INTERNAL", message: (e as Error).message } }));
      return;
    }
    const name = path === "/console/" ? "index.html" : path.slice("/console/".length);
    const file = this.files.get(name);
    if (file === undefined || (req.method !== "GET" && req.method !== "HEAD")) {
      sendJson(res, 404, { error: { code: "NOT_FOUND", message: `no console page ${path}` } });
      return;
    }
    res.writeHead(200, { "content-type": STATIC[name]!, "content-length": file.length, "cache-control": "no-cache" });
    res.end(req.method === "HEAD" ? undefined : file);
  }
}

function isLoopback(address: string | undefined): boolean {
  if (address === undefined) return false;
  return address === "::1" || address.startsWith("127.") || address.startsWith("::ffff:127.");
}

