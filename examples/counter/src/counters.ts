// Three CRDT entities, one per service: a counter that only grows (GCounter), one that goes up and
// down (PNCounter), and a poll in which every proxy node votes (Vote). Each node changes its own
// replica at once; the proxy merges the replicas. Watch streams the value after every change.
import { crdtEntity, GCounter, PNCounter, Vote } from "@cloudstate-ts/sdk";
import { Counter, Poll, UpDownCounter } from "./gen/com/example/counter/counter_pb.js";

export const counter = crdtEntity({
  service: Counter,
  persistenceId: "counters",
  crdt: () => new GCounter(),
  commands: {
    increment({ by }, ctx) {
      ctx.state.increment(by === 0n ? 1n : by);
      return { value: ctx.state.bigValue };
    },
    getValue: (_request, ctx) => ({ value: ctx.state.bigValue }),
    watch(_request, ctx) {
      ctx.onStateChange((counter) => ({ value: counter.bigValue }));
      return { value: ctx.state.bigValue };
    },
  },
});

export const upDownCounter = crdtEntity({
  service: UpDownCounter,
  persistenceId: "updown-counters",
  crdt: () => new PNCounter(),
  commands: {
    change({ by }, ctx) {
      ctx.state.increment(by);
      return { value: ctx.state.bigValue };
    },
    getValue: (_request, ctx) => ({ value: ctx.state.bigValue }),
    watch(_request, ctx) {
      ctx.onStateChange((counter) => ({ value: counter.bigValue }));
      return { value: ctx.state.bigValue };
    },
  },
});

function votes(vote: Vote) {
  const { selfVote, votesFor, totalVoters, atLeastOne, majority, all } = vote;
  return { selfVote, votesFor, totalVoters, atLeastOne, majority, all };
}

export const poll = crdtEntity({
  service: Poll,
  persistenceId: "polls",
  crdt: () => new Vote(),
  commands: {
    vote({ yes }, ctx) {
      ctx.state.vote(yes);
      return votes(ctx.state);
    },
    getVotes: (_request, ctx) => votes(ctx.state),
  },
});
