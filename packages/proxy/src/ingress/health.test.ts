// grpc.health.v1.Health end to end: a grpc-js client → the proxy's port, with the raw shopping cart.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  HealthCheckRequestSchema,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as ServingStatus,
  type HealthCheckRequest,
  type HealthCheckResponse,
} from "@cloudstate-ts/protocol";
import { startRawCartUserFunction, type RawUserFunction } from "../../../../tests/fixtures/raw-cart-user-function.js";
import { startTestProxy } from "../../../../tests/support/proxy.js";
import type { RunningProxy } from "../proxy.js";

const serialize = (m: HealthCheckRequest) => Buffer.from(toBinary(HealthCheckRequestSchema, m));
const deserialize = (b: Buffer) => fromBinary(HealthCheckResponseSchema, b);
const request = (service: string) => create(HealthCheckRequestSchema, { service });

function check(client: grpc.Client, service: string): Promise<ServingStatus> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest<HealthCheckRequest, HealthCheckResponse>(
      "/grpc.health.v1.Health/Check",
      serialize,
      deserialize,
      request(service),
      new grpc.Metadata(),
      { deadline: Date.now() + 3_000 },
      (err, res) => (err ? reject(err) : resolve(res!.status)),
    );
  });
}

function watch(client: grpc.Client, service: string): { statuses: ServingStatus[]; ended: Promise<grpc.StatusObject>; next(n: number): Promise<void>; cancel(): void } {
  const call = client.makeServerStreamRequest<HealthCheckRequest, HealthCheckResponse>("/grpc.health.v1.Health/Watch", serialize, deserialize, request(service));
  const statuses: ServingStatus[] = [];
  const waiters: Array<() => void> = [];
  call.on("data", (r: HealthCheckResponse) => {
    statuses.push(r.status);
    waiters.splice(0).forEach((w) => w());
  });
  call.on("error", () => undefined);
  const ended = new Promise<grpc.StatusObject>((resolve) => call.on("status", resolve));
  const next = async (n: number) => {
    while (statuses.length < n) await new Promise<void>((r) => waiters.push(r));
  };
  return { statuses, ended, next, cancel: () => call.cancel() };
}

describe("gRPC health", () => {
  let uf: RawUserFunction;
  let proxy: RunningProxy;
  let client: grpc.Client;
  before(async () => {
    uf = await startRawCartUserFunction();
    proxy = await startTestProxy(uf.port);
    client = new grpc.Client(`127.0.0.1:${proxy.port}`, grpc.credentials.createInsecure());
  });
  after(async () => {
    client.close();
    await proxy.stop();
    await uf.close();
  });

  test("Check of the server and of a user service is SERVING while the proxy is ready", async () => {
    assert.equal(await check(client, ""), ServingStatus.SERVING);
    assert.equal(await check(client, "com.example.shoppingcart.ShoppingCart"), ServingStatus.SERVING);
  });

  test("Check of an unknown service is NOT_FOUND", async () => {
    await assert.rejects(check(client, "no.such.Service"), (e: grpc.ServiceError) => {
      assert.equal(e.code, grpc.status.NOT_FOUND);
      assert.match(e.details, /no\.such\.Service/);
      return true;
    });
  });

  test("Watch of an unknown service answers SERVICE_UNKNOWN", async () => {
    const w = watch(client, "no.such.Service");
    await w.next(1);
    assert.equal(w.statuses[0], ServingStatus.SERVICE_UNKNOWN);
    w.cancel();
  });

  test("Watch sends the current status, then NOT_SERVING when the proxy stops, and ends", async () => {
    // A proxy of its own: this test stops it.
    const own = await startTestProxy(uf.port);
    const c = new grpc.Client(`127.0.0.1:${own.port}`, grpc.credentials.createInsecure());
    try {
      const w = watch(c, "");
      await w.next(1);
      assert.deepEqual(w.statuses, [ServingStatus.SERVING]);
      const stopped = own.stop();
      await w.next(2);
      assert.deepEqual(w.statuses, [ServingStatus.SERVING, ServingStatus.NOT_SERVING]);
      assert.equal((await w.ended).code, grpc.status.OK);
      await stopped;
    } finally {
      c.close();
      await own.stop();
    }
  });
});
