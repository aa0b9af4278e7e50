import assert from "node:assert/strict";
import { test } from "node:test";
import { file_google_protobuf_descriptor, file_google_protobuf_empty } from "@bufbuild/protobuf/wkt";
import { fileDescriptorSet } from "./descriptors.js";
import { file_sdktest_counter } from "./testdata/gen/sdktest/counter_pb.js";
import { file_sdktest_domain } from "./testdata/gen/sdktest/domain_pb.js";

test("a descriptor set lists each file once, after its imports", () => {
  const set = fileDescriptorSet([file_sdktest_counter, file_sdktest_domain, file_google_protobuf_empty, file_sdktest_counter]);
  assert.deepEqual(
    set.file.map((f) => f.name),
    [
      "google/protobuf/empty.proto",
      "google/protobuf/descriptor.proto",
      "cloudstate/entity_key.proto",
      "sdktest/counter.proto",
      "sdktest/domain.proto",
    ],
  );
});

test("a descriptor set of a file without imports is that file", () => {
  assert.deepEqual(
    fileDescriptorSet([file_google_protobuf_descriptor]).file.map((f) => f.name),
    ["google/protobuf/descriptor.proto"],
  );
});
