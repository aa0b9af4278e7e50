import assert from "node:assert/strict";
import { test } from "node:test";
import { create } from "@bufbuild/protobuf";
import {
  FieldDescriptorProto_Label,
  FieldDescriptorProto_Type,
  FieldDescriptorProtoSchema,
  FieldOptionsSchema,
  FileDescriptorProtoSchema,
  type FileDescriptorProto,
} from "@bufbuild/protobuf/wkt";
import type { EntitySpec } from "@cloudstate-ts/protocol";
import { file_com_example_shoppingcart_shoppingcart } from "../../../../examples/shopping-cart/src/gen/com/example/shoppingcart/shoppingcart_pb.js";
import { buildModel, DiscoveryError, type ModelOptions } from "./service-model.js";
import { filesOf, specOf } from "./test-specs.js";

const options: ModelOptions = { supportedKinds: ["eventSourced"], defaultPassivationTimeoutMs: 30_000, checkProtocolVersion: true };
const CART = "com.example.shoppingcart.ShoppingCart";
const ES = "cloudstate.eventsourced.EventSourced";

const spec = specOf;

const cartFiles = filesOf(file_com_example_shoppingcart_shoppingcart);

function rejects(s: EntitySpec, pattern: RegExp, opts: ModelOptions = options) {
  assert.throws(() => buildModel(s, opts), (e: unknown) => {
    assert.ok(e instanceof DiscoveryError, `expected a DiscoveryError, got ${String(e)}`);
    assert.match(e.message, pattern);
    assert.doesNotMatch(e.message, /\n/, "one readable line");
    return true;
  });
}

test("builds the model of the shopping cart: methods, paths, type URLs, key fields, passivation", () => {
  const model = buildModel(spec(cartFiles, [{ entityType: ES, serviceName: CART, persistenceId: "carts", timeout: 100n }]), options);
  const service = model.services.get(CART)!;
  assert.equal(service.kind, "eventSourced");
  assert.equal(service.persistenceId, "carts");
  assert.equal(service.passivationTimeoutMs, 100);
  const add = service.methods.get("AddItem")!;
  assert.equal(add.path, "/com.example.shoppingcart.ShoppingCart/AddItem");
  assert.equal(add.inputTypeUrl, "type.googleapis.com/com.example.shoppingcart.AddLineItem");
  assert.equal(add.outputTypeUrl, "type.googleapis.com/google.protobuf.Empty");
  assert.deepEqual(add.keyFields.map((k) => k.name), ["user_id"]);
});

test("the persistence id defaults to the service's simple name and passivation to the proxy default", () => {
  const service = buildModel(spec(cartFiles, [{ entityType: ES, serviceName: CART }]), options).services.get(CART)!;
  assert.equal(service.persistenceId, "ShoppingCart");
  assert.equal(service.passivationTimeoutMs, 30_000);
});

test("a protocol version other than 0.2 is refused unless the check is off", () => {
  const s = spec(cartFiles, [{ entityType: ES, serviceName: CART }], [1, 0]);
  rejects(s, /protocol 1\.0.*0\.2/);
  assert.ok(buildModel(s, { ...options, checkProtocolVersion: false }).services.has(CART));
});

test("a descriptor set missing an import names the missing file", () => {
  rejects(spec(cartFiles.filter((f) => f.name !== "cloudstate/entity_key.proto"), [{ entityType: ES, serviceName: CART }]), /missing cloudstate\/entity_key\.proto/);
});

test("bytes that are not a FileDescriptorSet are refused", () => {
  const s = spec(cartFiles, [{ entityType: ES, serviceName: CART }]);
  s.proto = Uint8Array.from([0xff, 0xff, 0xff]);
  rejects(s, /not a valid FileDescriptorSet/);
});

test("no entities, an unknown service, an unknown or unsupported entity type are refused", () => {
  rejects(spec(cartFiles, []), /no entities/);
  rejects(spec(cartFiles, [{ entityType: ES, serviceName: "com.example.Nope" }]), /com\.example\.Nope is not in the user function's descriptor set/);
  rejects(spec(cartFiles, [{ entityType: "cloudstate.Unknown", serviceName: CART }]), /unknown entity type "cloudstate\.Unknown"/);
  rejects(spec(cartFiles, [{ entityType: "cloudstate.crdt.Crdt", serviceName: CART }]), /does not support/);
});

/** FieldOptions carrying `option = true` as an unknown field, as a SDK without the extension's schema sends it. */
function keyOption(number: number) {
  const options = create(FieldOptionsSchema);
  options.$unknown = [{ no: number, wireType: 0, data: Uint8Array.from([1]) }];
  return options;
}

/** A one-file proto: message Req { string id = 1 [key?]; }, service Svc { rpc Call(Req) returns (Req) [streaming?]; } */
function handMade(opts: { key: boolean; serverStreaming?: boolean; clientStreaming?: boolean }): FileDescriptorProto {
  return create(FileDescriptorProtoSchema, {
    name: "test/handmade.proto",
    package: "test",
    syntax: "proto3",
    messageType: [
      {
        name: "Req",
        field: [
          {
            name: "id",
            number: 1,
            type: FieldDescriptorProto_Type.STRING,
            label: FieldDescriptorProto_Label.OPTIONAL,
            jsonName: "id",
            options: opts.key ? keyOption(1080) : undefined,
          },
        ],
      },
    ],
    service: [
      {
        name: "Svc",
        method: [{ name: "Call", inputType: ".test.Req", outputType: ".test.Req", serverStreaming: opts.serverStreaming ?? false, clientStreaming: opts.clientStreaming ?? false }],
      },
    ],
  });
}

test("an event-sourced method whose input has no entity key is refused, naming the fix", () => {
  rejects(spec([handMade({ key: false })], [{ entityType: ES, serviceName: "test.Svc" }]), /test\.Svc\.Call.*no entity key field.*entity_key/);
  assert.ok(buildModel(spec([handMade({ key: true })], [{ entityType: ES, serviceName: "test.Svc" }]), options).services.has("test.Svc"));
});

test("the legacy key option number 50002 is honoured", () => {
  const file = handMade({ key: false });
  file.messageType[0]!.field[0]!.options = keyOption(50002);
  const model = buildModel(spec([file], [{ entityType: ES, serviceName: "test.Svc" }]), options);
  assert.deepEqual(model.services.get("test.Svc")!.methods.get("Call")!.keyFields.map((k) => k.number), [1]);
});

test("streaming methods are refused for event-sourced entities", () => {
  rejects(spec([handMade({ key: true, serverStreaming: true })], [{ entityType: ES, serviceName: "test.Svc" }]), /streaming method/);
  rejects(spec([handMade({ key: true, clientStreaming: true })], [{ entityType: ES, serviceName: "test.Svc" }]), /streaming method/);
});

test("fields without json_name get protoc's lowerCamel JSON name", () => {
  const file = handMade({ key: true });
  file.messageType[0]!.field.push(create(FieldDescriptorProtoSchema, { name: "display_name_2", number: 2, type: FieldDescriptorProto_Type.STRING, label: FieldDescriptorProto_Label.OPTIONAL }));
  const model = buildModel(spec([file], [{ entityType: ES, serviceName: "test.Svc" }]), options);
  const req = model.registry.getMessage("test.Req")!;
  assert.equal(req.field.displayName2!.jsonName, "displayName2");
  assert.equal(req.field.id!.jsonName, "id");
});
