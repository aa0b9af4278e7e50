// PNCounter: a counter that goes up and down, as two grow-only per-node counts (increments and
// decrements); the value is their difference.
import type { CrdtDelta } from "@cloudstate-ts/protocol";
import {
  CrdtDeltaError,
  decodeCounts,
  deltaOf,
  encodeCounts,
  expectKind,
  field,
  mergeMax,
  sum,
  type Crdt,
  type ReplicaContext,
} from "./crdt.js";

const MAX_INT64 = (1n << 63n) - 1n;
const MIN_INT64 = -(1n << 63n);

export class PNCounter implements Crdt {
  readonly kind = "pncounter";

  constructor(
    private readonly increments = new Map<string, bigint>(),
    private readonly decrements = new Map<string, bigint>(),
  ) {}

  value(): bigint {
    return sum(this.increments) - sum(this.decrements);
  }

  check(delta: CrdtDelta): void {
    const { change } = expectKind(delta, "pncounter");
    const next = this.value() + change;
    if (next > MAX_INT64 || next < MIN_INT64) {
      throw new CrdtDeltaError(`PNCounter change ${change} takes the counter out of the sint64 range`);
    }
  }

  apply(delta: CrdtDelta, ctx: ReplicaContext): void {
    const { change } = expectKind(delta, "pncounter");
    if (change === 0n) return;
    const counts = change > 0n ? this.increments : this.decrements;
    counts.set(ctx.node, (counts.get(ctx.node) ?? 0n) + (change > 0n ? change : -change));
  }

  toDelta(): CrdtDelta {
    return deltaOf({ case: "pncounter", value: { change: clampI64(this.value()) } });
  }

  mergeFrom(other: Crdt): void {
    const o = other as PNCounter;
    mergeMax(this.increments, o.increments);
    mergeMax(this.decrements, o.decrements);
  }

  deltaFrom(before: Crdt): CrdtDelta | undefined {
    const change = this.value() - (before as PNCounter).value();
    return change !== 0n ? deltaOf({ case: "pncounter", value: { change: clampI64(change) } }) : undefined;
  }

  clone(): PNCounter {
    return new PNCounter(new Map(this.increments), new Map(this.decrements));
  }

  encode(): unknown {
    return { increments: encodeCounts(this.increments), decrements: encodeCounts(this.decrements) };
  }

  static decode(json: unknown): PNCounter {
    return new PNCounter(
      decodeCounts(field(json, "increments", "pncounter"), "pncounter.increments"),
      decodeCounts(field(json, "decrements", "pncounter"), "pncounter.decrements"),
    );
  }
}

function clampI64(value: bigint): bigint {
  return value > MAX_INT64 ? MAX_INT64 : value < MIN_INT64 ? MIN_INT64 : value;
}
