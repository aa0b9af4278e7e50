// GCounter: a counter that only grows. Each replica counts its own increments; the value is the sum.
import { create } from "@bufbuild/protobuf";
import { CrdtDeltaSchema, type CrdtDelta } from "@cloudstate-ts/protocol";
import { Crdt, wholeNumber } from "./crdt.js";

const MAX = 2n ** 64n - 1n; // the protocol's uint64

export class GCounter extends Crdt {
  readonly kind = "gcounter";
  private current = 0n;
  private pending = 0n;

  /** The value (a number: exact up to 2^53; see `bigValue`). */
  get value(): number {
    return Number(this.current);
  }

  /** The exact value. */
  get bigValue(): bigint {
    return this.current;
  }

  /** Adds `by` (default 1, never negative: a GCounter only grows). */
  increment(by: number | bigint = 1): this {
    const n = wholeNumber("GCounter.increment()", by);
    if (n < 0n) throw new RangeError(`a GCounter only grows: increment() takes a number >= 0, got ${n} (a PNCounter can decrease)`);
    if (n === 0n) return this;
    if (this.current + n > MAX) throw new RangeError(`a GCounter holds at most 2^64 - 1`);
    const before = this.current;
    this.willChange(() => {
      this.current = before;
    });
    this.current += n;
    this.pending += n;
    return this;
  }

  /** @internal */
  pendingDelta(): CrdtDelta | undefined {
    return this.pending === 0n ? undefined : create(CrdtDeltaSchema, { delta: { case: "gcounter", value: { increment: this.pending } } });
  }

  /** @internal */
  resetDelta(): void {
    this.pending = 0n;
  }

  /** @internal */
  fullState(): CrdtDelta {
    return create(CrdtDeltaSchema, { delta: { case: "gcounter", value: { increment: this.current } } });
  }

  /** @internal */
  applyDelta(delta: CrdtDelta): void {
    this.current += this.deltaOf(delta, "gcounter").increment;
  }

  override toString(): string {
    return `GCounter(${this.current})`;
  }
}
