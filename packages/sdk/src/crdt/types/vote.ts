// Vote: each replica (proxy node) votes yes or no; every replica sees how many of the live replicas
// vote yes. This user function's vote is `selfVote`; the proxy counts the others.
import { create } from "@bufbuild/protobuf";
import { CrdtDeltaSchema, type CrdtDelta } from "@cloudstate-ts/protocol";
import { Crdt } from "./crdt.js";

export class Vote extends Crdt {
  readonly kind = "vote";
  private self = false;
  private votes = 0;
  private voters = 1;
  private pending = false;

  /** This replica's vote. */
  get selfVote(): boolean {
    return this.self;
  }

  /** How many replicas vote yes (this one included). */
  get votesFor(): number {
    return this.votes;
  }

  /** How many replicas vote (this one included). */
  get totalVoters(): number {
    return this.voters;
  }

  /** At least one replica votes yes. */
  get atLeastOne(): boolean {
    return this.votes > 0;
  }

  /** More than half of the replicas vote yes. */
  get majority(): boolean {
    return this.votes * 2 > this.voters;
  }

  /** Every replica votes yes. */
  get all(): boolean {
    return this.votes === this.voters;
  }

  /** Sets this replica's vote. */
  vote(value: boolean): this {
    if (typeof value !== "boolean") throw new TypeError(`Vote.vote() takes a boolean, got ${String(value)}`);
    if (value === this.self) return this;
    const before = { self: this.self, votes: this.votes };
    this.willChange(() => {
      this.self = before.self;
      this.votes = before.votes;
    });
    this.self = value;
    this.votes += value ? 1 : -1;
    this.pending = !this.pending; // voting back within one reply cancels out
    return this;
  }

  /** @internal The proxy reads only `self_vote` from the user function. */
  pendingDelta(): CrdtDelta | undefined {
    return this.pending ? create(CrdtDeltaSchema, { delta: { case: "vote", value: { selfVote: this.self } } }) : undefined;
  }

  /** @internal */
  resetDelta(): void {
    this.pending = false;
  }

  /** @internal */
  fullState(): CrdtDelta {
    return create(CrdtDeltaSchema, {
      delta: { case: "vote", value: { selfVote: this.self, votesFor: this.votes, totalVoters: this.voters } },
    });
  }

  /** @internal The proxy sends the whole tally: this replica's vote, the yes votes and the voters. */
  applyDelta(delta: CrdtDelta): void {
    const { selfVote, votesFor, totalVoters } = this.deltaOf(delta, "vote");
    this.self = selfVote;
    this.votes = votesFor;
    this.voters = totalVoters;
  }

  override toString(): string {
    return `Vote(${this.votes}/${this.voters}, self ${this.self})`;
  }
}
