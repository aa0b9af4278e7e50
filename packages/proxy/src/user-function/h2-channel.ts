// A lean gRPC-over-HTTP/2 client for the long-lived entity streams to the user function, written
// directly on node:http2. Every command travels as one message on such a stream; grpc-js's four call
// layers (retrying → resolving → load balancing → subchannel) cost more than the whole round trip's
// own work there. This keeps only what a bidi stream on a loopback sidecar needs: one session
// (reconnected lazily), the 5-byte message framing, status from trailers, and the error mapping of
// grpc-js (errors are shaped like its ServiceError, so `UserFunctionConnection.toProxyError` applies).
// Discovery, reportError and actions stay on grpc-js.
import * as http2 from "node:http2";
import * as net from "node:net";
import { Metadata, status, type ServiceError } from "@grpc/grpc-js";
import type { BidiStream } from "./connection.js";

const {
  NGHTTP2_CANCEL,
  NGHTTP2_NO_ERROR,
  NGHTTP2_REFUSED_STREAM,
  NGHTTP2_ENHANCE_YOUR_CALM,
  NGHTTP2_INADEQUATE_SECURITY,
  NGHTTP2_INTERNAL_ERROR,
  NGHTTP2_FLAG_END_STREAM,
} = http2.constants;

/** How one stream's messages become gRPC frames and back. */
export interface FrameCodec<In, Out> {
  /** One whole gRPC message: the 5-byte prefix (flag 0, big-endian length) and the message, in one Buffer. */
  encode(message: In): Buffer;
  /** One received message (without its prefix). */
  decode(bytes: Buffer): Out;
}

/** An error shaped like grpc-js's ServiceError (`code`, `details`, `metadata`). */
export function serviceError(code: status, details: string): ServiceError {
  const error = new Error(`${code} ${status[code]}: ${details}`) as ServiceError;
  error.code = code;
  error.details = details;
  error.metadata = new Metadata();
  return error;
}

/** Frames already encoded message bytes (one copy). */
export function frame(bytes: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + bytes.length);
  out[0] = 0;
  out.writeUInt32BE(bytes.length, 1);
  out.set(bytes, 5);
  return out;
}

export interface H2ChannelOptions {
  /** Largest message accepted in either direction. */
  readonly maxMessageBytes: number;
  /** Per-stream receive window (SETTINGS_INITIAL_WINDOW_SIZE). */
  readonly streamWindowBytes?: number;
  /** Receive window of the whole connection. */
  readonly connectionWindowBytes?: number;
  /** While streams are open, a PING this often (default 30 s, as the grpc-js channel had)… */
  readonly keepaliveMs?: number;
  /** …which must be answered within this (default 20 s), or the connection counts as dead. */
  readonly keepaliveTimeoutMs?: number;
}

const REQUEST_HEADERS_BASE = {
  [http2.constants.HTTP2_HEADER_METHOD]: "POST",
  [http2.constants.HTTP2_HEADER_CONTENT_TYPE]: "application/grpc",
  [http2.constants.HTTP2_HEADER_TE]: "trailers",
} as const;

/** One HTTP/2 session and the streams open on it. */
class Session {
  /** Set once the session cannot carry new streams (error, GOAWAY, close). */
  dropped = false;
  error: Error | undefined;
  private active = 0;

  constructor(readonly h2: http2.ClientHttp2Session) {}

  get hasStreams(): boolean {
    return this.active > 0;
  }

  // The session keeps the process alive only while streams are open on it (and never once closing).
  streamOpened(): void {
    if (this.active++ === 0 && !this.dropped) this.h2.ref();
  }

  streamClosed(): void {
    if (--this.active === 0 && !this.h2.destroyed) this.h2.unref();
  }
}

export class H2Channel {
  private current: Session | undefined;
  private closed = false;
  private readonly streamWindow: number;
  private readonly connectionWindow: number;

  constructor(
    private readonly host: string,
    private readonly port: number,
    private readonly options: H2ChannelOptions,
  ) {
    this.streamWindow = options.streamWindowBytes ?? 1024 * 1024;
    this.connectionWindow = options.connectionWindowBytes ?? 16 * 1024 * 1024;
  }

  /** Opens a bidi stream; a channel that cannot connect gives a stream that errors with UNAVAILABLE. */
  openStream<In, Out>(path: string, codec: FrameCodec<In, Out>): H2BidiStream<In, Out> {
    const stream = new H2BidiStream(codec, this.options.maxMessageBytes);
    if (this.closed) {
      stream.failSoon(status.UNAVAILABLE, "the channel to the user function is closed");
      return stream;
    }
    const session = this.session();
    let req: http2.ClientHttp2Stream;
    try {
      req = session.h2.request({ ...REQUEST_HEADERS_BASE, [http2.constants.HTTP2_HEADER_PATH]: path }, { endStream: false });
    } catch (e) {
      session.dropped = true;
      if (this.current === session) this.current = undefined;
      stream.failSoon(status.UNAVAILABLE, (e as Error).message);
      return stream;
    }
    stream.attach(req, session);
    return stream;
  }

  /** No new streams (they fail with UNAVAILABLE); open ones may finish, as with grpc-js's `close()`. */
  close(): void {
    this.closed = true;
    const s = this.current;
    this.current = undefined;
    if (s) {
      s.dropped = true;
      s.h2.unref();
      if (!s.h2.closed) s.h2.close();
    }
  }

  private session(): Session {
    const s = this.current;
    if (s !== undefined && !s.dropped && !s.h2.closed && !s.h2.destroyed) return s;
    const socket = net.connect({ host: this.host, port: this.port, noDelay: true });
    const authority = this.host.includes(":") ? `[${this.host}]:${this.port}` : `${this.host}:${this.port}`;
    const h2 = http2.connect(`http://${authority}`, {
      createConnection: () => socket,
      settings: { enablePush: false, initialWindowSize: this.streamWindow },
      // Until the peer's SETTINGS arrive; a grpc-js server sets no limit of its own.
      peerMaxConcurrentStreams: 2 ** 31 - 1,
      // Node degrades badly at its session memory limit (grpc-js disables it the same way).
      maxSessionMemory: Number.MAX_SAFE_INTEGER,
    });
    const session = new Session(h2);
    this.current = session;
    h2.unref();
    const drop = (err?: Error) => {
      session.dropped = true;
      if (err && !session.error) session.error = err;
      if (this.current === session) this.current = undefined;
    };
    h2.once("connect", () => {
      try {
        if (this.connectionWindow > 65_535) h2.setLocalWindowSize(this.connectionWindow);
      } catch {
        // an older node: the default connection window stays
      }
    });
    h2.on("error", (err) => drop(err));
    h2.on("goaway", () => drop());
    socket.on("error", (err) => drop(err));
    // A peer that neither answers nor closes (a frozen process, a lost host) is found by PINGs; its
    // streams then fail UNAVAILABLE and the next stream connects afresh.
    const timeoutMs = this.options.keepaliveTimeoutMs ?? 20_000;
    const keepalive = setInterval(() => {
      if (!session.hasStreams || h2.destroyed || h2.connecting) return;
      const deadline = setTimeout(() => {
        const err = new Error(`the user function did not answer a keepalive ping within ${timeoutMs} ms`);
        drop(err);
        h2.destroy(err);
      }, timeoutMs);
      deadline.unref();
      try {
        if (!h2.ping(() => clearTimeout(deadline))) clearTimeout(deadline); // too many pings outstanding already
      } catch {
        clearTimeout(deadline); // the session is closing
      }
    }, this.options.keepaliveMs ?? 30_000);
    keepalive.unref();
    h2.on("close", () => {
      clearInterval(keepalive);
      drop();
    });
    return session;
  }
}

/**
 * One gRPC bidi stream: `write` sends a message, `end` half-closes, `cancel` resets the stream (and
 * nothing is emitted after it). Emits "data" per message, then exactly one of "end" (status OK) or
 * "error" (a ServiceError), then "close".
 */
export class H2BidiStream<In, Out> implements BidiStream<In, Out> {
  private readonly dataListeners: ((message: Out) => void)[] = [];
  private readonly errorListeners: ((error: ServiceError) => void)[] = [];
  private readonly endListeners: (() => void)[] = [];
  private readonly closeListeners: (() => void)[] = [];
  private req: http2.ClientHttp2Stream | undefined;
  private session: Session | undefined;
  /** A final event was emitted (or is due), or the stream was cancelled: nothing more is emitted. */
  private done = false;
  private status: { code: number; details: string } | undefined;
  private httpStatus = 0;
  private streamError: Error | undefined;
  // frame reader: a header split over chunks, or a message body being filled
  private readonly header = Buffer.allocUnsafe(5);
  private headerFill = 0;
  private body: Buffer | undefined;
  private bodyFill = 0;

  constructor(
    private readonly codec: FrameCodec<In, Out>,
    private readonly maxMessageBytes: number,
  ) {}

  on(event: "data", listener: (message: Out) => void): this;
  on(event: "error", listener: (error: ServiceError) => void): this;
  on(event: "end" | "close", listener: () => void): this;
  on(event: "data" | "error" | "end" | "close", listener: ((message: Out) => void) | ((error: ServiceError) => void) | (() => void)): this {
    switch (event) {
      case "data":
        this.dataListeners.push(listener as (message: Out) => void);
        break;
      case "error":
        this.errorListeners.push(listener as (error: ServiceError) => void);
        break;
      case "end":
        this.endListeners.push(listener as () => void);
        break;
      case "close":
        this.closeListeners.push(listener as () => void);
        break;
    }
    return this;
  }

  private emitError(error: ServiceError): void {
    for (const l of this.errorListeners) l(error);
    for (const l of this.closeListeners) l();
  }

  private emitEnd(): void {
    for (const l of this.endListeners) l();
    for (const l of this.closeListeners) l();
  }

  /** @internal */
  attach(req: http2.ClientHttp2Stream, session: Session): void {
    this.req = req;
    this.session = session;
    session.streamOpened();
    req.on("response", (headers, flags) => this.onResponse(headers, flags));
    req.on("trailers", (headers) => this.onStatusHeaders(headers));
    req.on("data", (chunk: Buffer) => this.onData(chunk));
    req.on("end", () => this.onEnd());
    req.on("error", (err: NodeJS.ErrnoException) => {
      // A stream error built from RST_STREAM is handled at "close" by its code; others explain it.
      if (err.code !== "ERR_HTTP2_STREAM_ERROR") this.streamError = err;
    });
    req.on("close", () => {
      session.streamClosed();
      // After the stream's other events (grpc-js does the same): an "error" may explain the close.
      process.nextTick(() => this.onClose(req.rstCode));
    });
  }

  write(message: In): void {
    if (this.done || this.req === undefined) return;
    const frame = this.codec.encode(message);
    if (frame.length - 5 > this.maxMessageBytes) {
      this.failSoon(status.RESOURCE_EXHAUSTED, `Sent message larger than max (${frame.length - 5} vs. ${this.maxMessageBytes})`);
      const req = this.req;
      if (!req.closed && !req.destroyed) req.close(NGHTTP2_CANCEL);
      return;
    }
    this.req.write(frame);
  }

  end(): void {
    if (this.done || this.req === undefined) return;
    this.req.end();
  }

  cancel(): void {
    if (this.done) return;
    this.done = true;
    const req = this.req;
    if (req !== undefined && !req.closed && !req.destroyed) req.close(NGHTTP2_CANCEL);
  }

  /** Emits an error on a later tick (never inside the caller's write). @internal */
  failSoon(code: status, details: string): void {
    if (this.done) return;
    this.done = true;
    process.nextTick(() => this.emitError(serviceError(code, details)));
  }

  private fail(code: status, details: string): void {
    if (this.done) return;
    this.done = true;
    const req = this.req;
    if (req !== undefined && !req.closed && !req.destroyed) req.close(NGHTTP2_CANCEL);
    this.emitError(serviceError(code, details));
  }

  private onResponse(headers: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader, flags: number): void {
    this.httpStatus = Number(headers[":status"] ?? 0);
    // A trailers-only response: the status is in the only HEADERS frame.
    if (flags & NGHTTP2_FLAG_END_STREAM) this.onStatusHeaders(headers);
  }

  private onStatusHeaders(headers: http2.IncomingHttpHeaders): void {
    const raw = first(headers["grpc-status"]);
    if (raw !== undefined) {
      const code = Number(raw);
      const message = first(headers["grpc-message"]);
      let details = "";
      if (message !== undefined) {
        try {
          details = decodeURIComponent(message);
        } catch {
          details = message;
        }
      }
      this.status = { code: Number.isInteger(code) && code >= 0 && code <= 16 ? code : status.UNKNOWN, details };
    } else if (this.httpStatus !== 0 && this.httpStatus !== 200) {
      this.status = mapHttpStatus(this.httpStatus);
    } else {
      this.status = { code: status.UNKNOWN, details: "No status received" };
    }
  }

  private onEnd(): void {
    if (this.done) return;
    if (this.status === undefined) return; // "close" decides
    this.finish();
  }

  private finish(): void {
    const s = this.status!;
    if (s.code === status.OK && (this.body !== undefined || this.headerFill !== 0)) {
      this.fail(status.INTERNAL, "the stream ended inside a message");
      return;
    }
    this.done = true;
    // The server is done; finish our half too (as grpc-js does), or the stream would stay open.
    const req = this.req!;
    if (!req.closed && !req.destroyed) req.close(s.code === status.OK ? NGHTTP2_NO_ERROR : NGHTTP2_CANCEL);
    if (s.code === status.OK) this.emitEnd();
    else this.emitError(serviceError(s.code, s.details));
  }

  private onClose(rstCode: number | undefined): void {
    if (this.done) return;
    if (this.status !== undefined) {
      this.finish();
      return;
    }
    const session = this.session!;
    const err = this.streamError ?? session.error;
    if (session.dropped || session.h2.destroyed) {
      this.fail(status.UNAVAILABLE, err ? err.message : "Connection dropped");
      return;
    }
    let code: status;
    let details: string;
    switch (rstCode) {
      case NGHTTP2_NO_ERROR:
        if (this.httpStatus !== 0 && this.httpStatus !== 200) ({ code, details } = mapHttpStatus(this.httpStatus));
        else [code, details] = [status.INTERNAL, `Received RST_STREAM with code ${rstCode} (Call ended without gRPC status)`];
        break;
      case NGHTTP2_REFUSED_STREAM:
        [code, details] = [status.UNAVAILABLE, "Stream refused by server"];
        break;
      case NGHTTP2_CANCEL:
        [code, details] = [status.CANCELLED, "Call cancelled"];
        break;
      case NGHTTP2_ENHANCE_YOUR_CALM:
        [code, details] = [status.RESOURCE_EXHAUSTED, "Bandwidth exhausted or memory limit exceeded"];
        break;
      case NGHTTP2_INADEQUATE_SECURITY:
        [code, details] = [status.PERMISSION_DENIED, "Protocol not secure enough"];
        break;
      case NGHTTP2_INTERNAL_ERROR:
        if (err && (err as NodeJS.ErrnoException).code && ["ECONNRESET", "ETIMEDOUT", "EPIPE"].includes((err as NodeJS.ErrnoException).code!)) {
          [code, details] = [status.UNAVAILABLE, err.message];
        } else {
          [code, details] = [status.INTERNAL, `Received RST_STREAM with code ${rstCode}${err ? `: ${err.message}` : " (Internal server error)"}`];
        }
        break;
      default:
        [code, details] = [status.INTERNAL, `Received RST_STREAM with code ${rstCode}`];
    }
    this.fail(code, details);
  }

  private onData(chunk: Buffer): void {
    if (this.done) return;
    const n = chunk.length;
    let off = 0;
    while (off < n) {
      const body = this.body;
      if (body !== undefined) {
        const take = Math.min(body.length - this.bodyFill, n - off);
        chunk.copy(body, this.bodyFill, off, off + take);
        this.bodyFill += take;
        off += take;
        if (this.bodyFill === body.length) {
          this.body = undefined;
          this.deliver(body);
          if (this.done) return;
        }
        continue;
      }
      let flag: number;
      let length: number;
      if (this.headerFill === 0 && n - off >= 5) {
        flag = chunk[off]!;
        length = chunk.readUInt32BE(off + 1);
        off += 5;
      } else {
        const take = Math.min(5 - this.headerFill, n - off);
        chunk.copy(this.header, this.headerFill, off, off + take);
        this.headerFill += take;
        off += take;
        if (this.headerFill < 5) return;
        this.headerFill = 0;
        flag = this.header[0]!;
        length = this.header.readUInt32BE(1);
      }
      if (flag !== 0) {
        this.fail(status.INTERNAL, flag === 1 ? "Received a compressed message, but no compression was negotiated" : `Invalid gRPC frame flag ${flag}`);
        return;
      }
      if (length > this.maxMessageBytes) {
        this.fail(status.RESOURCE_EXHAUSTED, `Received message larger than max (${length} vs. ${this.maxMessageBytes})`);
        return;
      }
      const message = Buffer.allocUnsafe(length);
      if (n - off >= length) {
        chunk.copy(message, 0, off, off + length);
        off += length;
        this.deliver(message);
        if (this.done) return;
      } else {
        this.body = message;
        this.bodyFill = 0;
      }
    }
  }

  private deliver(bytes: Buffer): void {
    let message: Out;
    try {
      message = this.codec.decode(bytes);
    } catch (e) {
      this.fail(status.INTERNAL, `Response message parsing error: ${(e as Error).message}`);
      return;
    }
    const listeners = this.dataListeners;
    for (let i = 0; i < listeners.length; i++) listeners[i]!(message);
  }
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function mapHttpStatus(httpStatus: number): { code: status; details: string } {
  const details = `Received HTTP status code ${httpStatus}`;
  switch (httpStatus) {
    case 400:
      return { code: status.INTERNAL, details };
    case 401:
      return { code: status.UNAUTHENTICATED, details };
    case 403:
      return { code: status.PERMISSION_DENIED, details };
    case 404:
      return { code: status.UNIMPLEMENTED, details };
    case 429:
    case 502:
    case 503:
    case 504:
      return { code: status.UNAVAILABLE, details };
    default:
      return { code: status.UNKNOWN, details };
  }
}
