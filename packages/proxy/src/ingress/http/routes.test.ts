import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { DiscoveryError } from "../../discovery/service-model.js";
import { buildRoutes, type RouteTable } from "./routes.js";
import { cartModel, SERVICE, SHAPES_METHODS, shapesModel, type MethodSpec } from "./testdata/shapes.js";

const routesOf = (methods?: readonly MethodSpec[]): RouteTable => buildRoutes(shapesModel(methods).services.values());

/** "Method <captures>" for a request, or "none". */
function resolve(table: RouteTable, httpMethod: string, path: string): string {
  const match = table.find(httpMethod, path);
  if (!match) return "none";
  const names = match.route.variables.map((v) => v.map((f) => f.name).join("."));
  const captured = names.map((n, i) => `${n}=${match.captures[i]}`).join(",");
  return captured ? `${match.route.method.name} ${captured}` : match.route.method.name;
}

const withRule = (name: string, rule: MethodSpec["rule"], input = "Shape", output = "Shape"): MethodSpec[] => [
  ...SHAPES_METHODS,
  { name, input, output, rule },
];

const rejects = (methods: readonly MethodSpec[], why: RegExp) =>
  assert.throws(() => routesOf(methods), (e: unknown) => {
    assert.ok(e instanceof DiscoveryError, `a DiscoveryError, got ${String(e)}`);
    assert.match(e.message, why);
    return true;
  });

describe("the HTTP route table", () => {
  const shapes = routesOf();
  const cart = buildRoutes(cartModel().services.values());

  // [table, HTTP method, path, expected]
  const rows: [RouteTable, string, string, string][] = [
    [cart, "POST", "/cart/alice/items/add", "AddItem user_id=alice"],
    [cart, "POST", "/cart/alice/items/apple/remove", "RemoveItem user_id=alice,product_id=apple"],
    [cart, "GET", "/carts/alice", "GetCart user_id=alice"],
    [cart, "GET", "/carts/alice/items", "GetCart user_id=alice"],
    [cart, "HEAD", "/carts/alice", "GetCart user_id=alice"],
    [cart, "POST", "/com.example.shoppingcart.ShoppingCart/GetCart", "GetCart"],
    [cart, "POST", "/com.example.shoppingcart.ShoppingCart/AddItem", "AddItem"],
    [cart, "GET", "/com.example.shoppingcart.ShoppingCart/GetCart", "none"],
    [cart, "POST", "/carts/alice", "none"],
    [cart, "GET", "/carts", "none"],
    [cart, "GET", "/carts/alice/items/x", "none"],
    [shapes, "GET", "/v1/shapes/special", "GetSpecial"],
    [shapes, "GET", "/v1/shapes/other", "GetShape id=other"],
    [shapes, "GET", "/v1/shapes/s1:watch", "Watch id=s1"],
    [shapes, "GET", "/v1/shapes/s1:other", "GetShape id=s1:other"],
    [shapes, "GET", "/v1/shapes", "ListShapes"],
    [shapes, "GET", "/v1/shapes:page", "ListShapes"],
    [shapes, "SEARCH", "/v1/shapes", "SearchShapes"],
    [shapes, "POST", "/v1/shapes", "CreateShape"],
    [shapes, "POST", "/v1/shapes/s1:cancel", "CancelShape id=s1"],
    [shapes, "PATCH", "/v1/people/ada/shapes/s1", "UpdateShape inner.first=people/ada,id=s1"],
    [shapes, "PATCH", "/v1/robots/ada/shapes/s1", "none"],
    [shapes, "GET", "/v1/files/a/b/c.txt", "Download id=a/b/c.txt"],
    [shapes, "PUT", "/v1/shapes/s1/file", "Attach id=s1"],
    [shapes, "POST", `/${SERVICE}/Echo`, "Echo"],
    [shapes, "DELETE", "/v1/shapes/s1", "none"],
  ];
  for (const [table, method, path, expected] of rows) {
    test(`${method} ${path} → ${expected}`, () => {
      assert.equal(resolve(table, method, path), expected);
    });
  }

  test("every method gets the default route POST /<package.Service>/<Method>, with body *", () => {
    const defaults = shapes.routes.filter((r) => r.isDefault);
    assert.deepEqual(
      defaults.map((r) => r.template.text),
      SHAPES_METHODS.map((m) => `/${SERVICE}/${m.name}`),
    );
    assert.ok(defaults.every((r) => r.httpMethod === "POST" && r.body.kind === "all" && r.variables.length === 0));
  });

  test("a rule that is the default route itself is not added twice", () => {
    const table = routesOf(withRule("Again", { pattern: { case: "post", value: `/${SERVICE}/Again` }, body: "*" }));
    assert.equal(table.routes.filter((r) => r.method.name === "Again").length, 1);
  });

  test("literal segments beat variables, whatever the declaration order", () => {
    const reordered = [...SHAPES_METHODS].reverse();
    assert.equal(resolve(routesOf(reordered), "GET", "/v1/shapes/special"), "GetSpecial");
    assert.equal(resolve(routesOf(reordered), "GET", "/v1/shapes/x"), "GetShape id=x");
  });

  test("response_body and body fields are resolved against the messages", () => {
    const items = cart.find("GET", "/carts/alice/items")!.route;
    assert.equal(items.responseBody?.name, "items");
    assert.equal(cart.find("GET", "/carts/alice")!.route.responseBody, undefined);
    const create = shapes.find("POST", "/v1/shapes")!.route;
    assert.deepEqual(create.body.kind === "field" && create.body.path.map((f) => f.name), ["inner"]);
  });

  test("names the methods a path takes when the HTTP method has no route", () => {
    assert.deepEqual(cart.methodsFor("/carts/alice"), ["GET"]);
    assert.deepEqual(shapes.methodsFor("/v1/shapes"), ["GET", "POST", "SEARCH"]);
    assert.deepEqual(shapes.methodsFor("/nowhere"), []);
  });

  test("two methods with the same HTTP method and path shape are a conflict naming both", () => {
    rejects(withRule("Clash", { pattern: { case: "get", value: "/v1/shapes/{big}" } }), /HTTP route conflict.*GetShape \(GET \/v1\/shapes\/\{id\}\).*Clash \(GET \/v1\/shapes\/\{big\}\)/);
    rejects(withRule("Clash", { pattern: { case: "post", value: `/${SERVICE}/Echo` } }), /conflict.*Echo \(default route POST .*Echo\).*Clash/);
    rejects(
      withRule("Twice", { pattern: { case: "get", value: "/v1/twice" }, additionalBindings: [{ pattern: { case: "get", value: "/v1/twice" } }] }),
      /conflict twice: .*Twice/,
    );
  });

  test("the same path under different HTTP methods is no conflict", () => {
    assert.doesNotThrow(() => routesOf(withRule("Remove", { pattern: { case: "delete", value: "/v1/shapes/{id}" } })));
  });

  test("an invalid rule fails the start with a message naming the method", () => {
    const where = `${SERVICE}\\.Bad: its google.api.http option`;
    const bad = (rule: MethodSpec["rule"], why: RegExp, input?: string, output?: string) =>
      rejects(withRule("Bad", rule, input, output), new RegExp(`${where} .*${why.source}`));
    bad({ pattern: { case: "get", value: "v1/bad" } }, /invalid path template "v1\/bad": it must start with \//);
    bad({ pattern: { case: "get", value: "/v1/{id" } }, /invalid path template/);
    bad({ pattern: { case: "get", value: "/v1/{nope}" } }, /Shape has no field nope/);
    bad({ pattern: { case: "get", value: "/v1/{inner.nope}" } }, /Inner has no field nope/);
    bad({ pattern: { case: "get", value: "/v1/{id.x}" } }, /id is a scalar field, so it has no field x/);
    bad({ pattern: { case: "get", value: "/v1/{inner}" } }, /inner is a message field; a path variable must set a single scalar or enum field/);
    bad({ pattern: { case: "get", value: "/v1/{tags}" } }, /tags is a list field/);
    bad({ pattern: { case: "post", value: "/v1/bad" }, body: "nope" }, /body "nope": .*Shape has no field nope/);
    bad({ pattern: { case: "get", value: "/v1/bad" }, responseBody: "nope" }, /response_body "nope": .*ShapeList has no field nope/, "Shape", "ShapeList");
    bad({ pattern: { case: "custom", value: { kind: "", path: "/v1/bad" } } }, /custom pattern with kind ""/);
    bad({ body: "*" }, /sets no pattern/);
    bad(
      { pattern: { case: "get", value: "/v1/a" }, additionalBindings: [{ pattern: { case: "get", value: "/v1/b" }, additionalBindings: [{ pattern: { case: "get", value: "/v1/c" } }] }] },
      /nests additional_bindings/,
    );
  });

  test("path variables may set nested fields and any scalar type", () => {
    const table = routesOf(withRule("ByJsonName", { pattern: { case: "get", value: "/v1/by/{inner.first}/{ubig}" } }));
    assert.equal(resolve(table, "GET", "/v1/by/ada/7"), "ByJsonName inner.first=ada,ubig=7");
  });
});
