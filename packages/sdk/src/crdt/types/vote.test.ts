import assert from "node:assert/strict";
import { test } from "node:test";
import { assertDelta, hosted } from "../../testdata/crdt-host.js";
import { crdtDelta } from "../../testing/crdt-delta.js";
import { Vote } from "./vote.js";

test("a new Vote: one voter, no votes", () => {
  const v = new Vote();
  assert.deepEqual([v.selfVote, v.votesFor, v.totalVoters], [false, 0, 1]);
  assert.deepEqual([v.atLeastOne, v.majority, v.all], [false, false, false]);
  assert.equal(v.pendingDelta(), undefined);
});

test("voting changes this replica's vote and the tally; the delta carries the self vote", () => {
  const v = new Vote();
  v.vote(true);
  assert.deepEqual([v.selfVote, v.votesFor, v.totalVoters], [true, 1, 1]);
  assert.deepEqual([v.atLeastOne, v.majority, v.all], [true, true, true]);
  assertDelta(v.pendingDelta(), crdtDelta.vote({ selfVote: true }));
  v.resetDelta();
  v.vote(true);
  assert.equal(v.pendingDelta(), undefined, "the same vote again changes nothing");
  v.vote(false).vote(true);
  assert.equal(v.pendingDelta(), undefined, "voting back within one reply cancels out");
  v.vote(false);
  assertDelta(v.pendingDelta(), crdtDelta.vote({ selfVote: false }));
});

test("the proxy's tally replaces ours: at least one, majority, all", () => {
  const v = new Vote();
  v.applyDelta(crdtDelta.vote({ selfVote: false, votesFor: 1, totalVoters: 3 }));
  assert.deepEqual([v.atLeastOne, v.majority, v.all], [true, false, false]);
  v.applyDelta(crdtDelta.vote({ selfVote: true, votesFor: 2, totalVoters: 3 }));
  assert.deepEqual([v.selfVote, v.atLeastOne, v.majority, v.all], [true, true, true, false]);
  v.applyDelta(crdtDelta.vote({ selfVote: true, votesFor: 3, totalVoters: 3 }));
  assert.equal(v.all, true);
  assert.equal(v.pendingDelta(), undefined);
  v.vote(false);
  assert.deepEqual([v.votesFor, v.totalVoters], [2, 3], "our vote moves the tally at once");
  assertDelta(v.fullState(), crdtDelta.vote({ selfVote: false, votesFor: 2, totalVoters: 3 }));
});

test("a rollback restores the vote and the tally", () => {
  const v = new Vote();
  const host = hosted(v);
  v.vote(true);
  host.rollback();
  assert.deepEqual([v.selfVote, v.votesFor], [false, 0]);
  assert.equal(v.pendingDelta(), undefined);
});
