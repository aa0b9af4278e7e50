// PNCounter: a counter that goes up and down. The protocol carries the net change of each delta.
import { create } from "@bufbuild/protobuf";
import { CrdtDeltaSchema, type CrdtDelta } from "@cloudstate-ts/protocol";
import { Crdt, wholeNumber } from "./crdt.js";

export class PNCounter extends Crdt {
  readonly kind = "pncounter";
  private current = 0n;
  private pending = 0n;

  /** The value (a number: exact within ±2^53; see `bigValue`). */
  get value(): number {
    return Number(this.current);
  }

  /** The exact value. */
  get bigValue(): bigint {
    return this.current;
  }

  /** Adds `by` (default 1; a negative number subtracts). */
  increment(by: number | bigint = 1): this {
    const n = wholeNumber("PNCounter.increment()", by);
    if (n === 0n) return this;
    const before = this.current;
    this.willChange(() => {
      this.current = before;
    });
    this.current += n;
    this.pending += n;
    return this;
  }

  /** Subtracts `by` (default 1). */
  decrement(by: number | bigint = 1): this {
    return this.increment(-wholeNumber("PNCounter.decrement()", by));
  }

  /** @internal */
  pendingDelta(): CrdtDelta | undefined {
    return this.pending === 0n ? undefined : create(CrdtDeltaSchema, { delta: { case: "pncounter", value: { change: this.pending } } });
  }

  /** @internal */
  resetDelta(): void {
    this.pending = 0n;
  }

  /** @internal */
  fullState(): CrdtDelta {
    return create(CrdtDeltaSchema, { delta: { case: "pncounter", value: { change: this.current } } });
  }

  /** @internal */
  applyDelta(delta: CrdtDelta): void {
    this.current += this.deltaOf(delta, "pncounter").change;
  }

  override toString(): string {
    return `PNCounter(${this.current})`;
  }
}
