// The fraud monitor with the in-process testkit: each rule, the baseline without anomalies, a
// burst alerting once, and redeliveries answered as the first time without changing anything.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { testkit } from "@cloudstate-ts/sdk/testing";
import type { FraudAlert } from "./gen/com/example/fraud/account_pb.js";
import { BURST_COUNT, BURST_WINDOW_MS, fraudMonitor, RECENT_ALERTS } from "./monitor.js";

const quiet = { info() {}, warn() {}, error() {} };
const T0 = 1_700_000_000_000;
const MINUTE = 60_000;

function open(accountId = "acct-1") {
  return testkit(fraudMonitor, { entityId: accountId, logger: quiet });
}
type Monitor = ReturnType<typeof open>;

let nextTx = 0;
/** A TransactionRecorded of acct-1 at `atMs`. */
function tx(amountCents: number, atMs: number, transactionId = `t${++nextTx}`) {
  return { accountId: "acct-1", transactionId, amountCents: BigInt(amountCents), timestampMs: BigInt(atMs), merchant: "m" };
}

/** Delivers normal-looking transactions one minute apart (no burst); returns the time of the last. */
async function history(t: Monitor, amounts: number[], from = T0): Promise<number> {
  let at = from;
  for (const [i, amount] of amounts.entries()) {
    at = from + i * MINUTE * 2;
    const result = await t.deliver("observe", tx(amount, at));
    assert.equal(result.noReply, true, `history transaction ${i} (${amount}) alerted: ${JSON.stringify(result.reply)}`);
  }
  return at;
}

function summary(alert: FraudAlert | undefined) {
  return alert && { transactionId: alert.transactionId, reason: alert.reason, amount: alert.amountCents, recent: alert.recentTransactions };
}

/** Mean and sample standard deviation, the plain way. */
function stats(values: number[]): { mean: number; stddev: number } {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const variance = values.length > 1 ? values.reduce((a, v) => a + (v - mean) ** 2, 0) / (values.length - 1) : 0;
  return { mean, stddev: Math.sqrt(variance) };
}

function assertClose(actual: number, expected: number, what: string) {
  assert.ok(Math.abs(actual - expected) < 1e-6, `${what}: ${actual}, expected ${expected}`);
}

describe("the amount rule", () => {
  test("normal transactions publish nothing; the statistics are their count, mean and sample stddev", async () => {
    const t = open();
    const amounts = [1_000, 1_200, 900, 1_100, 1_050, 980, 1_020];
    await history(t, amounts);
    const s = await t.call("getStatistics", { accountId: "acct-1" });
    const expected = stats(amounts);
    assert.deepEqual([s.accountId, s.transactions, s.alerts], ["acct-1", 7n, 0n]);
    assertClose(s.meanCents, expected.mean, "mean");
    assertClose(s.stddevCents, expected.stddev, "stddev");
  });

  test("far above or far below the mean alerts 'amount', with the statistics before it", async () => {
    const t = open();
    const amounts = [1_000, 1_200, 900, 1_100, 1_050];
    const last = await history(t, amounts);
    const { mean, stddev } = stats(amounts);
    const high = await t.deliver("observe", tx(9_000, last + 2 * MINUTE, "big"));
    assert.equal(high.noReply, false);
    assert.deepEqual(summary(high.reply), { transactionId: "big", reason: "amount", amount: 9_000n, recent: 1 });
    assert.equal(high.reply!.accountId, "acct-1");
    assertClose(high.reply!.meanCents, mean, "mean before");
    assertClose(high.reply!.stddevCents, stddev, "stddev before");
    const low = await t.deliver("observe", tx(1, last + 4 * MINUTE, "tiny"));
    assert.deepEqual(summary(low.reply), { transactionId: "tiny", reason: "amount", amount: 1n, recent: 1 });
  });

  test("needs 5 normal transactions before it: the 5th may be anything, and is folded in", async () => {
    const t = open();
    const last = await history(t, [1_000, 1_000, 1_000, 1_000, 50_000]);
    const s = await t.call("getStatistics", { accountId: "acct-1" });
    assert.equal(s.transactions, 5n);
    assertClose(s.meanCents, 10_800, "the mean includes the 5th");
    // With a spread that wide, 30,000 is normal now.
    assert.equal((await t.deliver("observe", tx(30_000, last + 2 * MINUTE))).noReply, true);
  });

  test("threshold: 4 × max(stddev, 10% of the mean, 100 cents), strictly above", async () => {
    // Identical amounts: stddev 0, so the spread is 10% of the mean (100 of 1,000): ±400 is normal.
    for (const [amount, alerts] of [[1_400, false], [1_401, true], [600, false], [599, true]] as const) {
      const t = open();
      const last = await history(t, [1_000, 1_000, 1_000, 1_000, 1_000]);
      const result = await t.deliver("observe", tx(amount, last + 2 * MINUTE));
      assert.equal(result.reply?.reason, alerts ? "amount" : undefined, `${amount} against a mean of 1,000`);
    }
    // Small amounts: 10% of 500 is 50, below the 100-cent floor: ±400 is normal.
    for (const [amount, alerts] of [[900, false], [901, true]] as const) {
      const t = open();
      const last = await history(t, [500, 500, 500, 500, 500]);
      assert.equal((await t.deliver("observe", tx(amount, last + 2 * MINUTE))).reply?.reason, alerts ? "amount" : undefined, `${amount} against 500`);
    }
    // A wide stddev dominates: amounts 1,000 and 3,000 (mean 2,000, stddev ~1,095).
    const amounts = [1_000, 3_000, 1_000, 3_000, 1_000, 3_000];
    const { mean, stddev } = stats(amounts);
    for (const [amount, alerts] of [[Math.floor(mean + 4 * stddev), false], [Math.ceil(mean + 4 * stddev), true]] as const) {
      const t = open();
      const last = await history(t, amounts);
      assert.equal((await t.deliver("observe", tx(amount, last + 2 * MINUTE))).reply?.reason, alerts ? "amount" : undefined, `${amount} against ${mean} ± ${stddev}`);
    }
  });

  test("anomalous amounts stay out of the baseline: statistics unchanged, the next one alerts too", async () => {
    const t = open();
    const amounts = [2_000, 2_100, 1_900, 2_050, 1_950, 2_000];
    let at = await history(t, amounts);
    const before = await t.call("getStatistics", { accountId: "acct-1" });
    for (const amount of [40_000, 40_000, 40_000]) {
      at += 2 * MINUTE;
      assert.equal((await t.deliver("observe", tx(amount, at))).reply?.reason, "amount", "every one of them alerts");
    }
    const after = await t.call("getStatistics", { accountId: "acct-1" });
    assert.deepEqual([after.transactions, after.meanCents, after.stddevCents], [before.transactions, before.meanCents, before.stddevCents]);
    assert.equal(after.alerts, 3n);
    // Normal amounts are still folded in.
    await t.deliver("observe", tx(2_020, at + 2 * MINUTE));
    const s = await t.call("getStatistics", { accountId: "acct-1" });
    assert.equal(s.transactions, 7n);
    assertClose(s.meanCents, stats([...amounts, 2_020]).mean, "mean");
    assertClose(s.stddevCents, stats([...amounts, 2_020]).stddev, "stddev");
  });
});

describe("the burst rule", () => {
  test(`the ${BURST_COUNT}th transaction within ${BURST_WINDOW_MS / 1000} s alerts 'burst', once for a long burst`, async () => {
    const t = open();
    const answers: (string | undefined)[] = [];
    for (let i = 0; i < 10; i++) {
      const result = await t.deliver("observe", tx(1_000, T0 + i * 5_000, `b${i}`));
      answers.push(result.reply && `${result.reply.transactionId}:${result.reply.reason}:${result.reply.recentTransactions}`);
    }
    assert.deepEqual(answers, [undefined, undefined, undefined, undefined, undefined, "b5:burst:6", undefined, undefined, undefined, undefined]);
    const s = await t.call("getStatistics", { accountId: "acct-1" });
    assert.deepEqual([s.transactions, s.alerts], [10n, 1n], "burst transactions with normal amounts are in the baseline");
  });

  test("the window is the 60 s before the transaction, that instant excluded", async () => {
    const t = open();
    for (const at of [0, 10_000, 20_000, 30_000, 40_000]) assert.equal((await t.deliver("observe", tx(1_000, T0 + at))).noReply, true);
    // At 60 s the first (at 0) is out: 5 in the window.
    assert.equal((await t.deliver("observe", tx(1_000, T0 + 60_000))).noReply, true);
    // At 61 s: 10, 20, 30, 40, 60 and this one.
    assert.equal((await t.deliver("observe", tx(1_000, T0 + 61_000, "sixth"))).reply?.transactionId, "sixth");
  });

  test("alerts again once the window has dropped below the threshold", async () => {
    const t = open();
    const alerted: string[] = [];
    const burst = async (from: number, name: string) => {
      for (let i = 0; i < 7; i++) {
        const result = await t.deliver("observe", tx(1_000, from + i * 1_000, `${name}${i}`));
        if (result.reply) alerted.push(`${result.reply.transactionId}:${result.reply.reason}`);
      }
    };
    await burst(T0, "a");
    await burst(T0 + 5 * MINUTE, "b");
    assert.deepEqual(alerted, ["a5:burst", "b5:burst"]);
  });

  test("when both rules fire, one alert: 'amount'", async () => {
    const t = open();
    const last = await history(t, [1_000, 1_000, 1_000, 1_000, 1_000]);
    const at = last + 10 * MINUTE;
    for (let i = 0; i < 5; i++) assert.equal((await t.deliver("observe", tx(1_000, at + i * 1_000))).noReply, true);
    const both = await t.deliver("observe", tx(20_000, at + 5_000, "both"));
    assert.deepEqual(summary(both.reply), { transactionId: "both", reason: "amount", amount: 20_000n, recent: 6 });
    assert.equal((await t.deliver("observe", tx(1_000, at + 6_000))).noReply, true, "the 7th of the burst does not alert");
    assert.equal((await t.call("getStatistics", { accountId: "acct-1" })).alerts, 1n);
  });
});

describe("redeliveries", () => {
  async function scenario(t: Monitor) {
    // Offsets 10, 20, … as in an event log shared with other accounts.
    const results = [];
    const amounts = [1_000, 1_100, 900, 1_000, 1_050, 30_000, 1_000];
    for (const [i, amount] of amounts.entries()) {
      results.push(await t.deliver("observe", tx(amount, T0 + i * 2 * MINUTE, `r${i}`), { id: String(10 * (i + 1)) }));
    }
    return results;
  }

  test("an offset already applied gets the same answer and changes nothing", async () => {
    const t = open();
    const first = await scenario(t);
    assert.deepEqual(first.map((r) => r.reply?.reason), [undefined, undefined, undefined, undefined, undefined, "amount", undefined]);
    const stored = t.stored!;
    const stats = await t.call("getStatistics", { accountId: "acct-1" });
    assert.equal(stored.lastOffset, 70n);

    // The alert at offset 60, delivered again (even after the entity restarted from its stored state).
    t.restart();
    const again = await t.deliver("observe", tx(30_000, T0 + 5 * 2 * MINUTE, "r5"), { id: "60" });
    assert.deepEqual(again.reply, first[5]!.reply);
    assert.equal(again.stateAction, undefined, "nothing stored");
    // A normal one delivered again: no reply again, nothing stored.
    for (const id of ["10", "50", "70"]) {
      const normal = await t.deliver("observe", tx(1_000, T0, "whatever"), { id });
      assert.deepEqual([normal.noReply, normal.stateAction], [true, undefined], `offset ${id}`);
    }
    assert.deepEqual(t.stored, stored);
    assert.deepEqual(await t.call("getStatistics", { accountId: "acct-1" }), stats);

    // The next offset is new.
    const next = await t.deliver("observe", tx(1_000, T0 + 20 * MINUTE), { id: "71" });
    assert.equal(next.stateAction, "update");
    assert.equal(t.stored!.lastOffset, 71n);
  });

  test("a redelivered burst crossing alerts the same, and does not count twice", async () => {
    const t = open();
    const results = [];
    for (let i = 0; i < 6; i++) results.push(await t.deliver("observe", tx(1_000, T0 + i * 1_000, `b${i}`), { id: String(i + 1) }));
    assert.equal(results[5]!.reply?.reason, "burst");
    // The whole tail again, as after a crash before the offsets were committed.
    for (let i = 0; i < 6; i++) {
      const again = await t.deliver("observe", tx(1_000, T0 + i * 1_000, `b${i}`), { id: String(i + 1) });
      assert.deepEqual(again.reply, results[i]!.reply, `offset ${i + 1}`);
    }
    assert.equal(t.stored!.recentTimestamps.length, 6, "the window holds each transaction once");
    assert.equal((await t.call("getStatistics", { accountId: "acct-1" })).transactions, 6n);
  });

  test(`answers are kept for the latest ${RECENT_ALERTS} alerts`, async () => {
    const t = open();
    // Every 7th transaction is a burst crossing (6 within a minute, then a pause).
    let offset = 0;
    for (let burst = 0; burst < RECENT_ALERTS + 5; burst++) {
      for (let i = 0; i < BURST_COUNT; i++) await t.deliver("observe", tx(1_000, T0 + burst * 10 * MINUTE + i * 1_000), { id: String(++offset) });
    }
    const kept = Object.keys(t.stored!.recentAlerts).map(Number);
    assert.equal(kept.length, RECENT_ALERTS);
    assert.equal(Math.min(...kept), 6 * 6, "the oldest five are gone");
    assert.equal(Math.max(...kept), offset);
    assert.equal(t.stored!.alerts, BigInt(RECENT_ALERTS + 5));
  });

  test("a call without a CloudEvent is new every time and keeps no offset", async () => {
    const t = open();
    await t.deliver("observe", tx(1_000, T0), { id: "5" });
    await t.call("getStatistics", { accountId: "acct-1" });
    const direct = await t.send("observe", tx(1_000, T0 + MINUTE));
    assert.deepEqual([direct.noReply, direct.stateAction], [true, "update"]);
    assert.equal((await t.send("observe", tx(1_000, T0 + 2 * MINUTE))).stateAction, "update");
    assert.deepEqual([t.stored!.count, t.stored!.lastOffset], [3n, 5n]);
  });

  test("a CloudEvent whose id is not an offset fails the delivery and changes nothing", async () => {
    const t = open();
    const result = await t.deliver("observe", tx(1_000, T0), { id: "abc" });
    assert.match(result.failure?.description ?? "", /ce-id is an offset; got "abc"/);
    assert.equal(t.stored, undefined);
  });
});

test("GetStatistics of an account never seen is all zeros", async () => {
  const s = await open("new").call("getStatistics", { accountId: "new" });
  assert.deepEqual([s.accountId, s.transactions, s.meanCents, s.stddevCents, s.alerts], ["new", 0n, 0, 0, 0n]);
});
