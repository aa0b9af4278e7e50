// GCounter: a grow-only counter. Each node counts its own increments; the value is the sum, and a
// join keeps each node's highest count.
import type { CrdtDelta } from "@cloudstate-ts/protocol";
import {
  CrdtDeltaError,
  decodeCounts,
  deltaOf,
  encodeCounts,
  expectKind,
  field,
  MAX_UINT64,
  mergeMax,
  RESET,
  sum,
  type Crdt,
  type ReplicaContext,
} from "./crdt.js";

export class GCounter implements Crdt {
  readonly kind = "gcounter";

  constructor(private readonly counts = new Map<string, bigint>()) {}

  value(): bigint {
    return sum(this.counts);
  }

  check(delta: CrdtDelta): void {
    const { increment } = expectKind(delta, "gcounter");
    // uint64 cannot be negative; the total must still fit the init delta's uint64.
    if (this.value() + increment > MAX_UINT64) {
      throw new CrdtDeltaError(`GCounter increment ${increment} overflows the counter (uint64)`);
    }
  }

  apply(delta: CrdtDelta, ctx: ReplicaContext): void {
    const { increment } = expectKind(delta, "gcounter");
    if (increment === 0n) return;
    this.counts.set(ctx.node, (this.counts.get(ctx.node) ?? 0n) + increment);
  }

  toDelta(): CrdtDelta {
    return deltaOf({ case: "gcounter", value: { increment: clampU64(this.value()) } });
  }

  mergeFrom(other: Crdt): void {
    mergeMax(this.counts, (other as GCounter).counts);
  }

  deltaFrom(before: Crdt): CrdtDelta | undefined | typeof RESET {
    // Joins only grow each node's count; a map value written afresh may be lower.
    const increment = this.value() - (before as GCounter).value();
    if (increment < 0n) return RESET;
    return increment > 0n ? deltaOf({ case: "gcounter", value: { increment } }) : undefined;
  }

  clone(): GCounter {
    return new GCounter(new Map(this.counts));
  }

  encode(): unknown {
    return { counts: encodeCounts(this.counts) };
  }

  static decode(json: unknown): GCounter {
    return new GCounter(decodeCounts(field(json, "counts", "gcounter"), "gcounter.counts"));
  }
}

/** Merges of many nodes' counts can exceed uint64 even though no local increment did. */
function clampU64(value: bigint): bigint {
  return value > MAX_UINT64 ? MAX_UINT64 : value;
}
