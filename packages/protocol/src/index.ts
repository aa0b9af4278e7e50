// The Cloudstate protocol 0.2, generated from proto/ (see scripts/gen.mjs). Nothing here is hand-written
// except this list of re-exports.
export * from "./gen/cloudstate/entity_pb.js";
export * from "./gen/cloudstate/event_sourced_pb.js";
export * from "./gen/cloudstate/value_entity_pb.js";
export * from "./gen/cloudstate/crdt_pb.js";
export * from "./gen/cloudstate/action_pb.js";
export * from "./gen/cloudstate/entity_key_pb.js";
export * from "./gen/cloudstate/eventing_pb.js";
export * from "./gen/google/api/http_pb.js";
export * from "./gen/google/api/annotations_pb.js";
export * from "./gen/google/api/httpbody_pb.js";
// gRPC server reflection (both versions: same messages, different packages) and gRPC health.
export * as reflectionV1 from "./gen/grpc/reflection/v1/reflection_pb.js";
export * as reflectionV1alpha from "./gen/grpc/reflection/v1alpha/reflection_pb.js";
export * from "./gen/grpc/health/v1/health_pb.js";
