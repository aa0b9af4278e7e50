// The user's services as grpc-js service definitions built at run time from their descriptors.
// Requests and replies stay bytes: the (de)serializers are identities (invariant 4).
import * as grpc from "@grpc/grpc-js";
import { Code, ProxyError } from "../errors.js";
import type { Dispatcher, Reply } from "../effects/dispatcher.js";
import type { MethodModel, ServiceModel } from "../discovery/service-model.js";
import type { CommandOutcome, EntityService } from "../entities/command.js";
import { ActionService } from "../entities/action/action-service.js";
import type { Logger } from "../telemetry/logger.js";
import { metadataFromGrpc, metadataToGrpc } from "./metadata.js";
import { serverStreamOutcomes } from "./streamed.js";
import { REQUEST_ID_HEADER, requestIdOf, withRequestId } from "./request-id.js";

const passThrough = (bytes: Buffer): Buffer => bytes;
const toBuffer = (bytes: Uint8Array): Buffer =>
  Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
const EMPTY = Buffer.alloc(0);

export function toServiceError(error: unknown): Partial<grpc.ServiceError> {
  const err = ProxyError.from(error);
  return { code: err.code, details: err.message, metadata: new grpc.Metadata() };
}

export function addUserServices(
  server: grpc.Server,
  services: Iterable<ServiceModel>,
  dispatcher: Dispatcher,
  handlers: ReadonlyMap<string, EntityService>,
  log: Logger,
): void {
  for (const service of services) {
    const definition: Record<string, grpc.MethodDefinition<Buffer, Uint8Array>> = {};
    const implementation: grpc.UntypedServiceImplementation = {};
    const handler = handlers.get(service.name);
    for (const method of service.methods.values()) {
      definition[method.name] = {
        path: method.path,
        requestStream: method.clientStreaming,
        responseStream: method.serverStreaming,
        requestSerialize: passThrough,
        requestDeserialize: passThrough,
        responseSerialize: toBuffer,
        responseDeserialize: passThrough,
        originalName: method.name,
      };
      const ctx = new CallHandlers(service, method, dispatcher, log);
      implementation[method.name] = !method.clientStreaming && !method.serverStreaming
        ? ctx.unary
        : !method.clientStreaming
          ? ctx.serverStream(handler)
          : handler instanceof ActionService
            ? ctx.actionClientStream(handler)
            : ctx.unsupported;
    }
    server.addService(definition as grpc.ServiceDefinition, implementation);
  }
}


/** The handlers of one method, for each call shape. */
class CallHandlers {
  /** Event-sourced commands carry no metadata (PROTOCOL.md §5): skip the header copy on the hot path. */
  private readonly withMetadata: boolean;

  constructor(
    private readonly service: ServiceModel,
    private readonly method: MethodModel,
    private readonly dispatcher: Dispatcher,
    private readonly log: Logger,
  ) {
    this.withMetadata = service.kind !== "eventSourced";
  }

  readonly unary = (call: grpc.ServerUnaryCall<Buffer, Uint8Array>, callback: grpc.sendUnaryData<Uint8Array>): void => {
    const signal = lazyCancellation(call);
    const rid = requestIdOf(call.metadata.get(REQUEST_ID_HEADER)[0]);
    const metadata = this.withMetadata ? withRequestId(metadataFromGrpc(call.metadata), rid) : undefined;
    this.dispatcher.call(this.service, this.method, call.request, { signal, metadata, requestId: rid.id }).then(
      (reply) => {
        const headers = metadataToGrpc(reply.metadata) ?? new grpc.Metadata();
        headers.set(REQUEST_ID_HEADER, rid.id);
        call.sendMetadata(headers);
        callback(null, reply.payload);
      },
      (error: unknown) => callback(this.failed(error, rid.id)),
    );
  };

  readonly unsupported = (call: grpc.ServerWritableStream<Buffer, Uint8Array> | grpc.ServerDuplexStream<Buffer, Uint8Array>): void => {
    call.emit("error", toServiceError(new ProxyError(Code.UNIMPLEMENTED, `${this.method.path}: streaming calls are not supported yet for ${this.service.kind} services`)));
  };

  /** Client-streaming and bidirectional action calls. */
  actionClientStream(action: ActionService) {
    const { method } = this;
    if (!method.serverStreaming) {
      return (call: grpc.ServerReadableStream<Buffer, Uint8Array>, callback: grpc.sendUnaryData<Uint8Array>) => {
        const signal = abortOnCancel(call);
        const ctx = { signal, metadata: metadataFromGrpc(call.metadata) };
        action
          .streamedIn(method, requestsOf(call), ctx.metadata, signal)
          .then((outcome) => this.dispatcher.settle(outcome, this.service, method, ctx))
          .then(
            (reply) => {
              const headers = metadataToGrpc(reply?.metadata);
              if (headers) call.sendMetadata(headers);
              callback(null, reply?.payload ?? EMPTY);
            },
            (error: unknown) => callback(this.failed(error)),
          );
      };
    }
    return (call: grpc.ServerDuplexStream<Buffer, Uint8Array>) => {
      const signal = abortOnCancel(call);
      const ctx = { signal, metadata: metadataFromGrpc(call.metadata) };
      void this.relay(action.streamed(method, requestsOf(call), ctx.metadata, signal), call, ctx);
    };
  }

  /** Server streaming (one request, a stream of replies): an action's or a CRDT entity's, as in streamed.ts. */
  serverStream(handler: EntityService | undefined) {
    const { service, method } = this;
    return (call: grpc.ServerWritableStream<Buffer, Uint8Array>) => {
      const signal = abortOnCancel(call);
      const ctx = { signal, metadata: metadataFromGrpc(call.metadata) };
      let outcomes: AsyncIterable<CommandOutcome>;
      try {
        outcomes = serverStreamOutcomes(handler, service, method, call.request, ctx.metadata, signal);
      } catch (error) {
        call.emit("error", this.failed(error));
        return;
      }
      void this.relay(outcomes, call, ctx);
    };
  }

  /** Sends each outcome's reply (in order, after its effects) down a server stream. */
  private async relay(
    outcomes: AsyncIterable<CommandOutcome>,
    call: grpc.ServerWritableStream<Buffer, Uint8Array> | grpc.ServerDuplexStream<Buffer, Uint8Array>,
    ctx: { signal: AbortSignal; metadata: ReturnType<typeof metadataFromGrpc> },
  ): Promise<void> {
    let headersSent = false;
    try {
      for await (const outcome of outcomes) {
        const reply: Reply | undefined = await this.dispatcher.settle(outcome, this.service, this.method, ctx);
        if (reply === undefined || call.cancelled) continue;
        if (!headersSent) {
          headersSent = true;
          const headers = metadataToGrpc(reply.metadata);
          if (headers) call.sendMetadata(headers);
        }
        call.write(reply.payload);
      }
      call.end();
    } catch (error) {
      if (!call.cancelled) call.emit("error", this.failed(error));
    }
  }

  /** The status for the client; with a request id, it is logged with the error and sent in the trailers. */
  private failed(error: unknown, requestId?: string): Partial<grpc.ServiceError> {
    const err = ProxyError.from(error);
    if (err.code === Code.INTERNAL) this.log.error({ path: this.method.path, requestId, err: err.message }, "command failed");
    const status = toServiceError(err);
    if (requestId !== undefined) status.metadata?.set(REQUEST_ID_HEADER, requestId);
    return status;
  }
}

/**
 * The client's messages. Iterating the call itself would destroy it when the client half-closes,
 * losing the replies still to come and the final status.
 */
function requestsOf(call: grpc.ServerReadableStream<Buffer, Uint8Array> | grpc.ServerDuplexStream<Buffer, Uint8Array>): AsyncIterable<Buffer> {
  return call.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>;
}

/**
 * The unary hot path's cancellation: the call's own `cancelled` flag and event behind the part of
 * AbortSignal the proxy uses (aborted, add/removeEventListener, throwIfAborted). A real
 * AbortController per call cost ~8% of the proxy's CPU (grpc-js emits "cancelled" after every call).
 */
function lazyCancellation(call: grpc.ServerUnaryCall<Buffer, Uint8Array>): AbortSignal {
  const signal = {
    get aborted() {
      return call.cancelled;
    },
    addEventListener(_type: "abort", listener: () => void) {
      call.once("cancelled", listener);
    },
    removeEventListener(_type: "abort", listener: () => void) {
      call.removeListener("cancelled", listener);
    },
    throwIfAborted() {
      if (call.cancelled) throw new ProxyError(Code.CANCELLED, "the call was cancelled");
    },
  };
  return signal as unknown as AbortSignal;
}

/** Aborted when the client cancels or its deadline passes. */
function abortOnCancel(call: { once(event: "cancelled", listener: () => void): unknown }): AbortSignal {
  const aborter = new AbortController();
  call.once("cancelled", () => aborter.abort());
  return aborter.signal;
}
