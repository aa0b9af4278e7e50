import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  compareSpecificity,
  matchPath,
  parsePathTemplate,
  PathDecodeError,
  PathTemplateError,
  sameShape,
  splitPath,
} from "./path-template.js";

describe("path templates", () => {
  // [template, path, captured values by variable (undefined = no match)]
  const rows: [string, string, Record<string, string> | undefined][] = [
    ["/carts/{user_id}", "/carts/alice", { user_id: "alice" }],
    ["/carts/{user_id}", "/carts/alice/items", undefined],
    ["/carts/{user_id}", "/carts", undefined],
    ["/carts/{user_id}", "/carts/", undefined],
    ["/carts/{user_id}", "/cart/alice", undefined],
    ["/carts/{user_id}/items", "/carts/alice/items", { user_id: "alice" }],
    ["/cart/{user_id}/items/{product_id}/remove", "/cart/bob/items/p%201/remove", { user_id: "bob", product_id: "p 1" }],
    ["/v1/users/{id}", "/v1/users/a%2Fb", { id: "a/b" }],
    ["/v1/users/{id}", "/v1/users/%C3%A9t%C3%A9", { id: "été" }],
    ["/v1/users/{id}", "/v1/users/a+b", { id: "a+b" }],
    ["/", "/", {}],
    ["/", "/x", undefined],
    ["/v1/*", "/v1/anything", {}],
    ["/v1/*", "/v1", undefined],
    ["/v1/*", "/v1/a/b", undefined],
    ["/v1/**", "/v1", {}],
    ["/v1/**", "/v1/a/b/c", {}],
    ["/v1/*/x", "/v1/y/x", {}],
    ["/v1/*/x", "/v1/y/z", undefined],
    ["/v1/{name=shelves/*}", "/v1/shelves/s1", { name: "shelves/s1" }],
    ["/v1/{name=shelves/*}", "/v1/books/s1", undefined],
    ["/v1/{name=shelves/*/books/*}", "/v1/shelves/s1/books/b%202", { name: "shelves/s1/books/b 2" }],
    ["/v1/{name=shelves/*/books/*}", "/v1/shelves/s1/books", undefined],
    ["/v1/{name=**}", "/v1/a/b/c", { name: "a/b/c" }],
    ["/v1/{name=**}", "/v1", { name: "" }],
    ["/v1/{name=**}", "/v1/a%2Fb/c", { name: "a%2Fb/c" }],
    ["/v1/{name=files/**}", "/v1/files/x/y.txt", { name: "files/x/y.txt" }],
    ["/v1/{name=files/**}", "/v1/docs/x", undefined],
    ["/v1/{name=*}", "/v1/n", { name: "n" }],
    ["/v1/{name.first}/x", "/v1/ada/x", { "name.first": "ada" }],
    ["/v1/{a}/{b.c}/{d=e/*}", "/v1/1/2/e/3", { a: "1", "b.c": "2", d: "e/3" }],
    ["/v1/shapes/{id}:cancel", "/v1/shapes/s1:cancel", { id: "s1" }],
    ["/v1/shapes/{id}:cancel", "/v1/shapes/s1", undefined],
    ["/v1/shapes/{id}:cancel", "/v1/shapes/s1:undo", undefined],
    ["/v1/shapes/{id}:cancel", "/v1/shapes/:cancel", undefined],
    ["/v1/shapes:search", "/v1/shapes:search", {}],
    ["/v1/shapes:search", "/v1/shapes", undefined],
    ["/v1/{name=**}:undelete", "/v1/a/b:undelete", { name: "a/b" }],
    ["/v1/{id}", "/v1/s1:cancel", { id: "s1:cancel" }],
    ["/a%20b/{x}", "/a%20b/1", { x: "1" }],
    ["/a b/{x}", "/a%20b/1", { x: "1" }],
    ["/com.example.shoppingcart.ShoppingCart/GetCart", "/com.example.shoppingcart.ShoppingCart/GetCart", {}],
  ];
  for (const [template, path, expected] of rows) {
    test(`${template} against ${path} ${expected ? `captures ${JSON.stringify(expected)}` : "does not match"}`, () => {
      const t = parsePathTemplate(template);
      const captures = matchPath(t, splitPath(path));
      if (expected === undefined) {
        assert.equal(captures, undefined);
        return;
      }
      assert.ok(captures, "matches");
      const named = Object.fromEntries(t.variables.map((v, i) => [v.fieldPath.join("."), captures[i]]));
      assert.deepEqual(named, expected);
    });
  }

  test("parses variables with their field paths and spans, and the verb", () => {
    const t = parsePathTemplate("/v1/{parent.name=shelves/*}/books/{book_id}:publish");
    assert.deepEqual(t.segments, [
      { kind: "literal", value: "v1" },
      { kind: "literal", value: "shelves" },
      { kind: "one" },
      { kind: "literal", value: "books" },
      { kind: "one" },
    ]);
    assert.deepEqual(t.variables, [
      { fieldPath: ["parent", "name"], start: 1, end: 3 },
      { fieldPath: ["book_id"], start: 4, end: 5 },
    ]);
    assert.equal(t.verb, "publish");
  });

  const invalid: [string, RegExp][] = [
    ["carts/{id}", /must start with \//],
    ["", /must start with \//],
    ["/carts/{id", /never closed|expected \}/],
    ["/carts/{}", /is not a field path/],
    ["/carts/{1id}", /is not a field path/],
    ["/carts/{a..b}", /is not a field path/],
    ["/carts/{a}/{a}", /appears twice/],
    ["/v1/{a={b}}", /cannot be nested/],
    ["/v1/**/x", /\*\* may only be the last segment/],
    ["/v1/{a=**}/x", /\*\* may only be the last segment/],
    ["/v1//x", /unexpected "\/"/],
    ["/v1/", /empty segment/],
    ["/v1/x:", /empty segment/],
    ["/v1/x:a:b", /unexpected ":"/],
    ["/v1/x}", /unexpected "\}"/],
    ["/v1/a*b", /unexpected "\*"/],
    ["/v1/x?y=1", /unexpected "\?"/],
  ];
  for (const [template, why] of invalid) {
    test(`rejects ${JSON.stringify(template)}`, () => {
      assert.throws(() => parsePathTemplate(template), (e: unknown) => {
        assert.ok(e instanceof PathTemplateError);
        assert.match(e.message, new RegExp(`invalid path template "${template.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}"`));
        assert.match(e.message, why);
        return true;
      });
    });
  }

  test("a malformed percent-escape in a segment a template reads is a PathDecodeError", () => {
    assert.throws(() => matchPath(parsePathTemplate("/v1/{id}"), splitPath("/v1/%E0%A4%A")), PathDecodeError);
    // A segment the template never reaches is not decoded.
    assert.equal(matchPath(parsePathTemplate("/v2/{id}"), splitPath("/v1/%zz")), undefined);
  });

  test("orders templates most specific first", () => {
    const order = [
      "/v1/shapes/{id}:cancel",
      "/v1/shapes/special",
      "/v1/shapes/{id}",
      "/v1/shapes/{id}/{x}",
      "/v1/shapes/**",
      "/v1/{a}/special",
      "/v1/{a}/{b}",
      "/v1/**",
    ];
    const shuffled = [...order].reverse().map(parsePathTemplate);
    assert.deepEqual(shuffled.sort(compareSpecificity).map((t) => t.text), order);
  });

  test("two templates have the same shape when they match the same paths", () => {
    const same = (a: string, b: string) => sameShape(parsePathTemplate(a), parsePathTemplate(b));
    assert.equal(same("/carts/{user_id}", "/carts/{id}"), true);
    assert.equal(same("/carts/{user_id}", "/carts/*"), true);
    assert.equal(same("/v1/{name=a/*}", "/v1/a/{x}"), true);
    assert.equal(same("/carts/{user_id}", "/carts/{user_id}:x"), false);
    assert.equal(same("/carts/{user_id}", "/carts/alice"), false);
    assert.equal(same("/carts/{user_id}", "/carts/{user_id}/items"), false);
    assert.equal(same("/v1/*", "/v1/**"), false);
  });
});
