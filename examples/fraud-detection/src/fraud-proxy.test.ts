// Fraud detection end to end: the user function served in-process, an in-process proxy on a SQLite
// file in a temporary directory, and a scripted stream of card transactions for five accounts sent
// through the proxy over gRPC. The proxy journals them, delivers the account event log to the
// monitor, and publishes its alerts to the "fraud-alerts" topic, read here over HTTP (Server-Sent
// Events, and the JSON page). The bar: exactly the alerts the script plants, no more, no fewer.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fromBinary } from "@bufbuild/protobuf";
import Database from "better-sqlite3";
import { serve, type UserFunctionServer } from "@cloudstate-ts/sdk";
import { testkit } from "@cloudstate-ts/sdk/testing";
import type { RunningProxy } from "../../../packages/proxy/src/index.js";
import { eventually, GrpcClient } from "../../../tests/support/grpc-client.js";
import { startTestProxy } from "../../../tests/support/proxy.js";
import { account } from "./account.js";
import { Account, FraudAlertSchema, FraudMonitor } from "./gen/com/example/fraud/account_pb.js";
import { fraudMonitor } from "./monitor.js";

const quiet = { info() {}, warn() {}, error() {} };
const TOPIC = "fraud-alerts";
const TRANSACTIONS = 30;
const T0 = Date.UTC(2026, 0, 5, 9, 0, 0);
const FIVE_MINUTES = 5 * 60_000;

// ---- The script -------------------------------------------------------------------------------
//
// Five accounts of 30 transactions each. Normal amounts stay within ±10% of the account's base
// (so far inside the amount rule's 4 × max(stddev, 10% of the mean, 1 €) band) and normal
// transactions are 5 minutes apart (never 6 within 60 s). Planted:
//   acct-1  #10 and #22: 25× and 40× the base                       → 2 × amount
//           (#10 is also sent twice: the account records it once)
//   acct-2  #2: 24× the base, but among the first five transactions → nothing (no baseline yet; it
//           is folded in, which widens the band so much that nothing later alerts)
//   acct-3  #20–#27 five seconds apart: #25 is the 6th within 60 s  → 1 × burst (#26, #27: no)
//   acct-4  #10–#16 three seconds apart, #15 (the 6th) also 30× the base
//                                                                    → 1 × amount (it wins)
//   acct-5  #8: 1 cent; #20: 13× the base                           → 2 × amount
interface Tx {
  accountId: string;
  transactionId: string;
  amountCents: number;
  timestampMs: number;
}

const BASE: Record<string, number> = { "acct-1": 2_000, "acct-2": 5_000, "acct-3": 12_000, "acct-4": 800, "acct-5": 4_500 };
const PLANTED_AMOUNTS: Record<string, Record<number, number>> = {
  "acct-1": { 10: 50_000, 22: 80_000 },
  "acct-2": { 2: 120_000 },
  "acct-4": { 15: 24_000 },
  "acct-5": { 8: 1, 20: 60_000 },
};
/** The gap before transaction i (ms): 5 minutes, except within the planted bursts. */
function gapBefore(accountId: string, i: number): number {
  if (accountId === "acct-3" && i >= 21 && i <= 27) return 5_000;
  if (accountId === "acct-4" && i >= 11 && i <= 16) return 3_000;
  return FIVE_MINUTES;
}

const txId = (accountId: string, i: number) => `${accountId}-tx-${String(i).padStart(2, "0")}`;

function script(accountId: string): Tx[] {
  const base = BASE[accountId]!;
  const out: Tx[] = [];
  let at = T0 + Number(accountId.slice(-1)) * 1_000;
  for (let i = 0; i < TRANSACTIONS; i++) {
    at += gapBefore(accountId, i);
    // -5 … +5 fiftieths of the base: within ±10%.
    const normal = base + (((i * 7) % 11) - 5) * (base / 50);
    out.push({ accountId, transactionId: txId(accountId, i), amountCents: PLANTED_AMOUNTS[accountId]?.[i] ?? normal, timestampMs: at });
  }
  return out;
}

const ACCOUNTS = Object.keys(BASE);
const SCRIPT = new Map(ACCOUNTS.map((a) => [a, script(a)]));

/** The alerts the script plants, listed by hand: "account/transaction/reason". */
const EXPECTED = [
  "acct-1/acct-1-tx-10/amount",
  "acct-1/acct-1-tx-22/amount",
  "acct-3/acct-3-tx-25/burst",
  "acct-4/acct-4-tx-15/amount",
  "acct-5/acct-5-tx-08/amount",
  "acct-5/acct-5-tx-20/amount",
].sort();
/** Transactions whose amount is anomalous: left out of the monitor's statistics. */
const AMOUNT_ANOMALIES = new Set(EXPECTED.filter((e) => e.endsWith("/amount")).map((e) => e.split("/")[1]));

// ---- Reading the topic over HTTP -------------------------------------------------------------

interface StructuredEvent {
  specversion: string;
  id: string;
  source: string;
  type: string;
  subject?: string;
  time?: string;
  datacontenttype: string;
  data_base64?: string;
}

/** Follows a topic's Server-Sent Events from the start; `events` fills as they arrive. */
function followTopic(port: number, topic: string): { events: (StructuredEvent & { offset: string })[]; ended: Promise<void>; close(): void } {
  const aborter = new AbortController();
  const events: (StructuredEvent & { offset: string })[] = [];
  const ended = (async () => {
    const res = await fetch(`http://127.0.0.1:${port}/eventing/topics/${topic}`, { headers: { accept: "text/event-stream" }, signal: aborter.signal });
    if (res.status !== 200) throw new Error(`GET the topic: ${res.status} ${await res.text()}`);
    assert.match(res.headers.get("content-type") ?? "", /^text\/event-stream/);
    const decoder = new TextDecoder();
    let buffer = "";
    for await (const chunk of res.body!) {
      buffer += decoder.decode(chunk as Uint8Array, { stream: true });
      let end: number;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let id: string | undefined;
        const data: string[] = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("id: ")) id = line.slice(4);
          else if (line.startsWith("data: ")) data.push(line.slice(6));
        }
        if (data.length > 0) events.push({ ...(JSON.parse(data.join("\n")) as StructuredEvent), offset: id ?? "" });
      }
    }
  })().catch((e: unknown) => {
    if (!aborter.signal.aborted) throw e;
  });
  return { events, ended, close: () => aborter.abort() };
}

/** The whole topic through the JSON pages. */
async function readTopicPages(port: number, topic: string): Promise<StructuredEvent[]> {
  const out: StructuredEvent[] = [];
  let after = "0";
  for (;;) {
    const res = await fetch(`http://127.0.0.1:${port}/eventing/topics/${topic}?after=${after}&limit=100`);
    if (res.status !== 200) throw new Error(`GET the topic page: ${res.status} ${await res.text()}`);
    const page = (await res.json()) as { topic: string; events: StructuredEvent[]; next: string };
    assert.equal(page.topic, topic);
    out.push(...page.events);
    if (page.events.length === 0) return out;
    after = page.next;
  }
}

function decodeAlert(event: StructuredEvent) {
  assert.equal(event.specversion, "1.0");
  assert.equal(event.type, "com.example.fraud.FraudAlert");
  assert.equal(event.datacontenttype, "application/protobuf");
  assert.ok(event.data_base64 !== undefined, "protobuf data comes as data_base64");
  const alert = fromBinary(FraudAlertSchema, Buffer.from(event.data_base64, "base64"));
  assert.equal(event.subject, alert.accountId, "the subject is the account");
  return alert;
}

const key = (a: { accountId: string; transactionId: string; reason: string }) => `${a.accountId}/${a.transactionId}/${a.reason}`;

function sampleStats(values: number[]) {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  return { mean, stddev: Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (values.length - 1)) };
}

// ---- The tests -------------------------------------------------------------------------------

test("the script's hand-listed alerts are what the monitor decides in-process", async () => {
  const found: string[] = [];
  for (const [accountId, txs] of SCRIPT) {
    const t = testkit(fraudMonitor, { entityId: accountId, logger: quiet });
    for (const tx of txs) {
      const { reply } = await t.deliver("observe", { ...tx, amountCents: BigInt(tx.amountCents), timestampMs: BigInt(tx.timestampMs) });
      if (reply) found.push(key(reply));
    }
  }
  assert.deepEqual(found.sort(), EXPECTED);
});

describe("fraud detection through the proxy, on SQLite", () => {
  const dir = mkdtempSync(join(tmpdir(), "cloudstate-fraud-"));
  const database = join(dir, "fraud.db");
  // Relaxed durability: the proxy stops gracefully here, and an fsync per write only slows the test.
  const settings = { store: `sqlite:${database}`, durability: "relaxed", eventingCommitIntervalMs: 50, eventingPollIntervalMs: 100 } as const;
  let server: UserFunctionServer;
  let proxy: RunningProxy;
  let client: GrpcClient;

  before(async () => {
    server = await serve({ entities: [account, fraudMonitor], port: 0, host: "127.0.0.1", logger: quiet });
    proxy = await startTestProxy(server.port, settings);
    client = new GrpcClient(proxy.port);
  });

  after(async () => {
    client?.close();
    await proxy?.stop();
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test("a scripted stream of 150 transactions raises exactly the planted alerts", async () => {
    const topic = followTopic(proxy.port, TOPIC);
    try {
      // The accounts at once (their events interleave in the event log), each in order.
      await Promise.all(
        ACCOUNTS.map(async (accountId) => {
          for (const tx of SCRIPT.get(accountId)!) {
            const input = { ...tx, amountCents: BigInt(tx.amountCents), timestampMs: BigInt(tx.timestampMs), merchant: "Shop" };
            await client.unary(Account.method.recordTransaction, input);
            // A client retry of a planted anomaly: recorded once.
            if (tx.transactionId === "acct-1-tx-10") await client.unary(Account.method.recordTransaction, input);
          }
        }),
      );
      const summary = await client.unary(Account.method.getAccount, { accountId: "acct-1" });
      const acct1 = SCRIPT.get("acct-1")!;
      assert.deepEqual(
        [summary.transactions, summary.totalCents],
        [BigInt(TRANSACTIONS), BigInt(acct1.reduce((a, t) => a + t.amountCents, 0))],
        "the retry was recorded once",
      );

      const received = () => topic.events.map((e) => key(decodeAlert(e))).sort();
      await eventually(() => topic.events.length >= EXPECTED.length, () => `${EXPECTED.length} alerts, got ${JSON.stringify(received())}`, 20_000);

      // Every account's monitor has seen all its transactions (anomalous amounts are not counted).
      for (const accountId of ACCOUNTS) {
        const normal = SCRIPT.get(accountId)!.filter((t) => !AMOUNT_ANOMALIES.has(t.transactionId)).length;
        await eventually(
          async () => (await client.unary(FraudMonitor.method.getStatistics, { accountId })).transactions === BigInt(normal),
          () => `the monitor of ${accountId} to count ${normal} normal transactions`,
          20_000,
        );
      }
      // Anything extra would have come by now (many commit and poll intervals later).
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      assert.deepEqual(received(), EXPECTED, "over SSE: exactly the planted alerts");
      assert.equal(new Set(topic.events.map((e) => e.offset)).size, topic.events.length, "distinct SSE ids");
      const pages = await readTopicPages(proxy.port, TOPIC);
      assert.deepEqual(pages.map((e) => key(decodeAlert(e))).sort(), EXPECTED, "the JSON pages: exactly the planted alerts");

      // An alert's details: acct-1 #10, against the statistics of #0–#9.
      const first = pages.map(decodeAlert).find((a) => a.transactionId === "acct-1-tx-10")!;
      const before10 = sampleStats(acct1.slice(0, 10).map((t) => t.amountCents));
      assert.equal(first.amountCents, 50_000n);
      assert.ok(Math.abs(first.meanCents - before10.mean) < 1e-6, `mean ${first.meanCents}, expected ${before10.mean}`);
      assert.ok(Math.abs(first.stddevCents - before10.stddev) < 1e-6, `stddev ${first.stddevCents}, expected ${before10.stddev}`);
    } finally {
      topic.close();
      await topic.ended;
    }
  });

  test("GetStatistics over HTTP/JSON: the normal transactions of acct-1, and its alerts", async () => {
    const res = await fetch(`http://127.0.0.1:${proxy.port}/accounts/acct-1/statistics`);
    if (res.status !== 200) throw new Error(`GET /accounts/acct-1/statistics: ${res.status} ${await res.text()}`);
    const body = (await res.json()) as { accountId: string; transactions: string; meanCents: number; stddevCents: number; alerts: string };
    const normal = SCRIPT.get("acct-1")!.filter((t) => !AMOUNT_ANOMALIES.has(t.transactionId)).map((t) => t.amountCents);
    const expected = sampleStats(normal);
    assert.deepEqual([body.accountId, body.transactions, body.alerts], ["acct-1", String(TRANSACTIONS - 2), "2"]);
    assert.ok(Math.abs(body.meanCents - expected.mean) < 1e-6, `mean ${body.meanCents}, expected ${expected.mean}`);
    assert.ok(Math.abs(body.stddevCents - expected.stddev) < 1e-6, `stddev ${body.stddevCents}, expected ${expected.stddev}`);
  });

  // At least once: a proxy that crashed before committing its position delivers the tail again.
  // Here the whole log: the monitor's committed position is set back to 0 between two proxies.
  test("the whole account log delivered again: the same alerts, the statistics unchanged", async () => {
    const statistics = async () => Promise.all(ACCOUNTS.map((accountId) => client.unary(FraudMonitor.method.getStatistics, { accountId })));
    const before = await statistics();
    client.close();
    await proxy.stop();
    const db = new Database(database);
    try {
      const rewound = db.prepare(`UPDATE consumer_offsets SET "offset" = 0, owner = NULL, lease_expires = NULL WHERE source = 'event-log:account'`).run();
      assert.equal(rewound.changes, 1, "the monitor's position in the account event log");
    } finally {
      db.close();
    }
    proxy = await startTestProxy(server.port, { ...settings, metricsPort: 0 });
    client = new GrpcClient(proxy.port);

    // One more transaction, after the redelivered ones: an anomaly of acct-1.
    await client.unary(Account.method.recordTransaction, {
      accountId: "acct-1",
      transactionId: "acct-1-tx-30",
      amountCents: 60_000n,
      timestampMs: BigInt(SCRIPT.get("acct-1")!.at(-1)!.timestampMs + FIVE_MINUTES),
    });
    const head = await proxy.store.journal.eventLogHead("account");
    assert.equal(head, ACCOUNTS.length * TRANSACTIONS + 1);
    await eventually(
      async () => (await proxy.store.offsets.list()).some((p) => p.source === "event-log:account" && p.offset >= head),
      () => `the monitor to commit offset ${head} of the account log`,
      20_000,
    );

    const metrics = await (await fetch(`http://127.0.0.1:${proxy.metricsPort}/metrics`)).text();
    const counter = (name: string, labels: string) => Number(new RegExp(`^${name}\\{${labels}\\} (\\d+)$`, "m").exec(metrics)?.[1] ?? "0");
    assert.equal(
      counter("cloudstate_eventing_messages_total", 'group="com.example.fraud.FraudMonitor",source="event-log:account",outcome="delivered"'),
      head,
      "every event of the log was delivered again",
    );
    assert.equal(counter("cloudstate_eventing_published_total", 'topic="fraud-alerts"'), EXPECTED.length + 1, "a redelivered alert is answered (published) again");

    // The topic keeps one message per consumed event: the redelivered alerts are the same messages.
    const pages = await readTopicPages(proxy.port, TOPIC);
    assert.deepEqual(pages.map((e) => key(decodeAlert(e))).sort(), [...EXPECTED, "acct-1/acct-1-tx-30/amount"].sort());

    const after = await statistics();
    assert.deepEqual(
      after.map((s) => [s.accountId, s.transactions, s.meanCents, s.stddevCents, s.alerts]),
      before.map((s) => [s.accountId, s.transactions, s.meanCents, s.stddevCents, s.alerts + (s.accountId === "acct-1" ? 1n : 0n)]),
      "nothing counted twice",
    );
  });
});
