// A test API with more HTTP shapes than the shopping cart: every scalar kind, enums, nested and
// well-known types, a map, body-field and "*" bodies, response_body, custom verbs and kinds,
// google.api.HttpBody both ways, streaming. Built by hand as a descriptor (no .proto to generate),
// then served through the same discovery path as a real user function's descriptor set.
import { create, setExtension, toBinary, type DescFile, type MessageInitShape } from "@bufbuild/protobuf";
import {
  FieldDescriptorProto_Label as Label,
  FieldDescriptorProto_Type as Type,
  FileDescriptorProtoSchema,
  FileDescriptorSetSchema,
  MethodOptionsSchema,
  file_google_protobuf_timestamp,
  file_google_protobuf_wrappers,
  type FileDescriptorProto,
} from "@bufbuild/protobuf/wkt";
import { EntitySpecSchema, HttpRuleSchema, file_google_api_httpbody, http } from "@cloudstate-ts/protocol";
import { buildModel, type UserFunctionModel } from "../../../discovery/service-model.js";
import { file_com_example_shoppingcart_shoppingcart } from "../../../../../../examples/shopping-cart/src/gen/com/example/shoppingcart/shoppingcart_pb.js";
import { file_com_example_shoppingcart_domain_domain } from "../../../../../../examples/shopping-cart/src/gen/com/example/shoppingcart/domain/domain_pb.js";

export const PACKAGE = "cloudstate.test.http";
export const SERVICE = `${PACKAGE}.Shapes`;

export type Rule = MessageInitShape<typeof HttpRuleSchema>;

export interface MethodSpec {
  readonly name: string;
  readonly input: string;
  readonly output: string;
  readonly rule?: Rule;
  readonly clientStreaming?: boolean;
  readonly serverStreaming?: boolean;
}

export const SHAPES_METHODS: readonly MethodSpec[] = [
  { name: "GetShape", input: "Shape", output: "Shape", rule: { pattern: { case: "get", value: "/v1/shapes/{id}" } } },
  { name: "GetSpecial", input: "Shape", output: "Shape", rule: { pattern: { case: "get", value: "/v1/shapes/special" } } },
  { name: "CreateShape", input: "Shape", output: "Shape", rule: { pattern: { case: "post", value: "/v1/shapes" }, body: "inner" } },
  {
    name: "UpdateShape",
    input: "Shape",
    output: "Shape",
    rule: { pattern: { case: "patch", value: "/v1/{inner.first=people/*}/shapes/{id}" }, body: "*" },
  },
  {
    name: "ListShapes",
    input: "Shape",
    output: "ShapeList",
    rule: {
      pattern: { case: "get", value: "/v1/shapes" },
      responseBody: "shapes",
      additionalBindings: [{ pattern: { case: "get", value: "/v1/shapes:page" } }],
    },
  },
  { name: "CancelShape", input: "Shape", output: "Shape", rule: { pattern: { case: "post", value: "/v1/shapes/{id}:cancel" }, body: "*" } },
  {
    name: "SearchShapes",
    input: "Shape",
    output: "ShapeList",
    rule: { pattern: { case: "custom", value: { kind: "SEARCH", path: "/v1/shapes" } }, body: "*" },
  },
  { name: "Download", input: "Shape", output: ".google.api.HttpBody", rule: { pattern: { case: "get", value: "/v1/files/{id=**}" } } },
  { name: "Upload", input: ".google.api.HttpBody", output: "Shape", rule: { pattern: { case: "post", value: "/v1/upload" }, body: "*" } },
  { name: "Attach", input: "Attachment", output: "Shape", rule: { pattern: { case: "put", value: "/v1/shapes/{id}/file" }, body: "file" } },
  { name: "Watch", input: "Shape", output: "Shape", serverStreaming: true, rule: { pattern: { case: "get", value: "/v1/shapes/{id}:watch" } } },
  { name: "Collect", input: "Shape", output: "Shape", clientStreaming: true, rule: { pattern: { case: "post", value: "/v1/collect" }, body: "*" } },
  { name: "Echo", input: "Shape", output: "Shape" },
];

// json_name filled in as protoc and buf do (none of these names has an underscore to camel-case).
const field = (name: string, number: number, type: Type, more: { label?: Label; typeName?: string } = {}) => ({
  name,
  jsonName: name,
  number,
  type,
  label: Label.OPTIONAL,
  ...more,
});
const repeated = { label: Label.REPEATED };
const typeName = (t: string) => ({ typeName: t.startsWith(".") ? t : `.${PACKAGE}.${t}` });

export function shapesFile(methods: readonly MethodSpec[] = SHAPES_METHODS): FileDescriptorProto {
  return create(FileDescriptorProtoSchema, {
    name: "cloudstate/test/http/shapes.proto",
    package: PACKAGE,
    syntax: "proto3",
    dependency: ["google/protobuf/timestamp.proto", "google/protobuf/wrappers.proto", "google/api/httpbody.proto"],
    enumType: [{ name: "Color", value: [{ name: "COLOR_UNSPECIFIED", number: 0 }, { name: "RED", number: 1 }, { name: "GREEN", number: 2 }] }],
    messageType: [
      {
        name: "Shape",
        field: [
          field("id", 1, Type.STRING),
          field("size", 2, Type.INT32),
          field("big", 3, Type.INT64),
          field("flag", 4, Type.BOOL),
          field("color", 5, Type.ENUM, typeName("Color")),
          field("inner", 6, Type.MESSAGE, typeName("Inner")),
          field("tags", 7, Type.STRING, repeated),
          field("numbers", 8, Type.INT32, repeated),
          field("ratio", 9, Type.DOUBLE),
          field("ubig", 10, Type.UINT64),
          field("blob", 11, Type.BYTES),
          field("at", 12, Type.MESSAGE, typeName(".google.protobuf.Timestamp")),
          field("maybe", 13, Type.MESSAGE, typeName(".google.protobuf.Int32Value")),
          field("labels", 14, Type.MESSAGE, { ...repeated, ...typeName("Shape.LabelsEntry") }),
          field("colors", 15, Type.ENUM, { ...repeated, ...typeName("Color") }),
          field("items", 16, Type.MESSAGE, { ...repeated, ...typeName("Inner") }),
        ],
        nestedType: [
          { name: "LabelsEntry", field: [field("key", 1, Type.STRING), field("value", 2, Type.STRING)], options: { mapEntry: true } },
        ],
      },
      { name: "Inner", field: [field("first", 1, Type.STRING), field("count", 2, Type.INT64)] },
      { name: "ShapeList", field: [field("shapes", 1, Type.MESSAGE, { ...repeated, ...typeName("Shape") }), field("next", 2, Type.STRING)] },
      { name: "Attachment", field: [field("id", 1, Type.STRING), field("file", 2, Type.MESSAGE, typeName(".google.api.HttpBody"))] },
    ],
    service: [
      {
        name: "Shapes",
        method: methods.map((m) => {
          const options = create(MethodOptionsSchema);
          if (m.rule) setExtension(options, http, create(HttpRuleSchema, m.rule));
          return {
            name: m.name,
            inputType: typeName(m.input).typeName,
            outputType: typeName(m.output).typeName,
            clientStreaming: m.clientStreaming ?? false,
            serverStreaming: m.serverStreaming ?? false,
            options,
          };
        }),
      },
    ],
  });
}

/** A FileDescriptorSet with every import, as a user function sends it in EntitySpec.proto. */
export function descriptorSet(main: FileDescriptorProto[], deps: DescFile[]): Uint8Array {
  const seen = new Set<string>();
  const out: FileDescriptorProto[] = [];
  const visit = (f: DescFile) => {
    if (seen.has(f.name)) return;
    seen.add(f.name);
    f.dependencies.forEach(visit);
    out.push(f.proto);
  };
  deps.forEach(visit);
  return toBinary(FileDescriptorSetSchema, create(FileDescriptorSetSchema, { file: [...out, ...main] }));
}

export function shapesDescriptorSet(methods?: readonly MethodSpec[]): Uint8Array {
  return descriptorSet([shapesFile(methods)], [file_google_protobuf_timestamp, file_google_protobuf_wrappers, file_google_api_httpbody]);
}

/** The model the proxy builds after discovering the Shapes action service. */
export function shapesModel(methods?: readonly MethodSpec[]): UserFunctionModel {
  return modelOf(shapesDescriptorSet(methods), [{ entityType: "cloudstate.action.ActionProtocol", serviceName: SERVICE }]);
}

/** The model of the shopping cart (event sourced), from its generated descriptors. */
export function cartModel(): UserFunctionModel {
  return modelOf(descriptorSet([], [file_com_example_shoppingcart_shoppingcart, file_com_example_shoppingcart_domain_domain]), [
    { entityType: "cloudstate.eventsourced.EventSourced", serviceName: "com.example.shoppingcart.ShoppingCart" },
  ]);
}

function modelOf(proto: Uint8Array, entities: { entityType: string; serviceName: string }[]): UserFunctionModel {
  return buildModel(create(EntitySpecSchema, { proto, entities, serviceInfo: { protocolMajorVersion: 0, protocolMinorVersion: 2 } }), {
    supportedKinds: ["eventSourced", "action"],
    defaultPassivationTimeoutMs: 30_000,
    checkProtocolVersion: true,
  });
}
