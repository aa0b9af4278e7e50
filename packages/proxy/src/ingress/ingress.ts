// The proxy's one port. Each connection is sniffed: HTTP/2 (gRPC) goes to grpc-js, HTTP/1.1 to the
// health probes first, then to the HTTP/JSON handler (http/http-handler.ts).
import * as grpc from "@grpc/grpc-js";
import * as http from "node:http";
import * as net from "node:net";
import type { Logger } from "../telemetry/logger.js";

export interface IngressOptions {
  readonly host: string;
  readonly port: number;
  readonly maxMessageBytes: number;
  readonly log: Logger;
  readonly isReady: () => boolean;
  /** HTTP/1.1 requests other than the health routes; without it they get 404. */
  readonly http?: HttpRequestHandler;
  /** The web console: every path under /console, before the HTTP/JSON handler; absent when off. */
  readonly console?: { handle(req: http.IncomingMessage, res: http.ServerResponse): void } | undefined;
  /** Topics over HTTP: every path under /eventing/, before the HTTP/JSON handler. */
  readonly eventing?: { handle(req: http.IncomingMessage, res: http.ServerResponse): void } | undefined;
}

export interface HttpRequestHandler {
  handle(req: http.IncomingMessage, res: http.ServerResponse): void;
  /** Refuses new requests; resolves when the open ones are done. */
  drain(): Promise<void>;
}

const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

export class Ingress {
  readonly grpcServer: grpc.Server;
  private readonly injector: grpc.ConnectionInjector;
  private readonly httpServer: http.Server;
  private readonly listener: net.Server;
  private readonly sockets = new Set<net.Socket>();

  constructor(private readonly o: IngressOptions) {
    this.grpcServer = new grpc.Server({
      "grpc.max_receive_message_length": o.maxMessageBytes,
      "grpc.max_send_message_length": o.maxMessageBytes,
    });
    this.injector = this.grpcServer.createConnectionInjector(grpc.ServerCredentials.createInsecure());
    this.httpServer = http.createServer((req, res) => this.onHttp(req, res));
    this.listener = net.createServer((socket) => this.onConnection(socket));
  }

  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.listener.once("error", reject);
      this.listener.listen(this.o.port, this.o.host, () => {
        this.listener.off("error", reject);
        resolve((this.listener.address() as net.AddressInfo).port);
      });
    });
  }

  /**
   * Stops accepting; open calls get until the grace period ends. Then `onGraceExpired` fails what is
   * still pending (so those callers learn their command was not applied), and connections are dropped.
   */
  async close(graceMs: number, onGraceExpired: () => void = () => undefined): Promise<void> {
    const listenerClosed = new Promise<void>((resolve) => this.listener.close(() => resolve()));
    const grpcDone = new Promise<void>((resolve) => this.grpcServer.tryShutdown(() => resolve()));
    const httpDone = this.o.http?.drain();
    this.httpServer.closeIdleConnections();
    let force: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => {
      onGraceExpired();
      // A moment for the failed calls' statuses to reach their clients before the sockets go.
      force = setTimeout(() => {
        this.grpcServer.forceShutdown();
        for (const s of this.sockets) s.destroy();
      }, 100);
    }, graceMs);
    await Promise.all([grpcDone, httpDone]);
    clearTimeout(timer);
    clearTimeout(force);
    this.httpServer.close();
    this.httpServer.closeAllConnections();
    for (const s of this.sockets) s.destroy();
    await listenerClosed;
  }

  private onConnection(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.once("close", () => this.sockets.delete(socket));
    socket.setNoDelay(true);
    socket.once("data", (chunk: Buffer) => {
      // Put the first bytes back; HTTP/2 reads them from the paused socket, HTTP/1.1 on resume.
      socket.pause();
      socket.unshift(chunk);
      const n = Math.min(chunk.length, H2_PREFACE.length);
      if (chunk.subarray(0, n).equals(H2_PREFACE.subarray(0, n))) {
        this.injector.injectConnection(socket);
      } else {
        this.httpServer.emit("connection", socket);
        socket.resume();
      }
    });
    socket.on("error", (err) => this.o.log.debug({ err: err.message }, "client connection error"));
  }

  private onHttp(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (req.headers["k-network-probe"] === "queue") {
      res.writeHead(200, { "content-type": "text/plain" }).end("queue");
      return;
    }
    const path = (req.url ?? "/").split("?")[0];
    if (path === "/alive") {
      res.writeHead(200, { "content-type": "text/plain" }).end("alive");
      return;
    }
    if (path === "/ready") {
      const ready = this.o.isReady();
      res.writeHead(ready ? 200 : 503, { "content-type": "text/plain" }).end(ready ? "ready" : "not ready");
      return;
    }
    if (this.o.console && (path === "/console" || path.startsWith("/console/"))) {
      this.o.console.handle(req, res);
      return;
    }
    if (this.o.eventing && path.startsWith("/eventing/")) {
      this.o.eventing.handle(req, res);
      return;
    }
    if (this.o.http) {
      this.o.http.handle(req, res);
      return;
    }
    res.writeHead(404, { "content-type": "application/json" });
    res.end(JSON.stringify({ code: 5, message: `no route for ${req.method} ${path}`, details: [] }));
  }
}
