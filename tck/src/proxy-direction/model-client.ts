// A plain grpc-js client of the model services, as any gRPC client would call them through a proxy:
// the generated protobuf-es types on the wire, request headers as gRPC metadata, the four call shapes.
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary, type DescMethod, type DescMessage, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";

export interface CallOptions {
  /** Request headers. */
  metadata?: Record<string, string>;
  /** Default 10 s. */
  deadlineMs?: number;
}

type Input<M extends DescMethod> = MessageInitShape<M["input"]>;
type Output<M extends DescMethod> = MessageShape<M["output"]>;

export class ModelClient {
  private readonly client: grpc.Client;
  /** Streamed calls still open: close() cancels them, so that no call outlives its test. */
  private readonly open = new Set<ResponseStream<unknown, unknown>>();

  constructor(readonly address: string) {
    this.client = new grpc.Client(address, grpc.credentials.createInsecure());
  }

  unary<M extends DescMethod>(method: M, input: Input<M>, options: CallOptions = {}): Promise<Output<M>> {
    const { path, serialize, deserialize } = codec(method);
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(path, serialize, deserialize, input, metadataOf(options), callOptions(options), (error, response) =>
        error ? reject(error) : resolve(response!),
      );
    });
  }

  /** A client-streaming call: sends every input, then half-closes. */
  streamedIn<M extends DescMethod>(method: M, inputs: readonly Input<M>[], options: CallOptions = {}): Promise<Output<M>> {
    const { path, serialize, deserialize } = codec(method);
    return new Promise((resolve, reject) => {
      const call = this.client.makeClientStreamRequest(path, serialize, deserialize, metadataOf(options), callOptions(options), (error, response) =>
        error ? reject(error) : resolve(response!),
      );
      for (const input of inputs) call.write(input);
      call.end();
    });
  }

  streamedOut<M extends DescMethod>(method: M, input: Input<M>, options: CallOptions = {}): ResponseStream<Output<M>, Input<M>> {
    const { path, serialize, deserialize } = codec(method);
    return this.track(new ResponseStream(this.client.makeServerStreamRequest(path, serialize, deserialize, input, metadataOf(options), callOptions(options))));
  }

  /** A bidirectional call: `send` inputs, `end` when done, read the responses. */
  streamed<M extends DescMethod>(method: M, options: CallOptions = {}): ResponseStream<Output<M>, Input<M>> {
    const { path, serialize, deserialize } = codec(method);
    return this.track(new ResponseStream(this.client.makeBidiStreamRequest(path, serialize, deserialize, metadataOf(options), callOptions(options))));
  }

  close(): void {
    for (const call of this.open) call.cancel();
    this.client.close();
  }

  private track<S extends ResponseStream<any, any>>(call: S): S {
    this.open.add(call);
    void call.ended.then(() => this.open.delete(call));
    return call;
  }
}

function codec<M extends DescMethod>(method: M) {
  const input: DescMessage = method.input;
  const output: DescMessage = method.output;
  return {
    path: `/${method.parent.typeName}/${method.name}`,
    serialize: (message: Input<M>) => Buffer.from(toBinary(input, create(input, message))),
    deserialize: (bytes: Buffer) => fromBinary(output, bytes) as Output<M>,
  };
}

function metadataOf(options: CallOptions): grpc.Metadata {
  const metadata = new grpc.Metadata();
  for (const [key, value] of Object.entries(options.metadata ?? {})) metadata.add(key, value);
  return metadata;
}

const callOptions = (options: CallOptions): grpc.CallOptions => ({ deadline: Date.now() + (options.deadlineMs ?? 10_000) });

/** How a stream ended: its status (OK, or the error the client got). */
export interface StreamEnd {
  readonly code: grpc.status;
  readonly details: string;
}

/** The responses of a streamed call, in order, and how it ended. */
export class ResponseStream<Out, In> {
  private readonly queue: Out[] = [];
  private readonly waiting: ((message: Out | undefined) => void)[] = [];
  private finished = false;
  /** Resolves with the call's status when it ends. */
  readonly ended: Promise<StreamEnd>;

  constructor(private readonly call: grpc.ClientReadableStream<Out> | grpc.ClientDuplexStream<In, Out>) {
    call.on("data", (message: Out) => {
      const waiter = this.waiting.shift();
      if (waiter) waiter(message);
      else this.queue.push(message);
    });
    this.ended = new Promise((resolve) => {
      call.on("status", (status: grpc.StatusObject) => {
        this.finished = true;
        for (const waiter of this.waiting.splice(0)) waiter(undefined);
        resolve({ code: status.code, details: status.details });
      });
    });
    // The status reports a failed call; without a listener the error event would be unhandled.
    call.on("error", () => undefined);
  }

  send(input: In): void {
    this.duplex().write(input);
  }

  end(): void {
    this.duplex().end();
  }

  cancel(): void {
    this.call.cancel();
  }

  /** How the call ended, or an error naming `what` if it has not within `timeoutMs`. */
  endsWithin(timeoutMs: number, what: string): Promise<StreamEnd> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${what}: the call has not ended after ${timeoutMs} ms`)), timeoutMs);
      void this.ended.then((end) => {
        clearTimeout(timer);
        resolve(end);
      });
    });
  }

  /** The next response; undefined once the call has ended (see `ended` for how). */
  next(timeoutMs = 5_000): Promise<Out | undefined> {
    const message = this.queue.shift();
    if (message !== undefined || this.finished) return Promise.resolve(message);
    return new Promise((resolve, reject) => {
      const deliver = (m: Out | undefined) => {
        clearTimeout(timer);
        resolve(m);
      };
      const timer = setTimeout(() => {
        this.waiting.splice(this.waiting.indexOf(deliver), 1);
        reject(new Error(`no response and no end of the call within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.push(deliver);
    });
  }

  /** Every response until the call ends, and how it ended. */
  async all(timeoutMs = 5_000): Promise<{ responses: Out[]; end: StreamEnd }> {
    const responses: Out[] = [];
    for (let r = await this.next(timeoutMs); r !== undefined; r = await this.next(timeoutMs)) responses.push(r);
    return { responses, end: await this.ended };
  }

  private duplex(): grpc.ClientDuplexStream<In, Out> {
    if (!("write" in this.call)) throw new TypeError("a server-streaming call takes no client messages");
    return this.call;
  }
}
