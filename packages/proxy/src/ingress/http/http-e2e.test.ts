// HTTP/JSON end to end: fetch over loopback → the proxy's one port → user function, with the raw
// shopping cart (event sourced) and a raw action serving more shapes (./testdata/shapes.ts).
import assert from "node:assert/strict";
import * as http from "node:http";
import { after, before, describe, test } from "node:test";
import { startRawCartUserFunction, type RawUserFunction } from "../../../../../tests/fixtures/raw-cart-user-function.js";
import { startTestProxy } from "../../../../../tests/support/proxy.js";
import type { RunningProxy } from "../../proxy.js";
import { DiscoveryError } from "../../discovery/service-model.js";
import { SERVICE, SHAPES_METHODS } from "./testdata/shapes.js";
import { startShapesUserFunction, type ShapesUserFunction } from "./testdata/shapes-user-function.js";

interface Sent {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  json(): unknown;
}

async function send(port: number, method: string, path: string, body?: string | Uint8Array, headers: Record<string, string> = {}): Promise<Sent> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { method, body, headers });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: () => JSON.parse(text) as unknown };
}

/** Asserts a JSON error response: its HTTP status, gRPC code and message. */
function assertError(r: Sent, status: number, code: number, message: RegExp): void {
  assert.equal(r.status, status, r.text);
  assert.match(r.headers.get("content-type") ?? "", /^application\/json/);
  const body = r.json() as { code: number; message: string; details: unknown[] };
  assert.equal(body.code, code);
  assert.match(body.message, message);
  assert.deepEqual(body.details, []);
}

describe("HTTP/JSON to the shopping cart", { concurrency: false }, () => {
  let uf: RawUserFunction;
  let proxy: RunningProxy;
  const call = (method: string, path: string, body?: string, headers?: Record<string, string>) => send(proxy.port, method, path, body, headers);
  before(async () => {
    uf = await startRawCartUserFunction();
    // Short passivation: closing the user function waits for its open entity streams to end.
    proxy = await startTestProxy(uf.port, { passivationTimeoutMs: 300 });
  });
  after(async () => {
    await proxy.stop();
    await uf.close();
  });

  test("POST /cart/alice/items/add adds an item and answers {}", async () => {
    const r = await call("POST", "/cart/alice/items/add", '{"productId":"x","name":"X","quantity":1}', { "content-type": "application/json" });
    assert.equal(r.status, 200, r.text);
    assert.match(r.headers.get("content-type") ?? "", /^application\/json/);
    assert.deepEqual(r.json(), {});
  });

  test("a body sent as curl -d sends it (form content type) is read as JSON too", async () => {
    const r = await call("POST", "/cart/alice/items/add", '{"productId":"y","name":"Y","quantity":2}', { "content-type": "application/x-www-form-urlencoded" });
    assert.equal(r.status, 200, r.text);
  });

  test("GET /carts/alice is the cart; GET /carts/alice/items only its items", async () => {
    const cart = await call("GET", "/carts/alice");
    assert.equal(cart.status, 200, cart.text);
    assert.deepEqual(cart.json(), {
      items: [
        { productId: "x", name: "X", quantity: 1 },
        { productId: "y", name: "Y", quantity: 2 },
      ],
    });
    const items = await call("GET", "/carts/alice/items");
    assert.equal(items.status, 200, items.text);
    assert.deepEqual(items.json(), [
      { productId: "x", name: "X", quantity: 1 },
      { productId: "y", name: "Y", quantity: 2 },
    ]);
  });

  test("POST /cart/alice/items/y/remove takes every field from the path", async () => {
    const r = await call("POST", "/cart/alice/items/y/remove");
    assert.equal(r.status, 200, r.text);
    assert.deepEqual((await call("GET", "/carts/alice/items")).json(), [{ productId: "x", name: "X", quantity: 1 }]);
  });

  test("the default route POST /<package.Service>/<Method> takes the message as the body", async () => {
    const r = await call("POST", "/com.example.shoppingcart.ShoppingCart/GetCart", '{"userId":"alice"}');
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json(), { items: [{ productId: "x", name: "X", quantity: 1 }] });
  });

  test("HEAD runs the GET route and sends no body", async () => {
    const r = await call("HEAD", "/carts/alice");
    assert.equal(r.status, 200);
    assert.equal(r.text, "");
  });

  test("a user failure is 500 with the failure text and gRPC code UNKNOWN", async () => {
    assertError(await call("POST", "/cart/alice/items/add", '{"productId":"z","name":"Z","quantity":0}'), 500, 2, /Cannot add negative quantity of z/);
  });

  test("an unknown JSON field is 400 naming it, and changes nothing", async () => {
    assertError(await call("POST", "/cart/bob/items/add", '{"productId":"z","qty":1}'), 400, 3, /key "qty" is unknown/);
    assertError(await call("GET", "/carts/alice?verbose=true"), 400, 3, /unknown query parameter "verbose"/);
    assert.deepEqual(await proxy.store.journal.events("shopping-cart", "bob"), []);
  });

  test("malformed JSON is 400", async () => {
    assertError(await call("POST", "/cart/bob/items/add", '{"productId": '), 400, 3, /not valid JSON/);
  });

  test("no route is 404, and says which methods the path takes", async () => {
    assertError(await call("GET", "/nowhere"), 404, 5, /no route for GET \/nowhere$/);
    assertError(await call("DELETE", "/carts/alice"), 404, 5, /no route for DELETE \/carts\/alice \(this path takes GET\)/);
  });

  test("health routes still come first", async () => {
    const r = await call("GET", "/ready");
    assert.equal(r.status, 200);
    assert.equal(r.text, "ready");
  });

  test("user function down is 503", async () => {
    await uf.close();
    const r = await call("GET", "/carts/carol");
    assertError(r, 503, 14, /unavailable/);
  });
});

describe("HTTP/JSON to an action with more shapes", { concurrency: false }, () => {
  let uf: ShapesUserFunction;
  let proxy: RunningProxy;
  const call = (method: string, path: string, body?: string | Uint8Array, headers?: Record<string, string>) => send(proxy.port, method, path, body, headers);
  before(async () => {
    uf = await startShapesUserFunction();
    proxy = await startTestProxy(uf.port, { maxMessageBytes: 1024 });
  });
  after(async () => {
    await proxy.stop();
    await uf.close();
  });

  test("path and query parameters reach the user function as one message", async () => {
    const r = await call("GET", "/v1/shapes/s%201?size=3&big=9007199254740993&color=GREEN&tags=a&tags=b&inner.first=ada");
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json(), { id: "s 1", size: 3, big: "9007199254740993", color: "GREEN", tags: ["a", "b"], inner: { first: "ada" } });
  });

  test("request headers become metadata, and reply metadata becomes response headers", async () => {
    const r = await call("GET", "/v1/shapes/special", undefined, { "x-test": "hello" });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers.get("x-method"), "GetSpecial");
    assert.equal(r.headers.get("x-echo"), "hello");
  });

  test("custom kinds, verbs, body fields and response_body route and transcode", async () => {
    const search = await call("SEARCH", "/v1/shapes", '{"id":"q"}');
    assert.equal(search.headers.get("x-method"), "SearchShapes");
    assert.deepEqual(search.json(), { shapes: [{ id: "q" }, { id: "q-2" }], next: "n" });
    const cancel = await call("POST", "/v1/shapes/s1:cancel", "{}");
    assert.equal(cancel.headers.get("x-method"), "CancelShape");
    const created = await call("POST", "/v1/shapes?id=s2", '{"first":"ada"}');
    assert.deepEqual(created.json(), { id: "s2", inner: { first: "ada" } });
    const list = await call("GET", "/v1/shapes?id=l");
    assert.deepEqual(list.json(), [{ id: "l" }, { id: "l-2" }]);
  });

  test("a google.api.HttpBody reply is sent raw with its content type", async () => {
    const r = await call("GET", "/v1/files/docs/readme.txt");
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers.get("content-type"), "text/plain; charset=utf-8");
    assert.equal(r.text, "file docs/readme.txt");
  });

  test("a google.api.HttpBody request takes the raw body", async () => {
    const upload = await call("POST", "/v1/upload", "not json at all", { "content-type": "text/plain" });
    assert.deepEqual(upload.json(), { id: "text/plain", tags: ["not json at all"] });
    const attach = await call("PUT", "/v1/shapes/s9/file", "<svg/>", { "content-type": "image/svg+xml" });
    assert.deepEqual(attach.json(), { id: "s9", tags: ["image/svg+xml", "<svg/>"] });
  });

  test("a server stream is newline-delimited JSON by default", async () => {
    const r = await call("GET", "/v1/shapes/w:watch");
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers.get("content-type"), "application/x-ndjson");
    assert.equal(r.headers.get("x-method"), "Watch");
    assert.equal(r.text, '{"id":"w","size":1}\n{"id":"w","size":2}\n{"id":"w","size":3}\n');
  });

  test("a server stream is server-sent events with Accept: text/event-stream", async () => {
    const r = await call("GET", "/v1/shapes/w:watch", undefined, { accept: "text/event-stream" });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers.get("content-type"), "text/event-stream");
    assert.equal(r.text, 'data: {"id":"w","size":1}\n\ndata: {"id":"w","size":2}\n\ndata: {"id":"w","size":3}\n\n');
  });

  test("a stream failing before its first message is an ordinary error; after it, a last error record", async () => {
    assertError(await call("GET", "/v1/shapes/fail:watch"), 500, 2, /cannot watch fail/);
    const ndjson = await call("GET", "/v1/shapes/fail-late:watch");
    assert.equal(ndjson.status, 200);
    assert.equal(ndjson.text, '{"id":"fail-late","size":1}\n{"error":{"code":2,"message":"lost sight of fail-late","details":[]}}\n');
    const sse = await call("GET", "/v1/shapes/fail-late:watch", undefined, { accept: "text/event-stream" });
    assert.equal(sse.text, 'data: {"id":"fail-late","size":1}\n\nevent: error\ndata: {"code":2,"message":"lost sight of fail-late","details":[]}\n\n');
  });

  test("a client-streaming method is 501 over HTTP/JSON", async () => {
    assertError(await call("POST", "/v1/collect", "{}"), 501, 12, /Collect is a client-streaming method, which HTTP\/JSON cannot call; call it with gRPC/);
  });

  test("an action failure is 500 with its text", async () => {
    assertError(await call("GET", "/v1/shapes/fail"), 500, 2, /no shape called fail/);
  });

  test("a gRPC (not gRPC-web) request over HTTP/1.1 is 501, not a JSON parse error", async () => {
    assertError(await call("POST", `/${SERVICE}/Echo`, new Uint8Array([0, 0, 0, 0, 0]), { "content-type": "application/grpc+proto" }), 501, 12, /application\/grpc\+proto is not served over HTTP\/1\.1; use gRPC over HTTP\/2, gRPC-web, Connect, or JSON/);
  });

  test("a malformed percent-escape in the path is 400", async () => {
    assertError(await call("GET", "/v1/shapes/%E0%A4%A"), 400, 3, /not valid percent-encoding/);
  });

  test("a body over the message size limit is 413 RESOURCE_EXHAUSTED", async () => {
    const big = JSON.stringify({ id: "x".repeat(2000) });
    assertError(await call("POST", `/${SERVICE}/Echo`, big), 413, 8, /larger than the limit of 1024 bytes/);
    // Without a Content-Length (chunked), the limit applies as the body arrives.
    const chunked = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request({ host: "127.0.0.1", port: proxy.port, method: "POST", path: `/${SERVICE}/Echo` }, (res) => {
        let body = "";
        res.setEncoding("utf8").on("data", (c: string) => (body += c)).on("end", () => resolve({ status: res.statusCode!, body }));
      });
      req.on("error", reject);
      req.write(`{"id":"${"y".repeat(700)}`);
      req.end(`${"y".repeat(700)}"}`);
    });
    assert.equal(chunked.status, 413);
    assert.equal((JSON.parse(chunked.body) as { code: number }).code, 8);
    // A body under the limit still goes through.
    const ok = await call("POST", `/${SERVICE}/Echo`, JSON.stringify({ id: "x".repeat(900) }));
    assert.equal(ok.status, 200, ok.text);
  });
});

describe("HTTP/JSON and a graceful stop", () => {
  let uf: RawUserFunction;
  after(async () => {
    await uf.close();
  });

  test("a call in flight when the proxy stops completes with 200", async () => {
    uf = await startRawCartUserFunction({ replyDelayMs: 300 });
    const proxy = await startTestProxy(uf.port, { passivationTimeoutMs: 300 });
    const inFlight = send(proxy.port, "POST", "/cart/dora/items/add", '{"productId":"x","name":"X","quantity":1}');
    await new Promise((resolve) => setTimeout(resolve, 100));
    await proxy.stop();
    const r = await inFlight;
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json(), {});
  });
});

describe("an invalid google.api.http rule", () => {
  let uf: ShapesUserFunction;
  after(async () => {
    await uf.close();
  });

  test("fails the start with a message naming the method, also reported to the user function", async () => {
    uf = await startShapesUserFunction([...SHAPES_METHODS, { name: "Bad", input: "Shape", output: "Shape", rule: { pattern: { case: "get", value: "/v1/{id" } } }]);
    const why = /cloudstate\.test\.http\.Shapes\.Bad: its google\.api\.http option has an invalid path template "\/v1\/\{id"/;
    await assert.rejects(startTestProxy(uf.port), (e: unknown) => {
      assert.ok(e instanceof DiscoveryError);
      assert.match(e.message, why);
      return true;
    });
    assert.equal(uf.reportedErrors.length, 1);
    assert.match(uf.reportedErrors[0]!, why);
  });
});
