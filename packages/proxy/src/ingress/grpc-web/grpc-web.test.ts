// gRPC-web and Connect end to end: real @connectrpc clients over HTTP/1.1 loopback → the proxy's one
// port → the raw shopping cart user function; gRPC-web-text and CORS preflights by hand with fetch.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { startRawCartUserFunction, type RawUserFunction } from "../../../../../tests/fixtures/raw-cart-user-function.js";
import { startTestProxy } from "../../../../../tests/support/proxy.js";
import {
  CartSchema,
  GetShoppingCartSchema,
  ShoppingCart,
} from "../../../../../examples/shopping-cart/src/gen/com/example/shoppingcart/shoppingcart_pb.js";
import type { RunningProxy } from "../../proxy.js";
import { SERVICE, shapesModel } from "../http/testdata/shapes.js";
import { startShapesUserFunction, type ShapesUserFunction } from "../http/testdata/shapes-user-function.js";
import { connectCode, connectHttpStatus, frame, percentEncode, singleFrame } from "./grpc-web-handler.js";

describe("gRPC-web and Connect to the shopping cart", { concurrency: false }, () => {
  let uf: RawUserFunction;
  let proxy: RunningProxy;
  let baseUrl: string;
  before(async () => {
    uf = await startRawCartUserFunction();
    proxy = await startTestProxy(uf.port, { passivationTimeoutMs: 300, corsOrigins: "https://app.example, http://localhost:5173" });
    baseUrl = `http://127.0.0.1:${proxy.port}`;
  });
  after(async () => {
    await proxy.stop();
    await uf.close();
  });

  const transports: [string, () => Transport][] = [
    ["gRPC-web", () => createGrpcWebTransport({ baseUrl, httpVersion: "1.1" })],
    ["Connect (binary)", () => createConnectTransport({ baseUrl, httpVersion: "1.1" })],
    ["Connect (JSON)", () => createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: false })],
  ];

  for (const [name, transport] of transports) {
    describe(name, () => {
      let client: Client<typeof ShoppingCart>;
      const user = `${name.replace(/\W/g, "")}-user`;
      before(() => {
        client = createClient(ShoppingCart, transport());
      });

      test("AddItem then GetCart", async () => {
        await client.addItem({ userId: user, productId: "apple", name: "Apple", quantity: 2 });
        await client.addItem({ userId: user, productId: "apple", name: "Apple", quantity: 3 });
        const cart = await client.getCart({ userId: user });
        assert.deepEqual(
          cart.items.map((i) => ({ productId: i.productId, name: i.name, quantity: i.quantity })),
          [{ productId: "apple", name: "Apple", quantity: 5 }],
        );
      });

      test("a user function failure keeps its code and message", async () => {
        await assert.rejects(client.addItem({ userId: user, productId: "pear", name: "Pear", quantity: -1 }), (e: unknown) => {
          assert.ok(e instanceof ConnectError, String(e));
          assert.equal(e.code, Code.Unknown);
          assert.equal(e.rawMessage, "Cannot add negative quantity of pear: quantity must be positive");
          return true;
        });
      });

      test("call headers are accepted as metadata", async () => {
        const cart = await client.getCart({ userId: `${user}-empty` }, { headers: { "x-trace": "t1" } });
        assert.deepEqual(cart.items, []);
      });
    });
  }

  test("an unknown method is UNIMPLEMENTED (gRPC-web trailers-only, Connect 501 JSON)", async () => {
    const path = "/com.example.shoppingcart.ShoppingCart/Nope";
    const web = await fetch(baseUrl + path, {
      method: "POST",
      headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" },
      body: frame(0, new Uint8Array(0)),
    });
    assert.equal(web.status, 200);
    assert.equal(web.headers.get("grpc-status"), "12");
    assert.match(web.headers.get("grpc-message") ?? "", /unknown method/);

    const connect = await fetch(baseUrl + path, {
      method: "POST",
      headers: { "content-type": "application/json", "connect-protocol-version": "1" },
      body: "{}",
    });
    assert.equal(connect.status, 501);
    assert.deepEqual(await connect.json(), { code: "unimplemented", message: `unknown method ${path}` });

    const client = createClient(ShoppingCart, createGrpcWebTransport({ baseUrl: `${baseUrl}/nowhere`, httpVersion: "1.1" }));
    await assert.rejects(client.getCart({ userId: "x" }), (e: unknown) => e instanceof ConnectError && e.code === Code.Unimplemented);
  });

  test("Connect JSON with a bad field is INVALID_ARGUMENT, HTTP 400", async () => {
    const r = await fetch(`${baseUrl}/com.example.shoppingcart.ShoppingCart/GetCart`, {
      method: "POST",
      headers: { "content-type": "application/json", "connect-protocol-version": "1" },
      body: '{"nope": 1}',
    });
    assert.equal(r.status, 400);
    const body = (await r.json()) as { code: string; message: string };
    assert.equal(body.code, "invalid_argument");
  });

  test("gRPC-web-text: base64 request and response, trailer frame in the body", async () => {
    const request = toBinary(GetShoppingCartSchema, create(GetShoppingCartSchema, { userId: "gRPCweb-user" }));
    const r = await fetch(`${baseUrl}/com.example.shoppingcart.ShoppingCart/GetCart`, {
      method: "POST",
      headers: { "content-type": "application/grpc-web-text", "x-grpc-web": "1", accept: "application/grpc-web-text" },
      body: frame(0, request).toString("base64"),
    });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get("content-type"), "application/grpc-web-text");
    const bytes = Buffer.from(await r.text(), "base64");
    const length = bytes.readUInt32BE(1);
    assert.equal(bytes[0], 0);
    const cart = fromBinary(CartSchema, bytes.subarray(5, 5 + length));
    assert.deepEqual(cart.items.map((i) => [i.productId, i.quantity]), [["apple", 5]]);
    const trailer = bytes.subarray(5 + length);
    assert.equal(trailer[0], 0x80);
    assert.equal(trailer.subarray(5).toString("latin1"), "grpc-status:0\r\ngrpc-message:\r\n");
  });

  test("CORS: an allowed origin's preflight is answered; actual responses expose grpc-status", async () => {
    const pre = await fetch(`${baseUrl}/com.example.shoppingcart.ShoppingCart/GetCart`, {
      method: "OPTIONS",
      headers: { origin: "https://app.example", "access-control-request-method": "POST", "access-control-request-headers": "content-type,x-grpc-web,x-custom" },
    });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers.get("access-control-allow-origin"), "https://app.example");
    assert.match(pre.headers.get("access-control-allow-methods") ?? "", /POST/);
    const allowed = (pre.headers.get("access-control-allow-headers") ?? "").split(", ");
    for (const h of ["x-grpc-web", "x-user-agent", "grpc-timeout", "content-type", "connect-protocol-version", "connect-timeout-ms", "x-custom"]) {
      assert.ok(allowed.includes(h), `${h} in ${allowed.join(", ")}`);
    }

    const denied = await fetch(`${baseUrl}/com.example.shoppingcart.ShoppingCart/GetCart`, {
      method: "OPTIONS",
      headers: { origin: "https://evil.example", "access-control-request-method": "POST" },
    });
    assert.equal(denied.status, 403);
    assert.equal(denied.headers.get("access-control-allow-origin"), null);

    const actual = await fetch(`${baseUrl}/com.example.shoppingcart.ShoppingCart/GetCart`, {
      method: "POST",
      headers: { origin: "http://localhost:5173", "content-type": "application/grpc-web+proto", "x-grpc-web": "1" },
      body: frame(0, toBinary(GetShoppingCartSchema, create(GetShoppingCartSchema, { userId: "nobody" }))),
    });
    assert.equal(actual.status, 200);
    assert.equal(actual.headers.get("access-control-allow-origin"), "http://localhost:5173");
    assert.match(actual.headers.get("access-control-expose-headers") ?? "", /grpc-status, grpc-message/);
    await actual.arrayBuffer();

    // HTTP/JSON gets the same CORS headers.
    const json = await fetch(`${baseUrl}/com.example.shoppingcart.ShoppingCart/GetCart`, {
      method: "POST",
      headers: { origin: "https://app.example", "content-type": "application/json" },
      body: '{"userId":"nobody"}',
    });
    assert.equal(json.status, 200, await json.text());
    assert.equal(json.headers.get("access-control-allow-origin"), "https://app.example");
  });

  test("JSON without connect-protocol-version still reaches HTTP/JSON transcoding", async () => {
    const r = await fetch(`${baseUrl}/com.example.shoppingcart.ShoppingCart/GetCart`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '{"userId":"nobody"}',
    });
    assert.equal(r.status, 200);
    assert.deepEqual(await r.json(), {});
  });
});

describe("server streaming and client streaming over gRPC-web and Connect (a raw action)", { concurrency: false }, () => {
  let uf: ShapesUserFunction;
  let proxy: RunningProxy;
  let baseUrl: string;
  const service = shapesModel().registry.getService(SERVICE)!;
  before(async () => {
    uf = await startShapesUserFunction();
    proxy = await startTestProxy(uf.port);
    baseUrl = `http://127.0.0.1:${proxy.port}`;
  });
  after(async () => {
    await proxy.stop();
    await uf.close();
  });

  for (const [name, transport] of [
    ["gRPC-web", () => createGrpcWebTransport({ baseUrl, httpVersion: "1.1" })],
    ["Connect (binary)", () => createConnectTransport({ baseUrl, httpVersion: "1.1" })],
    ["Connect (JSON)", () => createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: false })],
  ] as const) {
    test(`${name}: a server stream relays every reply, and a late failure after them`, async () => {
      const client = createClient(service, transport()) as unknown as {
        watch(req: { id: string }): AsyncIterable<{ id: string; size: number }>;
        collect(reqs: AsyncIterable<{ id: string }>): Promise<unknown>;
      };
      const sizes: number[] = [];
      for await (const shape of client.watch({ id: "w" })) sizes.push(shape.size);
      assert.deepEqual(sizes, [1, 2, 3]);

      const late: number[] = [];
      await assert.rejects(
        (async () => {
          for await (const shape of client.watch({ id: "fail-late" })) late.push(shape.size);
        })(),
        (e: unknown) => e instanceof ConnectError && e.code === Code.Unknown && e.rawMessage === "lost sight of fail-late",
      );
      assert.deepEqual(late, [1]);

      await assert.rejects(
        (async () => {
          for await (const _ of client.watch({ id: "fail" })) assert.fail("no reply expected");
        })(),
        (e: unknown) => e instanceof ConnectError && e.code === Code.Unknown && e.rawMessage === "cannot watch fail",
      );
    });
  }

  test("a client-streaming method is UNIMPLEMENTED", async () => {
    const r = await fetch(`${baseUrl}/${SERVICE}/Collect`, {
      method: "POST",
      headers: { "content-type": "application/grpc-web+proto" },
      body: frame(0, new Uint8Array(0)),
    });
    assert.equal(r.headers.get("grpc-status"), "12");
    assert.match(r.headers.get("grpc-message") ?? "", /client-streaming/);
  });
});

describe("gRPC-web framing helpers", () => {
  test("a single frame is unwrapped; compressed, truncated and extra frames are refused", () => {
    assert.deepEqual([...singleFrame(frame(0, Buffer.from([1, 2, 3])))], [1, 2, 3]);
    assert.throws(() => singleFrame(Buffer.from([0, 0])), /fewer than 5 bytes/);
    assert.throws(() => singleFrame(frame(1, Buffer.from([1]))), /compressed/);
    assert.throws(() => singleFrame(frame(0, Buffer.from([1, 2])).subarray(0, 6)), /truncated/);
    assert.throws(() => singleFrame(Buffer.concat([frame(0, Buffer.from([1])), frame(0, Buffer.from([2]))])), /exactly one/);
  });

  test("grpc-message is percent-encoded; Connect codes and statuses follow the spec", () => {
    assert.equal(percentEncode("100% sûr\n"), "100%25 s%C3%BBr%0A");
    assert.equal(connectCode(1), "canceled");
    assert.equal(connectCode(3), "invalid_argument");
    assert.equal(connectHttpStatus(3), 400);
    assert.equal(connectHttpStatus(5), 404);
    assert.equal(connectHttpStatus(16), 401);
  });
});
