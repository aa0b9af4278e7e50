// Discovery as the proxy sees it, over real gRPC on loopback.
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { after, before, describe, test } from "node:test";
import { createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema, type FileDescriptorProto } from "@bufbuild/protobuf/wkt";
import type { EntitySpec } from "@cloudstate-ts/protocol";
import * as grpc from "@grpc/grpc-js";
import { serve, type UserFunctionServer } from "./index.js";
import { ProxyDriver } from "./testing/index.js";
import { actionsService } from "./testdata/actions.js";
import { counterEntity, memoryLogger } from "./testdata/counter.js";
import { Actions } from "./testdata/gen/sdktest/actions_pb.js";
import { Counter } from "./testdata/gen/sdktest/counter_pb.js";
import { ValueCounter } from "./testdata/gen/sdktest/value_counter_pb.js";
import { valueCounterEntity } from "./testdata/value-counter.js";

const logger = memoryLogger();
let server: UserFunctionServer;
let proxy: ProxyDriver;
let spec: EntitySpec;

before(async () => {
  server = await serve({
    entities: [counterEntity({ passivationTimeoutMs: 1234 })],
    port: 0,
    logger,
    serviceName: "counter-app",
    serviceVersion: "1.2.3",
  });
  proxy = new ProxyDriver(server.port);
  spec = await proxy.discover();
});

after(async () => {
  proxy.close();
  await server.close();
});

describe("discovery", () => {
  test("lists the entities with their type, service, persistence id and passivation timeout", () => {
    assert.equal(spec.entities.length, 1);
    const [entity] = spec.entities;
    assert.equal(entity!.entityType, "cloudstate.eventsourced.EventSourced");
    assert.equal(entity!.serviceName, "sdktest.Counter");
    assert.equal(entity!.persistenceId, "counter");
    const strategy = entity!.passivationStrategy?.strategy;
    assert.equal(strategy?.case, "timeout");
    assert.equal(strategy.value.timeout, 1234n);
  });

  test("reports protocol 0.2, the service and the support library", () => {
    const info = spec.serviceInfo!;
    assert.deepEqual([info.protocolMajorVersion, info.protocolMinorVersion], [0, 2]);
    assert.equal(info.serviceName, "counter-app");
    assert.equal(info.serviceVersion, "1.2.3");
    assert.equal(info.serviceRuntime, `node ${process.version}`);
    assert.equal(info.supportLibraryName, "@cloudstate-ts/sdk");
    assert.match(info.supportLibraryVersion, /^\d+\.\d+\.\d+/);
  });

  test("logs which proxy discovered it", () => {
    assert.ok(logger.lines.some((l) => l.startsWith("info: discovered by test-driver 0.0.0 (protocol 0.2)")));
  });

  describe("the descriptor set", () => {
    let files: FileDescriptorProto[];
    before(() => {
      files = fromBinary(FileDescriptorSetSchema, spec.proto).file;
    });

    test("holds the service's file, the event and state types' file and every import, once each", () => {
      const names = files.map((f) => f.name);
      assert.deepEqual(new Set(names).size, names.length, `duplicates in ${names.join(", ")}`);
      for (const name of [
        "sdktest/counter.proto",
        "sdktest/domain.proto",
        "cloudstate/entity_key.proto",
        "google/protobuf/empty.proto",
        "google/protobuf/descriptor.proto",
      ]) {
        assert.ok(names.includes(name), `${name} missing from ${names.join(", ")}`);
      }
    });

    test("puts every file after its imports", () => {
      const seen = new Set<string>();
      for (const file of files) {
        for (const dependency of file.dependency) assert.ok(seen.has(dependency), `${file.name} comes before its import ${dependency}`);
        seen.add(file.name);
      }
    });

    test("is complete: a registry built from it resolves the service, events and state", () => {
      const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, spec.proto));
      assert.equal(registry.getService("sdktest.Counter")?.methods.length, 5);
      for (const name of ["sdktest.domain.Added", "sdktest.domain.Cleared", "sdktest.domain.CounterState"]) {
        assert.ok(registry.getMessage(name), `${name} missing`);
      }
    });

    test("keeps the entity_key option (field 1080 of FieldOptions) on the key fields", () => {
      const counter = files.find((f) => f.name === "sdktest/counter.proto")!;
      const change = counter.messageType.find((m) => m.name === "Change")!;
      const key = change.field.find((f) => f.name === "counter_id")!;
      const option = key.options?.$unknown?.find((u) => u.no === 1080);
      assert.ok(option, "option 1080 on sdktest.Change.counter_id");
      assert.equal(option.wireType, 0, "a varint");
      assert.deepEqual([...option.data], [1], "true");
      const amounts = change.field.find((f) => f.name === "amounts")!;
      assert.equal(amounts.options?.$unknown?.find((u) => u.no === 1080), undefined);
    });
  });

  test("reportError logs the proxy's message as an error", async () => {
    await proxy.reportError("service sdktest.Counter: method Add has no entity key");
    assert.ok(logger.lines.some((l) => l.startsWith("error: ") && l.includes("method Add has no entity key")));
  });
});

describe("a user function with every entity type", () => {
  const logger = memoryLogger();
  let own: UserFunctionServer;
  let driver: ProxyDriver;
  let spec: EntitySpec;
  before(async () => {
    own = await serve({ entities: [counterEntity(), valueCounterEntity({ passivationTimeoutMs: 100 }), actionsService()], port: 0, logger });
    driver = new ProxyDriver(own.port);
    spec = await driver.discover();
  });
  after(async () => {
    driver.close();
    await own.close();
  });

  test("discovery gives each entity its type; an action has no persistence id and no passivation", () => {
    assert.deepEqual(
      spec.entities.map((e) => [e.entityType, e.serviceName, e.persistenceId, e.passivationStrategy?.strategy.value?.timeout]),
      [
        ["cloudstate.eventsourced.EventSourced", "sdktest.Counter", "counter", undefined],
        ["cloudstate.valueentity.ValueEntity", "sdktest.ValueCounter", "value-counter", 100n],
        ["cloudstate.action.ActionProtocol", "sdktest.Actions", "", undefined],
      ],
    );
  });

  test("the descriptor set holds every service's files, once each", () => {
    const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, spec.proto));
    for (const name of ["sdktest.Counter", "sdktest.ValueCounter", "sdktest.Actions"]) assert.ok(registry.getService(name), `${name} missing`);
    assert.ok(registry.getMessage("sdktest.domain.CounterState"));
    const names = fromBinary(FileDescriptorSetSchema, spec.proto).file.map((f) => f.name);
    assert.equal(new Set(names).size, names.length);
  });

  test("serves the three protocols", async () => {
    const es = driver.eventSourced();
    es.init("sdktest.Counter", "all1");
    assert.equal((await es.command(Counter.method.get, { counterId: "all1" }))?.message.case, "reply");
    es.end();
    const value = driver.valueEntity();
    value.init("sdktest.ValueCounter", "all1");
    assert.equal((await value.command(ValueCounter.method.get, { counterId: "all1" }))?.message.case, "reply");
    value.end();
    const response = await driver.actionUnary(Actions.method.unary, { steps: [{ step: { case: "reply", value: "hi" } }] });
    assert.equal(response.response.case, "reply");
  });

  test("warns when the proxy does not support an entity type", async () => {
    await driver.discover({ supportedEntityTypes: ["cloudstate.eventsourced.EventSourced"] });
    assert.ok(logger.lines.some((l) => l === "warn: the proxy does not support cloudstate.valueentity.ValueEntity, needed by sdktest.ValueCounter"));
    assert.ok(logger.lines.some((l) => l === "warn: the proxy does not support cloudstate.action.ActionProtocol, needed by sdktest.Actions"));
  });
});

describe("serve()", () => {
  test("listens on PORT and HOST from the environment when not given", async () => {
    const port = await freePort();
    const saved = { PORT: process.env["PORT"], HOST: process.env["HOST"] };
    process.env["PORT"] = String(port);
    process.env["HOST"] = "127.0.0.1";
    try {
      const own = await serve({ entities: [counterEntity()], logger: memoryLogger() });
      assert.equal(own.port, port);
      assert.equal(own.host, "127.0.0.1");
      const driver = new ProxyDriver(port);
      assert.equal((await driver.discover()).entities[0]!.serviceName, "sdktest.Counter");
      driver.close();
      await own.close();
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });

  test("refuses no entities, and two entities for one service", async () => {
    await assert.rejects(serve({ entities: [], port: 0, logger: memoryLogger() }), /at least one entity/);
    await assert.rejects(serve({ entities: [counterEntity(), counterEntity()], port: 0, logger: memoryLogger() }), /two entities serve sdktest\.Counter/);
  });

  test("reports a port it cannot listen on", async () => {
    grpc.setLogVerbosity(grpc.logVerbosity.NONE); // grpc-js would log the bind failure too
    try {
      await assert.rejects(serve({ entities: [counterEntity()], port: server.port, logger: memoryLogger() }), /cannot listen on 127\.0\.0\.1:\d+/);
    } finally {
      grpc.setLogVerbosity(grpc.logVerbosity.ERROR);
    }
  });
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}
