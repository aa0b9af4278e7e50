// Direction (b), durability: the suite's own proxy on a SQLite store in a temporary directory is
// stopped and started again; what clients were told is stored must still be there, and what failed
// must not be. (Skipped against an external proxy, which the suite cannot restart.)
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { status } from "@grpc/grpc-js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import * as es from "../gen/cloudstate/tck/model/eventsourced_pb.js";
import * as value from "../gen/cloudstate/tck/model/valueentity_pb.js";
import { eventually, rejectsWith } from "./expectations.js";
import { NEEDS_OUR_PROXY, startProxyUnderTest, type ProxyUnderTest } from "./proxy-under-test.js";

const emit = (v: string): MessageInitShape<typeof es.RequestActionSchema> => ({ action: { case: "emit", value: { value: v } } });
const esEffect = (id: string): MessageInitShape<typeof es.RequestActionSchema> => ({ action: { case: "effect", value: { id, synchronous: true } } });
const esFail = (message: string): MessageInitShape<typeof es.RequestActionSchema> => ({ action: { case: "fail", value: { message } } });
const update = (v: string): MessageInitShape<typeof value.RequestActionSchema> => ({ action: { case: "update", value: { value: v } } });
const del: MessageInitShape<typeof value.RequestActionSchema> = { action: { case: "delete", value: {} } };
const valueFail = (message: string): MessageInitShape<typeof value.RequestActionSchema> => ({ action: { case: "fail", value: { message } } });

describe("direction (b) — state survives a proxy restart (SQLite)", { skip: NEEDS_OUR_PROXY }, () => {
  let p: ProxyUnderTest;
  let dir: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "tck-"));
    p = await startProxyUnderTest({ store: `sqlite:${join(dir, "state.db")}` });
  });
  after(async () => {
    await p?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const process = async (id: string, ...actions: MessageInitShape<typeof es.RequestActionSchema>[]) =>
    (await p.client.unary(es.EventSourcedTckModel.method.process, { id, actions })).message;
  const processValue = async (id: string, ...actions: MessageInitShape<typeof value.RequestActionSchema>[]) =>
    (await p.client.unary(value.ValueEntityTckModel.method.process, { id, actions })).message;
  const configured = async (id: string, ...actions: MessageInitShape<typeof es.RequestActionSchema>[]) =>
    (await p.client.unary(es.EventSourcedConfigured.method.call, { id, actions })).message;

  test("event-sourced and value entity state survives a proxy restart; failed commands left nothing", async () => {
    const [events, snapshotted, kept, deleted, target, passivated] = ["events", "snapshot", "kept", "deleted", "effect-target", "passivated"].map(p.id);
    await process(events!, emit("A"), emit("B"));
    await process(snapshotted!, ...["A", "B", "C", "D", "E", "F", "G"].map(emit)); // a snapshot, then later events
    await process(snapshotted!, emit("H"));
    await rejectsWith(process(snapshotted!, emit("X"), esFail("not stored")), status.UNKNOWN, "not stored", "event-sourced: a failing command");
    await processValue(kept!, update("kept"));
    await rejectsWith(processValue(kept!, update("lost"), valueFail("not stored")), status.UNKNOWN, "not stored", "value entity: a failing command");
    await processValue(deleted!, update("gone"));
    await processValue(deleted!, del);
    await process(p.id("effect-source"), esEffect(target!));
    await configured(passivated!, emit("P"));
    const ours = p.ours!;
    const active = ours.activeEntities();
    await eventually("event-sourced: the configured entity is passivated before the restart", () => assert.ok(ours.activeEntities() < active), 2_000);

    await p.restart();

    assert.equal(await process(events!), "AB", "event-sourced: the events are replayed after a restart");
    assert.equal(await process(snapshotted!), "ABCDEFGH", "event-sourced: snapshot + later events after a restart, without the failed command's");
    assert.equal(await processValue(kept!), "kept", "value entity: the stored state after a restart, without the failed update");
    assert.equal(await processValue(deleted!), "", "value entity: a deleted state stays deleted after a restart");
    assert.equal((await p.client.unary(es.EventSourcedTwo.method.call, { id: target! })).message, "sync-effect", "event-sourced: a side effect's state change survives a restart");
    assert.equal(await configured(passivated!, emit("Q")), "PQ", "event-sourced: a passivated entity's events survive a restart");
  });
});
