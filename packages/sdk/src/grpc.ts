// grpc-js service definitions built from protobuf-es descriptors, so the SDK needs neither
// @grpc/proto-loader nor protobufjs: messages are (de)serialized by protobuf-es directly.
import { fromBinary, toBinary, type DescMethod, type DescService } from "@bufbuild/protobuf";
import type { ServiceDefinition } from "@grpc/grpc-js";

export function serviceDefinition(service: DescService): ServiceDefinition {
  const definition: Record<string, ServiceDefinition[string]> = {};
  for (const method of service.methods) definition[method.localName] = methodDefinition(service, method);
  return definition;
}

function methodDefinition(service: DescService, method: DescMethod): ServiceDefinition[string] {
  const { input, output } = method;
  return {
    // The path uses the proto names, e.g. /cloudstate.eventsourced.EventSourced/handle.
    path: `/${service.typeName}/${method.name}`,
    originalName: method.localName,
    requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
    responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
    requestSerialize: (message) => asBuffer(toBinary(input, message)),
    requestDeserialize: (bytes: Buffer) => fromBinary(input, bytes),
    responseSerialize: (message) => asBuffer(toBinary(output, message)),
    responseDeserialize: (bytes: Buffer) => fromBinary(output, bytes),
  };
}

// grpc-js wants a Buffer; wrapping the encoder's bytes avoids a copy.
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
