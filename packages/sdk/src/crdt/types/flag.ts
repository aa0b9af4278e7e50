// Flag: a boolean that can only be switched on; once enabled on any replica, it is enabled everywhere.
import { create } from "@bufbuild/protobuf";
import { CrdtDeltaSchema, type CrdtDelta } from "@cloudstate-ts/protocol";
import { ProtocolError } from "../../errors.js";
import { Crdt } from "./crdt.js";

export class Flag extends Crdt {
  readonly kind = "flag";
  private current = false;
  private pending = false;

  get value(): boolean {
    return this.current;
  }

  /** Switches the flag on (for good). */
  enable(): this {
    if (this.current) return this;
    this.willChange(() => {
      this.current = false;
    });
    this.current = true;
    this.pending = true;
    return this;
  }

  /** @internal */
  pendingDelta(): CrdtDelta | undefined {
    return this.pending ? create(CrdtDeltaSchema, { delta: { case: "flag", value: { value: true } } }) : undefined;
  }

  /** @internal */
  resetDelta(): void {
    this.pending = false;
  }

  /** @internal */
  fullState(): CrdtDelta {
    return create(CrdtDeltaSchema, { delta: { case: "flag", value: { value: this.current } } });
  }

  /** @internal */
  applyDelta(delta: CrdtDelta): void {
    const { value } = this.deltaOf(delta, "flag");
    if (this.current && !value) throw new ProtocolError("received a Flag delta that disables an enabled Flag");
    this.current = value;
  }

  override toString(): string {
    return `Flag(${this.current})`;
  }
}
