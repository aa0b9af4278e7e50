// The fraud monitor: a value entity per account (persistence id "fraud-monitor"). The proxy
// delivers every event of the "account" event log to Observe, addressed by the event's account id,
// one at a time and in journal order per account; Observe's replies are published to the topic
// "fraud-alerts" (see the eventing options in proto/com/example/fraud/account.proto).
//
// Per account, the state keeps running statistics of the normal transactions' amounts (Welford's
// online algorithm: count, mean, and M2, the sum of squared deviations), the times of the recent
// transactions (the burst window), and what it answered to the latest events, so that a redelivered
// event (delivery is at least once) gets the same answer and changes nothing.
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { valueEntity } from "@cloudstate-ts/sdk";
import { FraudAlertSchema, FraudMonitor, type FraudAlert } from "./gen/com/example/fraud/account_pb.js";
import { MonitorStateSchema, type MonitorState, type TransactionRecorded } from "./gen/com/example/fraud/domain/domain_pb.js";

// The rules. Everything is decided from the state and the event alone (the event's own
// timestamp_ms, never the clock), so a replay or a redelivery decides the same.
//
// Amount: with at least AMOUNT_MIN_HISTORY normal transactions before it, a transaction is
// anomalous when |amount − mean| > AMOUNT_DEVIATIONS × max(stddev, AMOUNT_MIN_SPREAD_RATIO × mean,
// AMOUNT_MIN_SPREAD_CENTS). The floors keep an account with very regular amounts (stddev near 0)
// from alerting on every small change. Anomalous amounts are not folded into the statistics.
export const AMOUNT_MIN_HISTORY = 5;
export const AMOUNT_DEVIATIONS = 4;
export const AMOUNT_MIN_SPREAD_RATIO = 0.1;
export const AMOUNT_MIN_SPREAD_CENTS = 100;
// Burst: a transaction that brings the number of transactions within BURST_WINDOW_MS before it
// (by timestamp_ms, this one included) to exactly BURST_COUNT alerts. Only the crossing alerts: the
// 7th, 8th, … of a burst do not; once the window holds fewer than BURST_COUNT, it can alert again.
export const BURST_WINDOW_MS = 60_000;
export const BURST_COUNT = 6;
// When both rules fire, the alert's reason is "amount" (one alert per transaction).
//
// Bounds of the state: the burst window keeps at most MAX_WINDOW timestamps (any number >=
// BURST_COUNT decides the same), and answers are kept for the latest RECENT_ALERTS alerts.
export const MAX_WINDOW = 100;
export const RECENT_ALERTS = 50;

export type Reason = "amount" | "burst";

/** The sample standard deviation of the statistics (0 below two values). */
export function stddevOf(state: Pick<MonitorState, "count" | "m2">): number {
  return state.count > 1n ? Math.sqrt(state.m2 / Number(state.count - 1n)) : 0;
}

/**
 * Applies a new transaction to the state (in place) and returns its alert, if any. Pure: the same
 * state and event give the same result.
 */
export function assess(state: MonitorState, event: TransactionRecorded): FraudAlert | undefined {
  const amount = Number(event.amountCents);
  const mean = state.mean;
  const stddev = stddevOf(state);

  // The burst window, this transaction included.
  const at = event.timestampMs;
  const window = state.recentTimestamps.filter((t) => t > at - BigInt(BURST_WINDOW_MS));
  window.push(at);
  if (window.length > MAX_WINDOW) window.splice(0, window.length - MAX_WINDOW);
  state.recentTimestamps = window;

  const spread = Math.max(stddev, AMOUNT_MIN_SPREAD_RATIO * mean, AMOUNT_MIN_SPREAD_CENTS);
  const amountAnomaly = state.count >= BigInt(AMOUNT_MIN_HISTORY) && Math.abs(amount - mean) > AMOUNT_DEVIATIONS * spread;
  const burst = window.length === BURST_COUNT;

  if (!amountAnomaly) {
    // Welford: fold the amount into the running count, mean and M2.
    state.count += 1n;
    const delta = amount - state.mean;
    state.mean += delta / Number(state.count);
    state.m2 += delta * (amount - state.mean);
  }
  const reason: Reason | undefined = amountAnomaly ? "amount" : burst ? "burst" : undefined;
  if (reason === undefined) return undefined;
  state.alerts += 1n;
  return create(FraudAlertSchema, {
    accountId: event.accountId,
    transactionId: event.transactionId,
    reason,
    amountCents: event.amountCents,
    meanCents: mean,
    stddevCents: stddev,
    recentTransactions: window.length,
  });
}

export const fraudMonitor = valueEntity({
  service: FraudMonitor,
  persistenceId: "fraud-monitor",
  state: MonitorStateSchema,
  initial: () => create(MonitorStateSchema),
  commands: {
    observe(event, ctx) {
      // The event's offset in the account event log; none for a client's call (treated as new).
      let offset: bigint | undefined;
      const cloudEvent = ctx.cloudEvent;
      if (cloudEvent !== undefined) {
        if (!/^\d{1,18}$/.test(cloudEvent.id)) {
          ctx.fail(`FraudMonitor.Observe takes events of the account event log, whose ce-id is an offset; got "${cloudEvent.id}"`);
        }
        offset = BigInt(cloudEvent.id);
      }
      const state = ctx.state;
      if (offset !== undefined && offset <= state.lastOffset) {
        // A redelivery: events of one account arrive in journal order, so this one was applied.
        // Answer as the first time, change nothing.
        const sent = state.recentAlerts[offset.toString()];
        return sent === undefined ? ctx.noReply() : fromBinary(FraudAlertSchema, sent);
      }
      const alert = assess(state, event);
      if (offset !== undefined) {
        state.lastOffset = offset;
        if (alert !== undefined) {
          state.recentAlerts[offset.toString()] = toBinary(FraudAlertSchema, alert);
          const kept = Object.keys(state.recentAlerts).map(BigInt).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
          for (const old of kept.slice(0, Math.max(0, kept.length - RECENT_ALERTS))) delete state.recentAlerts[old.toString()];
        }
      }
      ctx.setState(state);
      // Nothing to publish for a normal transaction.
      return alert ?? ctx.noReply();
    },
    getStatistics(_request, ctx) {
      const state = ctx.state;
      return { accountId: ctx.entityId, transactions: state.count, meanCents: state.mean, stddevCents: stddevOf(state), alerts: state.alerts };
    },
  },
});
