// Direction (b), the proxy itself: what it sends at discovery (seen through a recording relay in
// front of the model user function; our proxy only), that it reports a spec it rejects to the user
// function, and that gRPC server reflection lists the model's services.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { serve, type Logger, type UserFunctionServer } from "@cloudstate-ts/sdk";
import { EntitySchema, EntitySpecSchema, ProxyInfoSchema, UserFunctionErrorSchema, type ProxyInfo } from "../../../packages/protocol/src/index.js";
import { resolveConfig, startProxy } from "../../../packages/proxy/src/index.js";
import { modelEntities } from "../model/index.js";
import { NEEDS_OUR_PROXY, startProxyUnderTest, type ProxyUnderTest } from "./proxy-under-test.js";
import { listServices, type ReflectionVersion } from "./reflection-client.js";

const MODEL_SERVICES = [
  "cloudstate.tck.model.eventsourced.EventSourcedTckModel",
  "cloudstate.tck.model.valueentity.ValueEntityTckModel",
  "cloudstate.tck.model.action.ActionTckModel",
];

const quiet: Logger = { info: () => undefined, warn: () => undefined, error: () => undefined };
const identity = (b: Buffer) => b;

/**
 * Serves cloudstate.EntityDiscovery in front of the model: records what the proxy sends, relays
 * discover() to the model (optionally changing its answer), and records reportError.
 */
class DiscoveryRelay {
  readonly proxyInfos: ProxyInfo[] = [];
  readonly reportedErrors: string[] = [];
  private readonly server = new grpc.Server();
  private readonly upstream: grpc.Client;
  port = 0;

  constructor(modelAddress: string, alterSpec: (spec: Uint8Array) => Uint8Array = (s) => s) {
    this.upstream = new grpc.Client(modelAddress, grpc.credentials.createInsecure());
    const method = (name: string) => ({
      path: `/cloudstate.EntityDiscovery/${name}`,
      requestStream: false,
      responseStream: false,
      requestSerialize: identity,
      requestDeserialize: identity,
      responseSerialize: identity,
      responseDeserialize: identity,
    });
    this.server.addService({ discover: method("discover"), reportError: method("reportError") } as grpc.ServiceDefinition, {
      discover: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
        this.proxyInfos.push(fromBinary(ProxyInfoSchema, call.request));
        this.upstream.makeUnaryRequest("/cloudstate.EntityDiscovery/discover", identity, identity, call.request, (e, spec) =>
          e ? callback(e) : callback(null, Buffer.from(alterSpec(spec!))),
        );
      },
      reportError: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
        this.reportedErrors.push(fromBinary(UserFunctionErrorSchema, call.request).message);
        callback(null, Buffer.alloc(0));
      },
    });
  }

  async start(): Promise<this> {
    this.port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, port) => (e ? reject(e) : resolve(port))),
    );
    return this;
  }

  close(): void {
    this.upstream.close();
    this.server.forceShutdown();
  }
}

describe("direction (b) — the proxy", () => {
  describe("discovery", { skip: NEEDS_OUR_PROXY }, () => {
    let uf: UserFunctionServer;

    before(async () => {
      uf = await serve({ entities: modelEntities(), host: "127.0.0.1", port: 0, logger: quiet });
    });
    after(() => uf.close());

    const config = (userFunctionPort: number) =>
      resolveConfig({ host: "127.0.0.1", port: 0, store: "memory", userFunctionHost: "127.0.0.1", userFunctionPort, logLevel: "silent", shutdownGraceMs: 1_000, metricsPort: "off" }, {});

    test("proxy: discovery sends ProxyInfo 0.2 with the supported entity types", async () => {
      const relay = await new DiscoveryRelay(`127.0.0.1:${uf.port}`).start();
      try {
        const proxy = await startProxy(config(relay.port), { discoveryBackoffMs: { min: 50, max: 200 } });
        await proxy.stop();
        const info = relay.proxyInfos[0];
        assert.ok(info, "proxy: the proxy called discover()");
        assert.equal(info.protocolMajorVersion, 0, "proxy: ProxyInfo.protocol_major_version");
        assert.equal(info.protocolMinorVersion, 2, "proxy: ProxyInfo.protocol_minor_version");
        assert.ok(info.proxyName.length > 0, "proxy: ProxyInfo.proxy_name is set");
        for (const type of ["cloudstate.eventsourced.EventSourced", "cloudstate.valueentity.ValueEntity", "cloudstate.action.ActionProtocol"]) {
          assert.ok(info.supportedEntityTypes.includes(type), `proxy: ProxyInfo.supported_entity_types includes ${type} (got ${info.supportedEntityTypes.join(", ")})`);
        }
      } finally {
        relay.close();
      }
    });

    test("proxy: a spec it rejects (an unknown entity type) is reported to the user function, and not served", async () => {
      const unknownType = (bytes: Uint8Array) => {
        const spec = fromBinary(EntitySpecSchema, bytes);
        spec.entities.push(create(EntitySchema, { entityType: "cloudstate.tck.Unknown", serviceName: "cloudstate.tck.model.action.ActionTwo" }));
        return toBinary(EntitySpecSchema, spec);
      };
      const relay = await new DiscoveryRelay(`127.0.0.1:${uf.port}`, unknownType).start();
      try {
        await assert.rejects(
          startProxy(config(relay.port), { discoveryBackoffMs: { min: 50, max: 200 } }),
          "proxy: a proxy must not start serving a spec with an unknown entity type",
        );
        assert.equal(relay.reportedErrors.length, 1, "proxy: the discovery error was reported to the user function once");
        assert.ok(relay.reportedErrors[0]!.includes("cloudstate.tck.Unknown"), `proxy: the reported error names the unknown entity type (got "${relay.reportedErrors[0]}")`);
      } finally {
        relay.close();
      }
    });
  });

  describe("reflection", () => {
    let p: ProxyUnderTest;

    before(async () => {
      p = await startProxyUnderTest();
    });
    after(() => p.close());

    for (const version of ["v1", "v1alpha"] as ReflectionVersion[]) {
      test(`proxy: server reflection (${version}) lists the model's services`, async () => {
        const services = await listServices(p.address, version).catch((e: Error) => {
          throw new Error(`proxy: server reflection ${version} does not answer: ${e.message}`);
        });
        for (const service of MODEL_SERVICES) assert.ok(services.includes(service), `proxy: reflection ${version} lists ${service} (got ${services.join(", ")})`);
      });
    }
  });
});
