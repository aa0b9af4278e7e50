// Flag: a boolean that can only be enabled; the join is "or".
import type { CrdtDelta } from "@cloudstate-ts/protocol";
import { CrdtDeltaError, CrdtStateError, deltaOf, expectKind, field, RESET, type Crdt } from "./crdt.js";

export class Flag implements Crdt {
  readonly kind = "flag";

  constructor(private enabled = false) {}

  value(): boolean {
    return this.enabled;
  }

  check(delta: CrdtDelta): void {
    const { value } = expectKind(delta, "flag");
    if (this.enabled && !value) throw new CrdtDeltaError("a Flag cannot be disabled once enabled");
  }

  apply(delta: CrdtDelta): void {
    if (expectKind(delta, "flag").value) this.enabled = true;
  }

  toDelta(): CrdtDelta {
    return deltaOf({ case: "flag", value: { value: this.enabled } });
  }

  mergeFrom(other: Crdt): void {
    this.enabled ||= (other as Flag).enabled;
  }

  deltaFrom(before: Crdt): CrdtDelta | undefined | typeof RESET {
    const was = (before as Flag).enabled;
    if (was && !this.enabled) return RESET;
    return this.enabled && !was ? this.toDelta() : undefined;
  }

  clone(): Flag {
    return new Flag(this.enabled);
  }

  encode(): unknown {
    return { enabled: this.enabled };
  }

  static decode(json: unknown): Flag {
    const enabled = field(json, "enabled", "flag");
    if (typeof enabled !== "boolean") throw new CrdtStateError("flag.enabled: expected a boolean");
    return new Flag(enabled);
  }
}
