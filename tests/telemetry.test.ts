// Observability through an in-process proxy: Prometheus /metrics on its own port (commands by
// service, method and status code, latency histogram, active entities, store batches, entity
// restarts, process metrics), request ids echoed and forwarded, and W3C trace context forwarded as
// metadata to state models that take metadata.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { create, toBinary } from "@bufbuild/protobuf";
import { serve, valueEntity, type UserFunctionServer } from "../packages/sdk/src/index.js";
import { CartSchema } from "../examples/value-cart/src/gen/com/example/shoppingcart/domain/cart_state_pb.js";
import { AddLineItemSchema, ShoppingCart } from "../examples/value-cart/src/gen/com/example/shoppingcart/value_cart_pb.js";
import { AddLineItemSchema as RawAddLineItemSchema } from "../examples/shopping-cart/src/gen/com/example/shoppingcart/shoppingcart_pb.js";
import { CartClient, rejectsWith } from "./support/cart-client.js";
import { eventually } from "./support/grpc-client.js";
import { startTestProxy } from "./support/proxy.js";
import { startRawCartUserFunction, type RawUserFunction } from "./fixtures/raw-cart-user-function.js";
import type { RunningProxy } from "../packages/proxy/src/index.js";

const SERVICE = "com.example.shoppingcart.ShoppingCart";

async function scrape(port: number, path = "/metrics"): Promise<{ status: number; body: string; contentType: string | null }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, body: await res.text(), contentType: res.headers.get("content-type") };
}

/** The value of one sample line, e.g. `name{a="b"}`; undefined when absent. */
function sample(body: string, series: string): number | undefined {
  const line = body.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** A unary call with request headers; resolves with the response headers (or the error's trailers). */
function callWithHeaders(port: number, path: string, bytes: Uint8Array, headers: Record<string, string>) {
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(headers)) md.set(k, v);
  return new Promise<{ headers: grpc.Metadata | undefined; error: grpc.ServiceError | null }>((resolve) => {
    let received: grpc.Metadata | undefined;
    const call = client.makeUnaryRequest(path, (b: Buffer) => b, (b: Buffer) => b, Buffer.from(bytes), md, { deadline: Date.now() + 10_000 }, (error) => {
      client.close();
      resolve({ headers: received, error });
    });
    call.on("metadata", (m: grpc.Metadata) => (received = m));
  });
}

describe("metrics and request ids (event-sourced, raw protocol user function)", () => {
  let uf: RawUserFunction;
  let proxy: RunningProxy;
  let client: CartClient;
  before(async () => {
    uf = await startRawCartUserFunction();
    proxy = await startTestProxy(uf.port, { metricsPort: 0 });
    client = new CartClient(proxy.port);
  });
  after(async () => {
    client.close();
    await proxy.stop();
    await uf.close();
  });

  test("the metrics port is its own, on the ingress host (127.0.0.1 in tests)", async () => {
    assert.ok(proxy.metricsPort !== undefined && proxy.metricsPort > 0 && proxy.metricsPort !== proxy.port);
    assert.ok(proxy.summary().some((l) => l.includes(`http://127.0.0.1:${proxy.metricsPort}/metrics`)));
    assert.equal((await scrape(proxy.metricsPort, "/other")).status, 404);
  });

  test("commands, failures, latency, active entities and store batches", async () => {
    for (const quantity of [1, 2, 3]) await client.addItem({ userId: "m1", productId: "apple", name: "Apple", quantity });
    await rejectsWith(client.addItem({ userId: "m1", productId: "x", name: "X", quantity: -1 }), grpc.status.UNKNOWN);
    const { status, body, contentType } = await scrape(proxy.metricsPort!);
    assert.equal(status, 200);
    assert.match(contentType ?? "", /^text\/plain/);
    const labels = `service="${SERVICE}",method="AddItem"`;
    assert.equal(sample(body, `cloudstate_commands_total{${labels},code="OK"}`), 3);
    assert.equal(sample(body, `cloudstate_commands_total{${labels},code="UNKNOWN"}`), 1);
    assert.equal(sample(body, `cloudstate_command_duration_seconds_count{${labels}}`), 4);
    assert.equal(sample(body, `cloudstate_command_duration_seconds_bucket{le="+Inf",${labels}}`), 4);
    assert.ok(sample(body, `cloudstate_command_duration_seconds_sum{${labels}}`)! > 0);
    assert.equal(sample(body, `cloudstate_active_entities{service="${SERVICE}",kind="eventSourced"}`), 1);
    // The memory store commits each write alone: three appends, three batches (the failure wrote nothing).
    assert.equal(sample(body, "cloudstate_store_writes_total"), 3);
    assert.equal(sample(body, "cloudstate_store_batches_total"), 3);
    // …each a batch of one write, observed once by the batch-size and commit-duration histograms.
    assert.equal(sample(body, "cloudstate_store_batch_size_count"), 3);
    assert.equal(sample(body, "cloudstate_store_batch_size_sum"), 3);
    assert.equal(sample(body, `cloudstate_store_batch_size_bucket{le="1"}`), 3);
    assert.equal(sample(body, `cloudstate_store_batch_size_bucket{le="512"}`), 3);
    assert.equal(sample(body, "cloudstate_store_commit_duration_seconds_count"), 3);
    assert.ok(sample(body, "cloudstate_store_commit_duration_seconds_sum")! >= 0);
    assert.equal(sample(body, `cloudstate_store_commit_duration_seconds_bucket{le="+Inf"}`), 3);
    assert.match(body, /^process_cpu_user_seconds_total \d/m);
    assert.match(body, /^nodejs_eventloop_lag_seconds /m);
  });

  test("an entity restart is counted per service", async () => {
    await client.addItem({ userId: "r1", productId: "pear", name: "Pear", quantity: 1 });
    uf.setMisbehaviour("restart-on-remove");
    await client.removeItem({ userId: "r1", productId: "pear" }).catch(() => undefined);
    uf.setMisbehaviour("none");
    let body = "";
    await eventually(
      async () => (sample((body = (await scrape(proxy.metricsPort!)).body), `cloudstate_entity_restarts_total{service="${SERVICE}"}`) ?? 0) >= 1,
      () => `no restart counted:\n${body.split("\n").filter((l) => l.includes("restart")).join("\n")}`,
    );
  });

  test("x-request-id is echoed as a response header, on success and in a failure's trailers", async () => {
    const path = `/${SERVICE}/AddItem`;
    const ok = toBinary(RawAddLineItemSchema, create(RawAddLineItemSchema, { userId: "q1", productId: "a", name: "A", quantity: 1 }));
    const given = await callWithHeaders(proxy.port, path, ok, { "x-request-id": "req-42" });
    assert.equal(given.error, null);
    assert.deepEqual(given.headers?.get("x-request-id"), ["req-42"]);
    const generated = await callWithHeaders(proxy.port, path, ok, {});
    assert.match(String(generated.headers?.get("x-request-id")[0]), /^[0-9a-f-]{36}$/);
    const bad = toBinary(RawAddLineItemSchema, create(RawAddLineItemSchema, { userId: "q1", productId: "a", name: "A", quantity: -1 }));
    const failed = await callWithHeaders(proxy.port, path, bad, { "x-request-id": "req-43" });
    assert.equal(failed.error?.code, grpc.status.UNKNOWN);
    assert.deepEqual(failed.error?.metadata.get("x-request-id"), ["req-43"]);
  });

  test("HTTP/JSON calls are counted too and get x-request-id", async () => {
    const before = sample((await scrape(proxy.metricsPort!)).body, `cloudstate_commands_total{service="${SERVICE}",method="AddItem",code="OK"}`)!;
    const res = await fetch(`http://127.0.0.1:${proxy.port}/cart/h1/items/add`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-request-id": "http-7" },
      body: JSON.stringify({ productId: "p", name: "P", quantity: 1 }),
    });
    assert.equal(res.status, 200, await res.clone().text());
    assert.equal(res.headers.get("x-request-id"), "http-7");
    const notFound = await fetch(`http://127.0.0.1:${proxy.port}/no/such/route`);
    assert.match(notFound.headers.get("x-request-id") ?? "", /^[0-9a-f-]{36}$/);
    const after = sample((await scrape(proxy.metricsPort!)).body, `cloudstate_commands_total{service="${SERVICE}",method="AddItem",code="OK"}`);
    assert.equal(after, before + 1);
  });
});

describe("request id and trace context reach the user function as metadata (value entity)", () => {
  let uf: UserFunctionServer;
  let proxy: RunningProxy;
  const seen: Map<string, string>[] = [];
  before(async () => {
    const entity = valueEntity({
      service: ShoppingCart,
      persistenceId: "telemetry-cart",
      state: CartSchema,
      initial: () => create(CartSchema),
      commands: {
        addItem(_cmd, ctx) {
          seen.push(new Map([...ctx.metadata].map(([k, v]) => [k, String(v)])));
          return {};
        },
        removeItem: () => ({}),
        getCart: () => ({ items: [] }),
        removeCart: () => ({}),
      },
    });
    const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };
    uf = await serve({ entities: [entity], port: 0, host: "127.0.0.1", logger: quiet });
    proxy = await startTestProxy(uf.port);
  });
  after(async () => {
    await proxy.stop();
    await uf.close();
  });

  test("metrics off: no metrics port", () => {
    assert.equal(proxy.metricsPort, undefined);
  });

  test("traceparent, tracestate and x-request-id are forwarded; a generated id is forwarded too", async () => {
    const path = `/${SERVICE}/AddItem`;
    const bytes = toBinary(AddLineItemSchema, create(AddLineItemSchema, { userId: "t1", productId: "a", name: "A", quantity: 1 }));
    const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const given = await callWithHeaders(proxy.port, path, bytes, { traceparent, tracestate: "rojo=00f067aa0ba902b7", "x-request-id": "vr-1" });
    assert.equal(given.error, null);
    assert.equal(seen.at(-1)?.get("traceparent"), traceparent);
    assert.equal(seen.at(-1)?.get("tracestate"), "rojo=00f067aa0ba902b7");
    assert.equal(seen.at(-1)?.get("x-request-id"), "vr-1");
    const generated = await callWithHeaders(proxy.port, path, bytes, {});
    const id = String(generated.headers?.get("x-request-id")[0]);
    assert.match(id, /^[0-9a-f-]{36}$/);
    assert.equal(seen.at(-1)?.get("x-request-id"), id);
  });
});
