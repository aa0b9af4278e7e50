// The account with the in-process testkit: validation, the TransactionRecorded it journals, and
// retries of a transaction already recorded.
import assert from "node:assert/strict";
import { test } from "node:test";
import { CommandFailure } from "@cloudstate-ts/sdk";
import { testkit } from "@cloudstate-ts/sdk/testing";
import { account, RECENT_TRANSACTION_IDS } from "./account.js";
import type { TransactionRecorded } from "./gen/com/example/fraud/domain/domain_pb.js";

const quiet = { info() {}, warn() {}, error() {} };
const open = (accountId = "acct-1") => testkit(account, { entityId: accountId, logger: quiet });
const tx = (transactionId: string, amountCents: bigint, timestampMs = 1_700_000_000_000n) => ({
  accountId: "acct-1",
  transactionId,
  amountCents,
  timestampMs,
  merchant: "Corner shop",
});

test("a transaction is journaled as TransactionRecorded of the account, and GetAccount sums them up", async () => {
  const t = open();
  assert.equal((await t.call("recordTransaction", tx("t1", 1_250n))).$typeName, "google.protobuf.Empty");
  await t.call("recordTransaction", tx("t2", 750n, 1_700_000_060_000n));
  assert.deepEqual(
    t.events.map((e) => {
      const { accountId, transactionId, amountCents, timestampMs, merchant } = e as TransactionRecorded;
      return [e.$typeName, accountId, transactionId, amountCents, timestampMs, merchant];
    }),
    [
      ["com.example.fraud.domain.TransactionRecorded", "acct-1", "t1", 1_250n, 1_700_000_000_000n, "Corner shop"],
      ["com.example.fraud.domain.TransactionRecorded", "acct-1", "t2", 750n, 1_700_000_060_000n, "Corner shop"],
    ],
  );
  const summary = await t.call("getAccount", { accountId: "acct-1" });
  assert.deepEqual([summary.accountId, summary.transactions, summary.totalCents], ["acct-1", 2n, 2_000n]);
});

test("a transaction id recorded recently is a retry: it succeeds and records nothing", async () => {
  const t = open();
  await t.call("recordTransaction", tx("t1", 1_000n));
  await t.call("recordTransaction", tx("t2", 500n));
  const retry = await t.send("recordTransaction", tx("t1", 1_000n));
  assert.deepEqual([retry.reply !== undefined, retry.events.length], [true, 0]);
  assert.equal(t.events.length, 2);
  assert.equal((await t.call("getAccount", { accountId: "acct-1" })).totalCents, 1_500n);
});

test(`only the last ${RECENT_TRANSACTION_IDS} transaction ids are remembered`, async () => {
  const t = open();
  for (let i = 0; i <= RECENT_TRANSACTION_IDS; i++) await t.call("recordTransaction", tx(`t${i}`, 100n));
  assert.equal(t.state.recentTransactionIds.length, RECENT_TRANSACTION_IDS);
  assert.deepEqual([t.state.recentTransactionIds[0], t.state.recentTransactionIds.at(-1)], ["t1", `t${RECENT_TRANSACTION_IDS}`]);
  assert.equal((await t.send("recordTransaction", tx("t1", 100n))).events.length, 0, "t1 is still remembered");
  assert.equal((await t.send("recordTransaction", tx("t0", 100n))).events.length, 1, "t0 is forgotten: recorded again");
});

test("invalid transactions fail and record nothing", async () => {
  const t = open();
  const cases: [ReturnType<typeof tx>, RegExp][] = [
    [tx("t1", 0n), /amount_cents must be positive, got 0/],
    [tx("t1", -5n), /amount_cents must be positive, got -5/],
    [tx("", 100n), /transaction_id is required/],
    [tx("t1", 100n, -1n), /timestamp_ms must not be negative/],
  ];
  for (const [input, message] of cases) {
    await assert.rejects(t.call("recordTransaction", input), (e: unknown) => e instanceof CommandFailure && message.test(e.message));
  }
  assert.equal(t.events.length, 0);
  // A failed transaction id is not remembered: the same id can then be recorded.
  await t.call("recordTransaction", tx("t1", 100n));
  assert.equal(t.events.length, 1);
});

test("a transaction without a time gets the time it is recorded", async () => {
  const t = open();
  const before = BigInt(Date.now());
  await t.call("recordTransaction", tx("t1", 100n, 0n));
  const at = (t.events[0] as TransactionRecorded).timestampMs;
  assert.ok(at >= before && at <= BigInt(Date.now()), `${at} is the time of recording`);
});

test("the account is rebuilt the same from its snapshot and journal", async () => {
  const t = open();
  for (let i = 0; i < 60; i++) await t.call("recordTransaction", tx(`t${i}`, BigInt(100 + i)));
  const before = await t.call("getAccount", { accountId: "acct-1" });
  t.restart();
  assert.deepEqual(await t.call("getAccount", { accountId: "acct-1" }), before);
  assert.equal((await t.send("recordTransaction", tx("t59", 1n))).events.length, 0, "the recent ids survive the restart");
});
