// For tests: EntitySpecs built from generated descriptors, which a test may edit first (options of
// a method, an extra method) to see how discovery and the plans built on it react.
import { clone, create, toBinary, type DescFile } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema, type FileDescriptorProto } from "@bufbuild/protobuf/wkt";
import { EntitySpecSchema, type EntitySpec } from "@cloudstate-ts/protocol";

/** The file and everything it imports, dependencies first, as editable copies. */
export function filesOf(file: DescFile): FileDescriptorProto[] {
  const out: FileDescriptorProto[] = [];
  const seen = new Set<string>();
  const visit = (f: DescFile) => {
    if (seen.has(f.name)) return;
    seen.add(f.name);
    f.dependencies.forEach(visit);
    out.push(clone(FileDescriptorProtoSchema, f.proto));
  };
  visit(file);
  return out;
}

export interface EntityInit {
  entityType: string;
  serviceName: string;
  persistenceId?: string;
  timeout?: bigint;
}

/** A spec declaring `entities` over `files`, speaking protocol `version` (default 0.2). */
export function specOf(files: FileDescriptorProto[], entities: EntityInit[], version = [0, 2]): EntitySpec {
  return create(EntitySpecSchema, {
    proto: toBinary(FileDescriptorSetSchema, create(FileDescriptorSetSchema, { file: files })),
    entities: entities.map((e) => ({
      entityType: e.entityType,
      serviceName: e.serviceName,
      persistenceId: e.persistenceId ?? "",
      passivationStrategy: e.timeout ? { strategy: { case: "timeout" as const, value: { timeout: e.timeout } } } : undefined,
    })),
    serviceInfo: { protocolMajorVersion: version[0], protocolMinorVersion: version[1] },
  });
}
