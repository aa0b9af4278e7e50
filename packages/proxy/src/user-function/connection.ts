// The proxy's side of the Cloudstate protocol: one gRPC (h2c) channel to the user function, over
// which discovery runs and every entity opens its stream. Messages are protobuf-es encoded here;
// command payloads inside them are the clients' bytes, passed through.
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import {
  EntitySpecSchema,
  ProxyInfoSchema,
  UserFunctionErrorSchema,
  type EntitySpec,
  type ProxyInfo,
} from "@cloudstate-ts/protocol";
import { EmptySchema } from "@bufbuild/protobuf/wkt";
import { ProxyError, Code } from "../errors.js";
import { H2Channel, type FrameCodec } from "./h2-channel.js";

export interface UserFunctionAddress {
  readonly host: string;
  readonly port: number;
}

export const formatAddress = (a: UserFunctionAddress): string =>
  a.host.includes(":") ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;

function cancelOnAbort(call: { cancel(): void }, signal: AbortSignal | undefined): void {
  if (!signal) return;
  if (signal.aborted) call.cancel();
  else signal.addEventListener("abort", () => call.cancel(), { once: true });
}

export interface BidiStream<In, Out> {
  write(message: In): void;
  end(): void;
  cancel(): void;
  on(event: "data", listener: (message: Out) => void): this;
  on(event: "error", listener: (error: grpc.ServiceError) => void): this;
  on(event: "end" | "close", listener: () => void): this;
}

function serializer<D extends DescMessage>(schema: D) {
  return (message: MessageShape<D>): Buffer => {
    const bytes = toBinary(schema, message);
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };
}

function deserializer<D extends DescMessage>(schema: D) {
  return (bytes: Buffer): MessageShape<D> => fromBinary(schema, bytes);
}

export class UserFunctionConnection {
  readonly address: string;
  private readonly client: grpc.Client;
  /** The entity streams' own HTTP/2 session (see h2-channel.ts); opened on the first entity stream. */
  private h2: H2Channel | undefined;

  constructor(
    private readonly target: UserFunctionAddress,
    private readonly maxMessageBytes: number,
  ) {
    this.address = formatAddress(target);
    this.client = new grpc.Client(this.address, grpc.credentials.createInsecure(), {
      "grpc.max_receive_message_length": maxMessageBytes,
      "grpc.max_send_message_length": maxMessageBytes,
      // No call to the user function can be retried by the channel (streams carry commands); this
      // also spares every message grpc-js's retry buffering.
      "grpc.enable_retries": 0,
      // The user function is a sidecar on loopback: reconnect quickly when it restarts.
      "grpc.initial_reconnect_backoff_ms": 100,
      "grpc.max_reconnect_backoff_ms": 1000,
      "grpc.keepalive_time_ms": 30_000,
    });
  }

  discover(info: ProxyInfo, deadlineMs: number): Promise<EntitySpec> {
    return this.unary("/cloudstate.EntityDiscovery/discover", ProxyInfoSchema, EntitySpecSchema, info, deadlineMs);
  }

  async reportError(message: string): Promise<void> {
    await this.unary(
      "/cloudstate.EntityDiscovery/reportError",
      UserFunctionErrorSchema,
      EmptySchema,
      create(UserFunctionErrorSchema, { message }),
      5_000,
    );
  }

  /** Opens a protocol stream, e.g. `/cloudstate.eventsourced.EventSourced/handle`. */
  openStream<I extends DescMessage, O extends DescMessage>(
    path: string,
    input: I,
    output: O,
    metadata?: grpc.Metadata,
  ): BidiStream<MessageShape<I>, MessageShape<O>> {
    return this.client.makeBidiStreamRequest(
      path,
      serializer(input),
      deserializer(output),
      metadata ?? new grpc.Metadata(),
      {},
    ) as unknown as BidiStream<MessageShape<I>, MessageShape<O>>;
  }

  /**
   * Opens a long-lived entity stream (e.g. `/cloudstate.eventsourced.EventSourced/handle`) on the
   * lean HTTP/2 client: the codec writes whole gRPC frames and reads messages.
   */
  openEntityStream<In, Out>(path: string, codec: FrameCodec<In, Out>): BidiStream<In, Out> {
    this.h2 ??= new H2Channel(this.target.host, this.target.port, { maxMessageBytes: this.maxMessageBytes });
    return this.h2.openStream(path, codec);
  }

  unary<I extends DescMessage, O extends DescMessage>(
    path: string,
    input: I,
    output: O,
    message: MessageShape<I>,
    deadlineMs: number,
    signal?: AbortSignal,
  ): Promise<MessageShape<O>> {
    return new Promise((resolve, reject) => {
      const call = this.client.makeUnaryRequest(
        path,
        serializer(input),
        deserializer(output),
        message,
        new grpc.Metadata(),
        { deadline: Date.now() + deadlineMs },
        (err, res) => (err ? reject(this.toProxyError(err)) : resolve(res!)),
      );
      cancelOnAbort(call, signal);
    });
  }

  /** A client-streaming call: write messages, end, and await the one response. */
  clientStream<I extends DescMessage, O extends DescMessage>(
    path: string,
    input: I,
    output: O,
    signal?: AbortSignal,
  ): { write(message: MessageShape<I>): void; end(): void; response: Promise<MessageShape<O>> } {
    let call!: grpc.ClientWritableStream<MessageShape<I>>;
    const response = new Promise<MessageShape<O>>((resolve, reject) => {
      call = this.client.makeClientStreamRequest(
        path,
        serializer(input),
        deserializer(output),
        new grpc.Metadata(),
        {},
        (err, res) => (err ? reject(this.toProxyError(err)) : resolve(res!)),
      );
    });
    cancelOnAbort(call, signal);
    return { write: (m) => void call.write(m), end: () => call.end(), response };
  }

  /** A server-streaming call, as an async iterable of responses (errors become ProxyErrors). */
  serverStream<I extends DescMessage, O extends DescMessage>(
    path: string,
    input: I,
    output: O,
    message: MessageShape<I>,
    signal?: AbortSignal,
  ): AsyncIterable<MessageShape<O>> {
    const call = this.client.makeServerStreamRequest(path, serializer(input), deserializer(output), message, new grpc.Metadata(), {});
    cancelOnAbort(call, signal);
    return this.iterate<MessageShape<O>>(call);
  }

  /** Reads a grpc-js response stream, mapping its error to a ProxyError that names the user function. */
  async *iterate<T>(call: AsyncIterable<unknown>): AsyncIterable<T> {
    try {
      for await (const message of call) yield message as T;
    } catch (e) {
      throw this.toProxyError(e as grpc.ServiceError);
    }
  }

  /** Maps a channel error to the status a client should see, naming the user function's address. */
  toProxyError(err: grpc.ServiceError): ProxyError {
    if (err instanceof ProxyError) return err;
    if (err.code === Code.UNAVAILABLE) {
      return new ProxyError(Code.UNAVAILABLE, `user function at ${this.address} is unavailable: ${err.details || err.message}`, { cause: err });
    }
    return new ProxyError(err.code, err.details || err.message, { cause: err });
  }

  close(): void {
    this.client.close();
    this.h2?.close();
  }
}
