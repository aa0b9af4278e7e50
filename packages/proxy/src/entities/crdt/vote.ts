// Vote: one vote per node, as a per-node counter whose parity is the vote (odd = yes); changing a
// vote increments the node's counter, and a join keeps each node's highest counter. The view counts
// live nodes only: votes_for among them, total_voters = live nodes with an entry, plus this node.
import type { CrdtDelta } from "@cloudstate-ts/protocol";
import { decodeCounts, deltaOf, encodeCounts, expectKind, field, mergeMax, type Crdt, type ReplicaContext } from "./crdt.js";

export interface VoteView {
  readonly selfVote: boolean;
  readonly votesFor: number;
  readonly totalVoters: number;
}

export class Vote implements Crdt {
  readonly kind = "vote";

  constructor(private readonly counters = new Map<string, bigint>()) {}

  view(ctx: ReplicaContext): VoteView {
    let votesFor = 0;
    let totalVoters = 0;
    for (const [node, counter] of this.counters) {
      if (node !== ctx.node && !ctx.isLive(node)) continue;
      totalVoters++;
      if (counter % 2n === 1n) votesFor++;
    }
    if (!this.counters.has(ctx.node)) totalVoters++;
    return { selfVote: (this.counters.get(ctx.node) ?? 0n) % 2n === 1n, votesFor, totalVoters };
  }

  check(delta: CrdtDelta): void {
    // votes_for and total_voters are the view; only self_vote is a change.
    expectKind(delta, "vote");
  }

  apply(delta: CrdtDelta, ctx: ReplicaContext): void {
    const { selfVote } = expectKind(delta, "vote");
    const counter = this.counters.get(ctx.node) ?? 0n;
    if ((counter % 2n === 1n) !== selfVote) this.counters.set(ctx.node, counter + 1n);
    else if (!this.counters.has(ctx.node)) this.counters.set(ctx.node, 0n);
  }

  toDelta(ctx: ReplicaContext): CrdtDelta {
    return deltaOf({ case: "vote", value: this.view(ctx) });
  }

  mergeFrom(other: Crdt): void {
    mergeMax(this.counters, (other as Vote).counters);
  }

  deltaFrom(before: Crdt, ctx: ReplicaContext): CrdtDelta | undefined {
    const a = (before as Vote).view(ctx);
    const b = this.view(ctx);
    return a.selfVote === b.selfVote && a.votesFor === b.votesFor && a.totalVoters === b.totalVoters
      ? undefined
      : deltaOf({ case: "vote", value: b });
  }

  clone(): Vote {
    return new Vote(new Map(this.counters));
  }

  encode(): unknown {
    return { counters: encodeCounts(this.counters) };
  }

  static decode(json: unknown): Vote {
    return new Vote(decodeCounts(field(json, "counters", "vote"), "vote.counters"));
  }
}
