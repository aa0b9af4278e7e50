// Direction (a), discovery: the user function answers the proxy's discover() with the model's
// entities, protocol 0.2 and a descriptor set that a proxy can resolve on its own.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import type { EntitySpec } from "@cloudstate-ts/sdk/testing";
import { startUserFunction, type UserFunctionUnderTest } from "./user-function.js";

const EVENT_SOURCED = "cloudstate.eventsourced.EventSourced";
const VALUE_ENTITY = "cloudstate.valueentity.ValueEntity";
const ACTION = "cloudstate.action.ActionProtocol";
const CRDT = "cloudstate.crdt.Crdt";

/** service → [entity type, persistence id, passivation timeout (ms) or undefined] */
const EXPECTED: Record<string, [string, string | undefined, number | undefined]> = {
  "cloudstate.tck.model.eventsourced.EventSourcedTckModel": [EVENT_SOURCED, "event-sourced-tck-model", undefined],
  "cloudstate.tck.model.eventsourced.EventSourcedTwo": [EVENT_SOURCED, "event-sourced-tck-model-2", undefined],
  "cloudstate.tck.model.eventsourced.EventSourcedConfigured": [EVENT_SOURCED, "event-sourced-configured", 100],
  "cloudstate.tck.model.valueentity.ValueEntityTckModel": [VALUE_ENTITY, "value-entity-tck-model", undefined],
  "cloudstate.tck.model.valueentity.ValueEntityTwo": [VALUE_ENTITY, "value-entity-tck-model-2", undefined],
  "cloudstate.tck.model.valueentity.ValueEntityConfigured": [VALUE_ENTITY, "value-entity-configured", 100],
  "cloudstate.tck.model.crdt.CrdtTckModel": [CRDT, "crdt-tck-model", undefined],
  "cloudstate.tck.model.crdt.CrdtTwo": [CRDT, "crdt-tck-model-2", undefined],
  "cloudstate.tck.model.crdt.CrdtConfigured": [CRDT, "crdt-configured", 100],
  "cloudstate.tck.model.eventing.EventSourcedEventingSource": [EVENT_SOURCED, "eventing-tck-source", undefined],
  "cloudstate.tck.model.eventing.EventingTwo": [VALUE_ENTITY, "eventing-tck-two", undefined],
  // Actions store nothing: their persistence id is not checked.
  "cloudstate.tck.model.action.ActionTckModel": [ACTION, undefined, undefined],
  "cloudstate.tck.model.action.ActionTwo": [ACTION, undefined, undefined],
  "cloudstate.tck.model.eventing.EventingTckModel": [ACTION, undefined, undefined],
};

const ENTITY_KEY = 1080;
const LEGACY_ENTITY_KEY = 50002;

describe("direction (a) — discovery", () => {
  let uf: UserFunctionUnderTest;
  let spec: EntitySpec;

  before(async () => {
    uf = await startUserFunction();
    spec = await uf.driver.discover();
  });
  after(() => uf.close());

  test("discovery: the user function speaks protocol 0.2", () => {
    assert.ok(spec.serviceInfo, "discovery: the EntitySpec has no service_info");
    assert.equal(spec.serviceInfo.protocolMajorVersion, 0, "discovery: service_info.protocol_major_version");
    assert.equal(spec.serviceInfo.protocolMinorVersion, 2, "discovery: service_info.protocol_minor_version");
  });

  test("discovery: every model service is listed with its entity type and persistence id", () => {
    const listed = new Map(spec.entities.map((e) => [e.serviceName, e]));
    for (const [service, [entityType, persistenceId]] of Object.entries(EXPECTED)) {
      const entity = listed.get(service);
      assert.ok(entity, `discovery: ${service} is not listed (listed: ${[...listed.keys()].join(", ")})`);
      assert.equal(entity.entityType, entityType, `discovery: the entity type of ${service}`);
      if (persistenceId !== undefined) assert.equal(entity.persistenceId, persistenceId, `discovery: the persistence id of ${service}`);
    }
  });

  test("discovery: the configured entities ask for a 100 ms passivation timeout", () => {
    for (const [service, [, , timeout]] of Object.entries(EXPECTED)) {
      if (timeout === undefined) continue;
      const strategy = spec.entities.find((e) => e.serviceName === service)?.passivationStrategy?.strategy;
      assert.equal(strategy?.case, "timeout", `discovery: ${service} has no timeout passivation strategy`);
      assert.equal(strategy.value.timeout, BigInt(timeout), `discovery: the passivation timeout of ${service} (ms)`);
    }
  });

  test("discovery: the descriptor set is complete (every import included) and describes every listed service", () => {
    const set = fromBinary(FileDescriptorSetSchema, spec.proto);
    // createFileRegistry throws when a file's import is missing from the set.
    const registry = createFileRegistry(set);
    for (const entity of spec.entities) {
      const service = registry.getService(entity.serviceName);
      assert.ok(service, `discovery: the descriptor set does not describe ${entity.serviceName}`);
      for (const method of service.methods) {
        assert.ok(registry.getMessage(method.input.typeName), `discovery: ${method.input.typeName} (input of ${service.typeName}.${method.name}) is missing`);
        assert.ok(registry.getMessage(method.output.typeName), `discovery: ${method.output.typeName} (output of ${service.typeName}.${method.name}) is missing`);
      }
    }
  });

  test("discovery: the entities' request messages keep the entity_key option on their id field", () => {
    const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, spec.proto));
    for (const typeName of ["cloudstate.tck.model.eventsourced.Request", "cloudstate.tck.model.valueentity.Request", "cloudstate.tck.model.eventing.EmitRequest", "cloudstate.tck.model.eventing.RecordRequest"]) {
      const field = registry.getMessage(typeName)?.field["id"];
      assert.ok(field, `discovery: ${typeName}.id is missing from the descriptor set`);
      const options = field.proto.options;
      const unknown = (options?.$unknown ?? []).map((u) => u.no);
      assert.ok(
        unknown.includes(ENTITY_KEY) || unknown.includes(LEGACY_ENTITY_KEY),
        `discovery: ${typeName}.id does not carry (cloudstate.entity_key) = true (option ${ENTITY_KEY} or ${LEGACY_ENTITY_KEY})`,
      );
    }
  });

  test("discovery: the user function accepts reportError", async () => {
    await uf.driver.reportError("tck: a discovery error reported by the proxy");
  });
});
