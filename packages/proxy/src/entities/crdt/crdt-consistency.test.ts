// The CRDT host against a store whose writes the test holds back: when replies leave for each write
// consistency, how writes coalesce, and another writer of the stored state (another node's replica)
// being joined in and pushed to the user function.
import assert from "node:assert/strict";
import { after, before, beforeEach, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { CrdtWriteConsistency } from "@cloudstate-ts/protocol";
import { buildModel, type MethodModel, type ServiceModel } from "../../discovery/service-model.js";
import { Code, ProxyError } from "../../errors.js";
import { MemoryStore } from "../../store/memory/memory-store.js";
import type { KeyValueStore, ValueWrite } from "../../store/store.js";
import { silentLogger } from "../../telemetry/logger.js";
import { UserFunctionConnection } from "../../user-function/connection.js";
import type { CommandOutcome, CommandRequest } from "../command.js";
import { deltaOf, singleNode } from "./crdt.js";
import { CrdtService } from "./crdt-service.js";
import { decodeState, encodeState } from "./crdt-state.js";
import type { GCounter } from "./gcounter.js";
import {
  decodeResponse,
  encodeRequest,
  entitySpec,
  PERSISTENCE_ID,
  SERVICE,
  startRawCrdtUserFunction,
  type RawCrdtUserFunction,
  type Request,
} from "./raw-crdt-user-function.js";

/** store.crdts with a gate: while held, writes wait; the log says when each write and reply happened. */
class GatedCrdtStore implements KeyValueStore {
  readonly log: string[] = [];
  writes = 0;
  private held = false;
  private failure: Error | undefined;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly inner: KeyValueStore) {}

  hold(): void {
    this.held = true;
  }

  failNext(error: Error): void {
    this.failure = error;
  }

  release(): void {
    this.held = false;
    for (const go of this.waiting.splice(0)) go();
  }

  get(persistenceId: string, entityId: string) {
    return this.inner.get(persistenceId, entityId);
  }

  async write(write: ValueWrite): Promise<number> {
    this.writes++;
    if (this.held) await new Promise<void>((resolve) => this.waiting.push(resolve));
    const failure = this.failure;
    this.failure = undefined;
    if (failure) throw failure;
    const version = await this.inner.write(write);
    this.log.push("write done");
    return version;
  }

  entityIds(persistenceId: string) {
    return this.inner.entityIds(persistenceId);
  }
}

async function eventually(check: () => boolean | Promise<boolean>, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for: ${what}`);
    await sleep(5);
  }
}

const inc = (key: string, amount: number, consistency: CrdtWriteConsistency): Request => ({ key, op: "inc", amount, consistency });

describe("CRDT write consistency and other writers", () => {
  let uf: RawCrdtUserFunction;
  let connection: UserFunctionConnection;
  let service: ServiceModel;
  let method: MethodModel;
  let memory: MemoryStore;
  let store: GatedCrdtStore;
  let crdts: CrdtService;
  const reported: string[] = [];
  const detached: CommandOutcome[] = [];

  before(async () => {
    uf = await startRawCrdtUserFunction();
    connection = new UserFunctionConnection({ host: "127.0.0.1", port: uf.port }, 4 * 1024 * 1024);
    const model = buildModel(entitySpec(), { supportedKinds: ["crdt"], defaultPassivationTimeoutMs: 30_000, checkProtocolVersion: true });
    service = model.services.get(SERVICE)!;
    method = service.methods.get("Do")!;
  });
  beforeEach(async () => {
    // A failed test may have left writes held.
    store?.release();
    await crdts?.shutdown();
    memory = new MemoryStore();
    store = new GatedCrdtStore(memory.crdts);
    crdts = new CrdtService({
      service,
      crdts: store,
      replica: singleNode("node-a"),
      connection,
      commandTimeoutMs: 5000,
      log: silentLogger,
      reportError: (m) => reported.push(m),
      runDetached: async (outcome) => void detached.push(outcome),
    });
  });
  after(async () => {
    await crdts.shutdown();
    connection.close();
    await uf.close();
  });

  const call = (r: Request): Promise<bigint> => {
    const request: CommandRequest = { service, method, entityId: r.key, payload: encodeRequest(r) };
    return crdts.handle(request).then((o) => {
      store.log.push("reply");
      assert.equal(o.action?.action.case, "reply");
      return decodeResponse(o.action.action.value.payload!.value).value;
    });
  };

  /** Another node's replica: reads the stored state, changes it as node-b, writes it back. */
  async function otherNodeIncrements(entityId: string, increment: bigint): Promise<void> {
    const stored = await memory.crdts.get(PERSISTENCE_ID, entityId);
    const crdt = decodeState(stored.value!);
    crdt.apply(deltaOf({ case: "gcounter", value: { increment } }), singleNode("node-b"));
    await memory.crdts.write({ persistenceId: PERSISTENCE_ID, entityId, expectedVersion: stored.version, value: encodeState(crdt) });
  }

  test("LOCAL replies as soon as the change is applied, before the write", async () => {
    store.hold();
    assert.equal(await call(inc("local", 1, CrdtWriteConsistency.LOCAL)), 1n);
    assert.deepEqual(store.log, ["reply"]);
    assert.equal(store.writes, 1, "the write has started");
    store.release();
    await eventually(() => store.log.length === 2, "the write finishes");
    assert.deepEqual(store.log, ["reply", "write done"]);
  });

  for (const consistency of [CrdtWriteConsistency.MAJORITY, CrdtWriteConsistency.ALL]) {
    test(`${CrdtWriteConsistency[consistency]} replies only once the write is durable`, async () => {
      store.hold();
      const reply = call(inc("majority", 1, consistency));
      await eventually(() => store.writes === 1, "the write starts");
      await sleep(100);
      assert.deepEqual(store.log, [], "no reply while the write is held");
      store.release();
      assert.equal(await reply, 1n);
      assert.deepEqual(store.log, ["write done", "reply"]);
    });
  }

  test("changes made while a write is in flight are folded into the next write", async () => {
    store.hold();
    const first = call(inc("coalesced", 1, CrdtWriteConsistency.MAJORITY));
    await eventually(() => store.writes === 1, "the first write starts");
    const rest = Array.from({ length: 20 }, () => call(inc("coalesced", 1, CrdtWriteConsistency.MAJORITY)));
    await sleep(100);
    assert.equal(store.writes, 1, "one write in flight at a time");
    store.release();
    await Promise.all([first, ...rest]);
    assert.equal(store.writes, 2, "the 20 later changes share one write");
    const stored = await memory.crdts.get(PERSISTENCE_ID, "coalesced");
    assert.equal((decodeState(stored.value!) as GCounter).value(), 21n);
  });

  test("a failed write fails the replies waiting for it, and is retried", async () => {
    store.failNext(new Error("disk full"));
    await assert.rejects(
      call(inc("unlucky", 1, CrdtWriteConsistency.MAJORITY)),
      (e: ProxyError) => e.code === Code.UNAVAILABLE && /could not persist the state of CRDT entity unlucky: disk full/.test(e.message),
    );
    // The change stays applied on this replica and reaches the store on the retry.
    await eventually(async () => (await memory.crdts.get(PERSISTENCE_ID, "unlucky")).value !== undefined, "the retried write");
    assert.equal(await call({ key: "unlucky" }), 1n);
  });

  test("a store that cannot be read fails the commands waiting for the entity to load", async () => {
    const closed = new MemoryStore();
    await closed.close();
    const broken = new CrdtService({
      service,
      crdts: closed.crdts,
      replica: singleNode("node-a"),
      connection,
      commandTimeoutMs: 5000,
      log: silentLogger,
      reportError: (m) => reported.push(m),
      runDetached: async () => undefined,
    });
    await assert.rejects(
      broken.handle({ service, method, entityId: "x", payload: encodeRequest(inc("x", 1, CrdtWriteConsistency.MAJORITY)) }),
      (e: ProxyError) => e.code === Code.UNAVAILABLE && /could not load CRDT entity x/.test(e.message),
    );
    assert.equal(broken.activeEntities(), 0);
    await broken.shutdown();
  });

  test("a stored state that cannot be decoded is DATA_LOSS", async () => {
    await memory.crdts.write({ persistenceId: PERSISTENCE_ID, entityId: "corrupt", expectedVersion: 0, value: { typeUrl: "cloudstate-ts/crdt-state/v1", bytes: new Uint8Array([1, 2]) } });
    await assert.rejects(call({ key: "corrupt" }), (e: ProxyError) => e.code === Code.DATA_LOSS && /not valid JSON/.test(e.message));
  });

  test("another node's change is joined in and pushed to the user function as a delta, never echoing its own", async () => {
    assert.equal(await call(inc("shared", 1, CrdtWriteConsistency.MAJORITY)), 1n);
    await otherNodeIncrements("shared", 10n);
    // The next write conflicts, joins the stored state, and writes the join.
    assert.equal(await call(inc("shared", 1, CrdtWriteConsistency.MAJORITY)), 2n);
    await eventually(() => uf.streamsOf("shared")[0]!.deltas.length === 1, "the delta is pushed");
    assert.deepEqual(uf.streamsOf("shared")[0]!.deltas, [deltaOf({ case: "gcounter", value: { increment: 10n } })]);
    assert.equal(await call({ key: "shared" }), 12n);
    const stored = await memory.crdts.get(PERSISTENCE_ID, "shared");
    assert.equal((decodeState(stored.value!) as GCounter).value(), 12n);
  });

  test("a pushed change waits while the user function has a command outstanding", async () => {
    await call(inc("busy", 1, CrdtWriteConsistency.MAJORITY));
    await otherNodeIncrements("busy", 10n);
    const slow = call({ key: "busy", op: "slow", amount: 300 });
    await sleep(20);
    await call(inc("busy", 1, CrdtWriteConsistency.MAJORITY));
    assert.equal((await memory.crdts.get(PERSISTENCE_ID, "busy")).version, 3, "the join is stored");
    assert.deepEqual(uf.streamsOf("busy")[0]!.deltas, [], "nothing pushed while a command is outstanding");
    await slow;
    await eventually(() => uf.streamsOf("busy")[0]!.deltas.length === 1, "pushed once the command is answered");
    assert.equal(await call({ key: "busy" }), 12n);
  });

  test("a delete stored by another node wins: the user function gets CrdtStreamIn.delete", async () => {
    await call(inc("gone", 1, CrdtWriteConsistency.MAJORITY));
    await memory.crdts.write({ persistenceId: PERSISTENCE_ID, entityId: "gone", expectedVersion: 1, value: undefined });
    await assert.rejects(call(inc("gone", 1, CrdtWriteConsistency.MAJORITY)), (e: ProxyError) => e.code === Code.NOT_FOUND);
    await eventually(() => uf.streamsOf("gone")[0]!.ended, "the stream is completed");
    assert.equal(uf.streamsOf("gone")[0]!.deleted, true);
    await assert.rejects(call({ key: "gone" }), (e: ProxyError) => e.code === Code.NOT_FOUND && /was deleted/.test(e.message));
  });

  test("a graceful shutdown flushes LOCAL changes that are not yet stored", async () => {
    store.hold();
    await call(inc("flushed", 7, CrdtWriteConsistency.LOCAL));
    const shutdown = crdts.shutdown();
    await sleep(50);
    store.release();
    await shutdown;
    const stored = await memory.crdts.get(PERSISTENCE_ID, "flushed");
    assert.equal((decodeState(stored.value!) as GCounter).value(), 7n);
  });
});
