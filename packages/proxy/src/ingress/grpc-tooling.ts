// What gRPC tools expect beside the user's services (PROTOCOL.md §7): server reflection (v1 and
// v1alpha) and grpc.health.v1.Health. Reflection lists the user's services and these three.
import type * as grpc from "@grpc/grpc-js";
import { create, createFileRegistry } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { file_grpc_health_v1_health, reflectionV1, reflectionV1alpha } from "@cloudstate-ts/protocol";
import type { UserFunctionModel } from "../discovery/service-model.js";
import { Health, HEALTH_SERVICE } from "./health.js";
import { addReflection, Reflection, REFLECTION_SERVICES } from "./reflection.js";

/** Registers reflection and health on the server; the returned Health is to be stopped when the proxy stops. */
export function addGrpcTooling(server: grpc.Server, model: UserFunctionModel, isReady: () => boolean): Health {
  const user = [...model.services.keys()];
  // A user service of the same name would clash with ours on the server: the user's wins.
  const own = [HEALTH_SERVICE, ...REFLECTION_SERVICES].filter((name) => !model.services.has(name));
  const health = new Health(user, isReady);
  if (own.includes(HEALTH_SERVICE)) health.register(server);
  if (REFLECTION_SERVICES.every((name) => own.includes(name))) {
    const reflection = new Reflection({
      registry: model.registry,
      services: [...user, ...own],
      extraFiles: [
        createFileRegistry(
          create(FileDescriptorSetSchema, {
            file: [reflectionV1.file_grpc_reflection_v1_reflection, reflectionV1alpha.file_grpc_reflection_v1alpha_reflection, file_grpc_health_v1_health].map((f) => f.proto),
          }),
        ),
      ],
    });
    addReflection(server, reflection);
  }
  return health;
}
