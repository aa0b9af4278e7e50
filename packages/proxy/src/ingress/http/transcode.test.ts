import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { create, fromBinary, fromJson, toBinary, toJson, type JsonValue } from "@bufbuild/protobuf";
import { HttpBodySchema } from "@cloudstate-ts/protocol";
import { Code, ProxyError } from "../../errors.js";
import { CartSchema } from "../../../../../examples/shopping-cart/src/gen/com/example/shoppingcart/shoppingcart_pb.js";
import { buildRoutes, type RouteTable } from "./routes.js";
import { cartModel, SHAPES_METHODS, shapesModel } from "./testdata/shapes.js";
import { decodeRequest, encodeResponse, errorJson, httpStatusOf } from "./transcode.js";

const cart = cartModel();
const cartRoutes = buildRoutes(cart.services.values());
const shapes = shapesModel([
  ...SHAPES_METHODS,
  { name: "Sized", input: "Shape", output: "Shape", rule: { pattern: { case: "get", value: "/v1/sized/{size}/{color}/{flag}/{big}" } } },
]);
const shapeRoutes = buildRoutes(shapes.services.values());

interface Req {
  readonly body?: string | Uint8Array;
  readonly contentType?: string;
}

/** Transcodes a request and returns the message as proto3 JSON (JSON names, defaults left out). */
function request(table: RouteTable, method: string, url: string, req: Req = {}): JsonValue {
  const [path, query = ""] = url.split("?") as [string, string?];
  const match = table.find(method, path);
  assert.ok(match, `a route for ${method} ${path}`);
  const registry = table === cartRoutes ? cart.registry : shapes.registry;
  const bytes = decodeRequest(
    match.route,
    {
      captures: match.captures,
      query: new URLSearchParams(query),
      body: typeof req.body === "string" ? new TextEncoder().encode(req.body) : (req.body ?? new Uint8Array(0)),
      contentType: req.contentType,
    },
    registry,
  );
  const input = match.route.method.desc.input;
  return toJson(input, fromBinary(input, bytes), { registry });
}

function rejects(table: RouteTable, method: string, url: string, req: Req, message: RegExp): void {
  assert.throws(() => request(table, method, url, req), (e: unknown) => {
    assert.ok(e instanceof ProxyError, `a ProxyError, got ${String(e)}`);
    assert.equal(e.codeName, "INVALID_ARGUMENT");
    assert.match(e.message, message);
    return true;
  });
}

function response(table: RouteTable, method: string, path: string, output: JsonValue | Uint8Array) {
  const route = table.find(method, path)!.route;
  const registry = table === cartRoutes ? cart.registry : shapes.registry;
  const desc = route.method.desc.output;
  const payload = output instanceof Uint8Array ? output : toBinary(desc, fromJson(desc, output, { registry }));
  return encodeResponse(route, payload, registry);
}

const parsed = (r: { body: Uint8Array | string }) => JSON.parse(r.body as string) as JsonValue;

describe("transcoding the shopping cart", () => {
  test("body * is the message and the path variable sets user_id", () => {
    assert.deepEqual(request(cartRoutes, "POST", "/cart/alice/items/add", { body: '{"productId":"x","name":"X","quantity":1}' }), {
      userId: "alice",
      productId: "x",
      name: "X",
      quantity: 1,
    });
  });

  test("the path variable overrides the body, under either field name", () => {
    assert.deepEqual(request(cartRoutes, "POST", "/cart/alice/items/add", { body: '{"user_id":"bob","product_id":"x","quantity":2}' }), {
      userId: "alice",
      productId: "x",
      quantity: 2,
    });
    assert.deepEqual(request(cartRoutes, "POST", "/cart/alice/items/add", { body: '{"userId":"bob"}' }), { userId: "alice" });
  });

  test("an empty body with body * leaves only the path's fields", () => {
    assert.deepEqual(request(cartRoutes, "POST", "/cart/alice/items/add", { body: "  " }), { userId: "alice" });
  });

  test("without a body rule, fields come from the path (percent-decoded) and the query", () => {
    assert.deepEqual(request(cartRoutes, "POST", "/cart/al%20ice/items/p%2F1/remove"), { userId: "al ice", productId: "p/1" });
    assert.deepEqual(request(cartRoutes, "GET", "/carts/alice"), { userId: "alice" });
  });

  test("the default route takes the whole message from the body", () => {
    assert.deepEqual(request(cartRoutes, "POST", "/com.example.shoppingcart.ShoppingCart/GetCart", { body: '{"userId":"alice"}' }), { userId: "alice" });
  });

  test("an unknown JSON field is INVALID_ARGUMENT naming it", () => {
    rejects(cartRoutes, "POST", "/cart/alice/items/add", { body: '{"productId":"x","colour":"red"}' }, /key "colour" is unknown/);
  });

  test("malformed JSON, non-UTF-8 and wrongly typed values are INVALID_ARGUMENT", () => {
    rejects(cartRoutes, "POST", "/cart/alice/items/add", { body: '{"productId":' }, /the request body is not valid JSON/);
    rejects(cartRoutes, "POST", "/cart/alice/items/add", { body: new Uint8Array([0x7b, 0xff, 0x7d]) }, /not valid UTF-8/);
    rejects(cartRoutes, "POST", "/cart/alice/items/add", { body: '{"quantity":"lots"}' }, /quantity.*"lots"/);
    rejects(cartRoutes, "POST", "/cart/alice/items/add", { body: '{"quantity":1.5}' }, /quantity/);
    rejects(cartRoutes, "POST", "/cart/alice/items/add", { body: "[1]" }, /the JSON body must be an object, since path variable user_id/);
  });

  test("an unknown query parameter is INVALID_ARGUMENT naming it", () => {
    rejects(cartRoutes, "GET", "/carts/alice?verbose=1", {}, /unknown query parameter "verbose": .*GetShoppingCart has no field verbose/);
  });

  test("query parameters are refused when body * carries the whole message", () => {
    rejects(cartRoutes, "POST", "/cart/alice/items/add?quantity=1", { body: "{}" }, /query parameter "quantity" is not accepted: POST \/cart\/\{user_id\}\/items\/add takes the whole/);
  });

  test("a reply is proto3 JSON; response_body keeps only that field", () => {
    const full = create(CartSchema, { items: [{ productId: "x", name: "X", quantity: 2 }] });
    const bytes = toBinary(CartSchema, full);
    const whole = response(cartRoutes, "GET", "/carts/alice", bytes);
    assert.equal(whole.contentType, "application/json");
    assert.deepEqual(parsed(whole), { items: [{ productId: "x", name: "X", quantity: 2 }] });
    assert.deepEqual(parsed(response(cartRoutes, "GET", "/carts/alice/items", bytes)), [{ productId: "x", name: "X", quantity: 2 }]);
  });

  test("an empty cart is {} whole, and [] through response_body", () => {
    assert.deepEqual(parsed(response(cartRoutes, "GET", "/carts/alice", new Uint8Array(0))), {});
    assert.deepEqual(parsed(response(cartRoutes, "GET", "/carts/alice/items", new Uint8Array(0))), []);
  });

  test("a reply that is not a valid message is INTERNAL", () => {
    assert.throws(() => response(cartRoutes, "GET", "/carts/alice", new Uint8Array([0x0a, 0x05, 0x01])), (e: unknown) => {
      assert.ok(e instanceof ProxyError);
      assert.equal(e.code, Code.INTERNAL);
      assert.match(e.message, /cannot write the reply of com\.example\.shoppingcart\.ShoppingCart\.GetCart as JSON/);
      return true;
    });
  });
});

describe("transcoding more shapes", () => {
  test("query parameters of every scalar kind, dotted and repeated", () => {
    const query = [
      "size=3",
      "big=9007199254740993",
      "flag=true",
      "color=RED",
      "inner.first=ada",
      "inner.count=5",
      "tags=a",
      "tags=b%20c",
      "numbers=1",
      "numbers=-2",
      "ratio=1.5",
      "ubig=18446744073709551615",
      "blob=AQID",
      "at=2020-01-01T00:00:00Z",
      "maybe=7",
      "colors=GREEN",
      "colors=1",
    ].join("&");
    assert.deepEqual(request(shapeRoutes, "GET", `/v1/shapes/s1?${query}`), {
      id: "s1",
      size: 3,
      big: "9007199254740993",
      flag: true,
      color: "RED",
      inner: { first: "ada", count: "5" },
      tags: ["a", "b c"],
      numbers: [1, -2],
      ratio: 1.5,
      ubig: "18446744073709551615",
      blob: "AQID",
      at: "2020-01-01T00:00:00Z",
      maybe: 7,
      colors: ["GREEN", "RED"],
    });
  });

  test("query parameters may use JSON names, enum numbers and 1/0 for bools", () => {
    assert.deepEqual(request(shapeRoutes, "GET", "/v1/shapes/s1?color=2&flag=0&inner.first=x"), { id: "s1", color: "GREEN", inner: { first: "x" } });
    assert.deepEqual(request(shapeRoutes, "GET", "/v1/shapes/s1?flag=1"), { id: "s1", flag: true });
  });

  test("path variables are converted to the field's type", () => {
    assert.deepEqual(request(shapeRoutes, "GET", "/v1/sized/12/GREEN/true/-5"), { size: 12, color: "GREEN", flag: true, big: "-5" });
    rejects(shapeRoutes, "GET", "/v1/sized/twelve/GREEN/true/1", {}, /path variable size: .*"twelve"/);
    rejects(shapeRoutes, "GET", "/v1/sized/12/PURPLE/true/1", {}, /path variable color: cannot decode enum cloudstate.test.http.Color from JSON: "PURPLE"/);
    rejects(shapeRoutes, "GET", "/v1/sized/12/RED/maybe/1", {}, /path variable flag: expected true or false, got "maybe"/);
  });

  test("bad query parameters are INVALID_ARGUMENT naming them", () => {
    rejects(shapeRoutes, "GET", "/v1/shapes/s1?size=1&size=2", {}, /query parameter "size" is given 2 times, but size is not a repeated field/);
    rejects(shapeRoutes, "GET", "/v1/shapes/s1?flag=yes", {}, /query parameter "flag": expected true or false, got "yes"/);
    rejects(shapeRoutes, "GET", "/v1/shapes/s1?inner.nope=1", {}, /unknown query parameter "inner.nope": .*Inner has no field nope/);
    rejects(shapeRoutes, "GET", "/v1/shapes/s1?inner=x", {}, /query parameter "inner": inner is a message field, which a query parameter cannot set/);
    rejects(shapeRoutes, "GET", "/v1/shapes/s1?items=x", {}, /query parameter "items": items is a repeated message field/);
    rejects(shapeRoutes, "GET", "/v1/shapes/s1?labels=x", {}, /query parameter "labels": labels is a map field/);
    rejects(shapeRoutes, "GET", "/v1/shapes/s1?labels.k=x", {}, /unknown query parameter "labels.k": labels is a map field, so it has no field k/);
    rejects(shapeRoutes, "GET", "/v1/shapes/s1?size=big", {}, /query parameter "size": cannot decode field cloudstate.test.http.Shape.size from JSON: .*"big"/);
    rejects(shapeRoutes, "GET", "/v1/shapes/s1?at=yesterday", {}, /query parameter "at": .*Timestamp/);
  });

  test('body "<field>": the JSON body fills that field, the rest comes from the query', () => {
    assert.deepEqual(request(shapeRoutes, "POST", "/v1/shapes?id=s1&size=2", { body: '{"first":"ada","count":"3"}' }), {
      id: "s1",
      size: 2,
      inner: { first: "ada", count: "3" },
    });
    assert.deepEqual(request(shapeRoutes, "POST", "/v1/shapes?id=s1"), { id: "s1" });
    rejects(shapeRoutes, "POST", "/v1/shapes?inner.first=x", { body: "{}" }, /query parameter "inner.first" sets a field the JSON body carries \(body: "inner"\)/);
    rejects(shapeRoutes, "POST", "/v1/shapes", { body: '{"first":"ada","last":"l"}' }, /key "last" is unknown/);
  });

  test("a multi-segment path variable sets a nested field inside a body * message", () => {
    assert.deepEqual(request(shapeRoutes, "PATCH", "/v1/people/ada/shapes/s1", { body: '{"inner":{"count":"2","first":"x"},"size":1}' }), {
      id: "s1",
      size: 1,
      inner: { first: "people/ada", count: "2" },
    });
    rejects(shapeRoutes, "PATCH", "/v1/people/ada/shapes/s1", { body: '{"inner":"flat"}' }, /path variable inner\.first sets a field inside inner, but the body gives inner as "flat"/);
  });

  test("a google.api.HttpBody input takes the raw body and its content type", () => {
    const bytes = new Uint8Array([0, 1, 2, 255]);
    assert.deepEqual(request(shapeRoutes, "POST", "/v1/upload", { body: bytes, contentType: "application/octet-stream" }), {
      contentType: "application/octet-stream",
      data: Buffer.from(bytes).toString("base64"),
    });
    assert.deepEqual(request(shapeRoutes, "PUT", "/v1/shapes/s1/file", { body: "hello", contentType: "text/plain" }), {
      id: "s1",
      file: { contentType: "text/plain", data: Buffer.from("hello").toString("base64") },
    });
  });

  test("replies: int64 as strings, enums by name, lowerCamel names, well-known types", () => {
    const r = response(shapeRoutes, "GET", "/v1/shapes/s1", { id: "s1", big: "12", color: "GREEN", inner: { count: "1" }, at: "2020-01-01T00:00:00Z", maybe: 0 });
    assert.deepEqual(parsed(r), { id: "s1", big: "12", color: "GREEN", inner: { count: "1" }, at: "2020-01-01T00:00:00Z", maybe: 0 });
  });

  test("response_body with an unset field gives its default", () => {
    assert.deepEqual(parsed(response(shapeRoutes, "GET", "/v1/shapes", { shapes: [{ id: "a" }], next: "n" })), [{ id: "a" }]);
    assert.deepEqual(parsed(response(shapeRoutes, "GET", "/v1/shapes:page", { shapes: [{ id: "a" }], next: "n" })), { shapes: [{ id: "a" }], next: "n" });
  });

  test("a google.api.HttpBody reply is its raw data with its content type", () => {
    const body = toBinary(HttpBodySchema, create(HttpBodySchema, { contentType: "text/csv", data: new TextEncoder().encode("a,b\n") }));
    const r = response(shapeRoutes, "GET", "/v1/files/x.csv", body);
    assert.equal(r.contentType, "text/csv");
    assert.equal(r.raw, true);
    assert.equal(Buffer.from(r.body as Uint8Array).toString(), "a,b\n");
    const untyped = response(shapeRoutes, "GET", "/v1/files/x.bin", toBinary(HttpBodySchema, create(HttpBodySchema, { data: new Uint8Array([1]) })));
    assert.equal(untyped.contentType, "application/octet-stream");
  });
});

describe("errors over HTTP", () => {
  test("gRPC codes map to the standard HTTP statuses", () => {
    const expected: [Code, number][] = [
      [Code.OK, 200],
      [Code.CANCELLED, 499],
      [Code.UNKNOWN, 500],
      [Code.INVALID_ARGUMENT, 400],
      [Code.DEADLINE_EXCEEDED, 504],
      [Code.NOT_FOUND, 404],
      [Code.ALREADY_EXISTS, 409],
      [Code.PERMISSION_DENIED, 403],
      [Code.RESOURCE_EXHAUSTED, 429],
      [Code.FAILED_PRECONDITION, 400],
      [Code.ABORTED, 409],
      [Code.OUT_OF_RANGE, 400],
      [Code.UNIMPLEMENTED, 501],
      [Code.INTERNAL, 500],
      [Code.UNAVAILABLE, 503],
      [Code.DATA_LOSS, 500],
      [Code.UNAUTHENTICATED, 401],
    ];
    for (const [code, status] of expected) assert.equal(httpStatusOf(code), status, Code[code]);
  });

  test("the error body is the google.rpc.Status shape", () => {
    assert.deepEqual(JSON.parse(errorJson(new ProxyError(Code.NOT_FOUND, "no route"))), { code: 5, message: "no route", details: [] });
  });
});
