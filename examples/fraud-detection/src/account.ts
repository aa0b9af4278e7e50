// The account: an event-sourced entity (persistence id "account") that journals every card
// transaction as a TransactionRecorded. Its journal is the "account" event log, which the fraud
// monitor (monitor.ts) consumes.
import { create } from "@bufbuild/protobuf";
import { eventSourced } from "@cloudstate-ts/sdk";
import { Account } from "./gen/com/example/fraud/account_pb.js";
import { AccountStateSchema, TransactionRecordedSchema, type AccountState, type TransactionRecorded } from "./gen/com/example/fraud/domain/domain_pb.js";

/**
 * How many transaction ids the account remembers: a RecordTransaction whose id is among them is a
 * retry (the client did not see the first answer) and records nothing.
 */
export const RECENT_TRANSACTION_IDS = 100;

export const account = eventSourced({
  service: Account,
  persistenceId: "account",
  state: AccountStateSchema,
  initial: () => create(AccountStateSchema),
  snapshotEvery: 50,
  events: [[TransactionRecordedSchema, transactionRecorded]],
  commands: {
    recordTransaction({ transactionId, amountCents, timestampMs, merchant }, ctx) {
      if (transactionId === "") ctx.fail("transaction_id is required");
      if (amountCents <= 0n) ctx.fail(`amount_cents must be positive, got ${amountCents}`);
      if (timestampMs < 0n) ctx.fail(`timestamp_ms must not be negative, got ${timestampMs}`);
      // A retry of a transaction already recorded: succeed, record nothing.
      if (ctx.state.recentTransactionIds.includes(transactionId)) return {};
      ctx.emit(
        create(TransactionRecordedSchema, {
          accountId: ctx.entityId,
          transactionId,
          amountCents,
          // No time given (e.g. from curl): the time the account recorded it.
          timestampMs: timestampMs === 0n ? BigInt(Date.now()) : timestampMs,
          merchant,
        }),
      );
      return {};
    },
    getAccount(_request, ctx) {
      return { accountId: ctx.entityId, transactions: ctx.state.transactions, totalCents: ctx.state.totalCents };
    },
  },
});

function transactionRecorded(state: AccountState, event: TransactionRecorded): AccountState {
  state.transactions += 1n;
  state.totalCents += event.amountCents;
  state.recentTransactionIds.push(event.transactionId);
  if (state.recentTransactionIds.length > RECENT_TRANSACTION_IDS) {
    state.recentTransactionIds.splice(0, state.recentTransactionIds.length - RECENT_TRANSACTION_IDS);
  }
  return state;
}
