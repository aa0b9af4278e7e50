// A plain grpc-js client of any service generated with protoc-gen-es, as any gRPC client would call
// it through the proxy: unary calls, and server streams that collect what they receive.
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary, type DescMessage, type DescMethod, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";

type Method<I extends DescMessage, O extends DescMessage> = DescMethod & { input: I; output: O };

/** An open server stream: what it received so far, and how it ended (if it did). */
export interface OpenStream<O extends DescMessage> {
  readonly received: MessageShape<O>[];
  /** Set once the stream ends: "ok", or the error's status. */
  readonly ended: { status: grpc.status; details: string } | undefined;
  /** Cancels the call (the client goes away). */
  cancel(): void;
}

export class GrpcClient {
  readonly raw: grpc.Client;

  constructor(port: number) {
    this.raw = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  }

  unary<I extends DescMessage, O extends DescMessage>(
    method: Method<I, O>,
    init: MessageInitShape<I>,
    options: { deadlineMs?: number; metadata?: Record<string, string> } = {},
  ): Promise<MessageShape<O>> {
    const metadata = new grpc.Metadata();
    for (const [k, v] of Object.entries(options.metadata ?? {})) metadata.set(k, v);
    return new Promise((resolve, reject) => {
      this.raw.makeUnaryRequest(
        path(method),
        (m: MessageShape<I>) => Buffer.from(toBinary(method.input, m)),
        (b: Buffer) => fromBinary(method.output, b),
        create(method.input, init),
        metadata,
        { deadline: Date.now() + (options.deadlineMs ?? 10_000) },
        (err, res) => (err ? reject(err) : resolve(res!)),
      );
    });
  }

  stream<I extends DescMessage, O extends DescMessage>(method: Method<I, O>, init: MessageInitShape<I>): OpenStream<O> {
    const call = this.raw.makeServerStreamRequest(
      path(method),
      (m: MessageShape<I>) => Buffer.from(toBinary(method.input, m)),
      (b: Buffer) => fromBinary(method.output, b),
      create(method.input, init),
      new grpc.Metadata(),
      {},
    );
    const received: MessageShape<O>[] = [];
    let ended: OpenStream<O>["ended"];
    call.on("data", (m: MessageShape<O>) => received.push(m));
    call.on("status", (s: grpc.StatusObject) => (ended ??= { status: s.code, details: s.details }));
    call.on("error", () => {}); // the status says it
    return {
      received,
      get ended() {
        return ended;
      },
      cancel: () => call.cancel(),
    };
  }

  close(): void {
    this.raw.close();
  }
}

function path(method: DescMethod): string {
  return `/${method.parent.typeName}/${method.name}`;
}

/** Polls `check` until it holds; fails after `timeoutMs` with `what()`. */
export async function eventually(check: () => boolean | Promise<boolean>, what: () => string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
