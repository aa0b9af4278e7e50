// The user's services as grpc-js service definitions built at run time from their descriptors.
// Requests and replies stay bytes: the (de)serializers are identities (invariant 4).
import * as grpc from "@grpc/grpc-js";
import { Code, ProxyError } from "../errors.js";
import type { Dispatcher } from "../effects/dispatcher.js";
import type { MethodModel, ServiceModel } from "../discovery/service-model.js";
import type { Logger } from "../telemetry/logger.js";

const passThrough = (bytes: Buffer): Buffer => bytes;
const toBuffer = (bytes: Uint8Array): Buffer =>
  Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

export function toServiceError(error: unknown): Partial<grpc.ServiceError> {
  const err = ProxyError.from(error);
  return { code: err.code, details: err.message, metadata: new grpc.Metadata() };
}

export function addUserServices(
  server: grpc.Server,
  services: Iterable<ServiceModel>,
  dispatcher: Dispatcher,
  log: Logger,
): void {
  for (const service of services) {
    const definition: Record<string, grpc.MethodDefinition<Buffer, Uint8Array>> = {};
    const implementation: grpc.UntypedServiceImplementation = {};
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
      implementation[method.name] = handlerFor(service, method, dispatcher, log);
    }
    server.addService(definition as grpc.ServiceDefinition, implementation);
  }
}

function handlerFor(service: ServiceModel, method: MethodModel, dispatcher: Dispatcher, log: Logger) {
  if (method.clientStreaming || method.serverStreaming) {
    // Streaming shapes arrive with the state models that use them (CRDTs, actions).
    return (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      call.emit("error", toServiceError(new ProxyError(Code.UNIMPLEMENTED, `${method.path}: streaming calls are not supported for ${service.kind} services`)));
    };
  }
  return (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Uint8Array>) => {
    const aborter = new AbortController();
    call.once("cancelled", () => aborter.abort());
    dispatcher.call(service, method, call.request, { signal: aborter.signal }).then(
      (reply) => callback(null, reply.payload),
      (error: unknown) => {
        const err = ProxyError.from(error);
        if (err.code === Code.INTERNAL) log.error({ path: method.path, err: err.message }, "command failed");
        callback(toServiceError(err));
      },
    );
  };
}
