import assert from "node:assert/strict";
import { test } from "node:test";
import { createFileRegistry, fromBinary, getOption } from "@bufbuild/protobuf";
import { file_google_protobuf_descriptor, file_google_protobuf_empty, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { eventing } from "@cloudstate-ts/protocol";
import { fileDescriptorSet, serializedFileDescriptorSet } from "./descriptors.js";
import { file_sdktest_counter } from "./testdata/gen/sdktest/counter_pb.js";
import { file_sdktest_domain } from "./testdata/gen/sdktest/domain_pb.js";
import { EventSubscriber, file_sdktest_eventing } from "./testdata/gen/sdktest/eventing_pb.js";

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

test("eventing options on methods survive the round trip the proxy makes: serialized set → registry → option 1081", () => {
  const set = fromBinary(FileDescriptorSetSchema, serializedFileDescriptorSet([file_sdktest_eventing]));
  const names = set.file.map((f) => f.name);
  assert.ok(names.indexOf("cloudstate/eventing.proto") < names.indexOf("sdktest/eventing.proto"), "eventing.proto comes before its user");
  for (const name of ["google/protobuf/any.proto", "google/protobuf/descriptor.proto", "sdktest/domain.proto", "sdktest/counter.proto"]) assert.ok(names.includes(name), name);

  const registry = createFileRegistry(set);
  const onAdded = registry.getService("sdktest.EventSubscriber")!.methods.find((m) => m.name === "OnAdded")!;
  const option = getOption(onAdded, eventing);
  assert.deepEqual(option.in?.source, { case: "eventLog", value: "counter" });
  assert.deepEqual(option.out?.destination, { case: "topic", value: "counter-summaries" });
  // Intact: the very bytes protoc wrote for the option, not a re-encoding that could drop what the SDK does not know.
  const sent = onAdded.proto.options!.$unknown!.filter((u) => u.no === 1081);
  const generated = EventSubscriber.method.onAdded.proto.options!.$unknown!.filter((u) => u.no === 1081);
  assert.equal(sent.length, 1);
  assert.deepEqual(sent, generated);
});
