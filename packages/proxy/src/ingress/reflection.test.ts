// gRPC server reflection end to end: a grpc-js client → the proxy's port, with the raw shopping cart.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { create, createFileRegistry, fromBinary, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, type FileDescriptorProto } from "@bufbuild/protobuf/wkt";
import { reflectionV1 } from "@cloudstate-ts/protocol";
import { startRawCartUserFunction, type RawUserFunction } from "../../../../tests/fixtures/raw-cart-user-function.js";
import { startTestProxy } from "../../../../tests/support/proxy.js";
import type { RunningProxy } from "../proxy.js";

type Request = reflectionV1.ServerReflectionRequest;
type Response = reflectionV1.ServerReflectionResponse;
type RequestInit = Parameters<typeof create<typeof reflectionV1.ServerReflectionRequestSchema>>[1];

const CART = "com.example.shoppingcart.ShoppingCart";

/** Sends each request on one ServerReflectionInfo stream; the responses in order. */
async function reflect(port: number, version: "v1" | "v1alpha", requests: RequestInit[]): Promise<Response[]> {
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  try {
    return await new Promise<Response[]>((resolve, reject) => {
      const call = client.makeBidiStreamRequest<Request, Response>(
        `/grpc.reflection.${version}.ServerReflection/ServerReflectionInfo`,
        (m) => Buffer.from(toBinary(reflectionV1.ServerReflectionRequestSchema, m)),
        (b) => fromBinary(reflectionV1.ServerReflectionResponseSchema, b),
        new grpc.Metadata(),
        { deadline: Date.now() + 5_000 },
      );
      const out: Response[] = [];
      call.on("data", (r: Response) => out.push(r));
      call.on("error", reject);
      call.on("end", () => resolve(out));
      for (const r of requests) call.write(create(reflectionV1.ServerReflectionRequestSchema, r));
      call.end();
    });
  } finally {
    client.close();
  }
}

function files(r: Response): FileDescriptorProto[] {
  assert.equal(r.messageResponse.case, "fileDescriptorResponse", JSON.stringify(r.messageResponse));
  return r.messageResponse.value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b));
}

function errorOf(r: Response): { errorCode: number; errorMessage: string } {
  assert.equal(r.messageResponse.case, "errorResponse", JSON.stringify(r.messageResponse.case));
  return r.messageResponse.value;
}

describe("gRPC server reflection", () => {
  let uf: RawUserFunction;
  let proxy: RunningProxy;
  before(async () => {
    uf = await startRawCartUserFunction();
    proxy = await startTestProxy(uf.port);
  });
  after(async () => {
    await proxy.stop();
    await uf.close();
  });

  for (const version of ["v1", "v1alpha"] as const) {
    test(`${version}: list_services lists the user's service, reflection and health`, async () => {
      const [r] = await reflect(proxy.port, version, [{ host: "h", messageRequest: { case: "listServices", value: "*" } }]);
      assert.equal(r.messageResponse.case, "listServicesResponse");
      const names = r.messageResponse.value.service.map((s) => s.name);
      assert.ok(names.includes(CART), names.join(", "));
      assert.ok(names.includes("grpc.health.v1.Health"));
      assert.ok(names.includes(`grpc.reflection.${version}.ServerReflection`));
      assert.equal(r.validHost, "h");
      assert.equal(r.originalRequest?.messageRequest.case, "listServices");
    });

    test(`${version}: file_containing_symbol for the service gives its file and imports, decodable by a tool`, async () => {
      const [r] = await reflect(proxy.port, version, [{ messageRequest: { case: "fileContainingSymbol", value: CART } }]);
      const protos = files(r);
      const main = protos[0];
      const service = main.service.find((s) => `${main.package}.${s.name}` === CART);
      assert.ok(service, `the first file defines ${CART}`);
      assert.deepEqual(service.method.map((m) => m.name).sort(), ["AddItem", "GetCart", "RemoveItem"]);
      // Every import is there: a registry (as a tool builds one) resolves all of them.
      const names = new Set(protos.map((p) => p.name));
      for (const p of protos) for (const dep of p.dependency) assert.ok(names.has(dep), `${dep} (imported by ${p.name}) is included`);
      const byName = new Map(protos.map((p) => [p.name, p]));
      const registry = createFileRegistry(main, (name) => byName.get(name));
      assert.equal(registry.getService(CART)?.methods.length, 3);
    });
  }

  test("file_containing_symbol finds methods, messages, nested types and enums", async () => {
    const symbols = [`${CART}.AddItem`, "com.example.shoppingcart.AddLineItem", "com.example.shoppingcart.domain.Cart", "google.protobuf.Empty"];
    const responses = await reflect(proxy.port, "v1", symbols.map((value) => ({ messageRequest: { case: "fileContainingSymbol", value } })));
    assert.equal(responses.length, symbols.length);
    const [method, message, domain, empty] = responses.map((r) => files(r)[0]);
    assert.equal(method.name, "com/example/shoppingcart/shoppingcart.proto");
    assert.equal(message.name, "com/example/shoppingcart/shoppingcart.proto");
    assert.equal(domain.name, "com/example/shoppingcart/domain/domain.proto");
    assert.equal(empty.name, "google/protobuf/empty.proto");
    // A nested enum and a nested message: the cart's files import google/api/annotations.proto, so
    // the set includes google/protobuf/descriptor.proto.
    const [e, n] = await reflect(proxy.port, "v1", [
      { messageRequest: { case: "fileContainingSymbol", value: "google.protobuf.FieldDescriptorProto.Type" } },
      { messageRequest: { case: "fileContainingSymbol", value: "google.protobuf.DescriptorProto.ExtensionRange" } },
    ]);
    assert.equal(files(e)[0].name, "google/protobuf/descriptor.proto");
    assert.equal(files(n)[0].name, "google/protobuf/descriptor.proto");
  });

  test("file_by_filename gives the file and its imports; the proxy's own services are described too", async () => {
    const [byName, own] = await reflect(proxy.port, "v1", [
      { messageRequest: { case: "fileByFilename", value: "com/example/shoppingcart/shoppingcart.proto" } },
      { messageRequest: { case: "fileContainingSymbol", value: "grpc.health.v1.Health" } },
    ]);
    const protos = files(byName);
    assert.equal(protos[0].name, "com/example/shoppingcart/shoppingcart.proto");
    assert.ok(protos.length > 1);
    assert.equal(files(own)[0].name, "grpc/health/v1/health.proto");
  });

  test("extensions: all_extension_numbers_of_type and file_containing_extension", async () => {
    const [numbers] = await reflect(proxy.port, "v1", [{ messageRequest: { case: "allExtensionNumbersOfType", value: "google.protobuf.MethodOptions" } }]);
    assert.equal(numbers.messageResponse.case, "allExtensionNumbersResponse");
    const { baseTypeName, extensionNumber } = numbers.messageResponse.value;
    assert.equal(baseTypeName, "google.protobuf.MethodOptions");
    assert.ok(extensionNumber.includes(72295728), `google.api.http is listed (got ${extensionNumber.join(", ")})`);
    const [file] = await reflect(proxy.port, "v1", [
      { messageRequest: { case: "fileContainingExtension", value: { containingType: "google.protobuf.MethodOptions", extensionNumber: 72295728 } } },
    ]);
    assert.equal(files(file)[0].name, "google/api/annotations.proto");
  });

  test("an unknown symbol, file or extension is an error_response NOT_FOUND; the stream goes on", async () => {
    const responses = await reflect(proxy.port, "v1alpha", [
      { messageRequest: { case: "fileContainingSymbol", value: "no.such.Thing" } },
      { messageRequest: { case: "fileByFilename", value: "no/such.proto" } },
      { messageRequest: { case: "fileContainingExtension", value: { containingType: "com.example.shoppingcart.AddLineItem", extensionNumber: 99 } } },
      { messageRequest: { case: "allExtensionNumbersOfType", value: "no.such.Type" } },
      { messageRequest: { case: "listServices", value: "" } },
    ]);
    assert.equal(responses.length, 5);
    for (const r of responses.slice(0, 4)) assert.equal(errorOf(r).errorCode, grpc.status.NOT_FOUND);
    assert.match(errorOf(responses[0]).errorMessage, /no\.such\.Thing/);
    assert.equal(responses[4].messageResponse.case, "listServicesResponse");
  });
});
