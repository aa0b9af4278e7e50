// The FileDescriptorSet the proxy receives at discovery, built from generated code alone: every
// generated DescFile keeps its FileDescriptorProto (custom options included, as unknown fields) and
// its imports, so no protoc or .proto file is needed at run time.
import { create, toBinary, type DescFile } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema, type FileDescriptorSet } from "@bufbuild/protobuf/wkt";

/**
 * The given files and all their transitive imports, each once, every file after its imports
 * (the order protoc uses, so a consumer can build a registry in one pass).
 */
export function fileDescriptorSet(files: Iterable<DescFile>): FileDescriptorSet {
  const seen = new Set<string>();
  const ordered: DescFile["proto"][] = [];
  const visit = (file: DescFile): void => {
    if (seen.has(file.proto.name)) return;
    seen.add(file.proto.name);
    for (const dependency of file.dependencies) visit(dependency);
    ordered.push(file.proto);
  };
  for (const file of files) visit(file);
  return create(FileDescriptorSetSchema, { file: ordered });
}

export function serializedFileDescriptorSet(files: Iterable<DescFile>): Uint8Array {
  return toBinary(FileDescriptorSetSchema, fileDescriptorSet(files));
}
