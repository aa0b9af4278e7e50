// LWWRegister: one value; of concurrent writes, the one with the latest clock wins. The clock is
// chosen at each write: the proxy's wall clock (DEFAULT), its reverse (REVERSE: the earliest write
// wins), or a value the user gives (CUSTOM; CUSTOM_AUTO_INCREMENT makes it current + 1 when it is not
// greater). The proxy resolves the clocks; here a write takes effect at once.
import { create } from "@bufbuild/protobuf";
import { CrdtClock, CrdtDeltaSchema, type CrdtDelta } from "@cloudstate-ts/protocol";
import { ProtocolError } from "../../errors.js";
import { Crdt, wholeNumber } from "./crdt.js";
import { codecOf, type Codec, type Encoded, type ValueInit, type ValueOf, type ValueType } from "./values.js";

/** A last-write-wins register of a `T` value: a message schema or a primitive (see `ValueType`). */
export class LWWRegister<T extends ValueType> extends Crdt {
  readonly kind = "lwwregister";
  private readonly codec: Codec;
  private current: Encoded;
  private clock: CrdtClock;
  private customClockValue: bigint;
  private pending = false;

  /** A register holding `initial` (a local default: it is not sent until the first `set`). */
  constructor(
    readonly type: T,
    initial: ValueInit<T>,
  ) {
    super();
    this.codec = codecOf(type);
    this.current = this.codec.encode(initial);
    this.clock = CrdtClock.DEFAULT;
    this.customClockValue = 0n;
  }

  /** The value (do not modify it: `set` a new one). */
  get value(): ValueOf<T> {
    return this.current.value as ValueOf<T>;
  }

  /**
   * Writes `value` with `clock` (default `Clock.DEFAULT`, the proxy's wall clock); CUSTOM and
   * CUSTOM_AUTO_INCREMENT use `customClockValue`. Writing the value it holds, with the same clock, changes nothing.
   */
  set(value: ValueInit<T>, clock: CrdtClock = CrdtClock.DEFAULT, customClockValue: number | bigint = 0): this {
    const next = this.codec.encode(value);
    if (!(clock in CrdtClock) || typeof clock !== "number") throw new TypeError(`LWWRegister.set(): unknown clock ${String(clock)}`);
    const custom = wholeNumber("LWWRegister.set() customClockValue", customClockValue);
    if (BigInt.asIntN(64, custom) !== custom) throw new RangeError(`LWWRegister.set(): customClockValue ${custom} is not an int64`);
    if (next.key === this.current.key && clock === this.clock && custom === this.customClockValue) return this;
    const before = { current: this.current, clock: this.clock, custom: this.customClockValue };
    this.willChange(() => {
      this.current = before.current;
      this.clock = before.clock;
      this.customClockValue = before.custom;
    });
    this.current = next;
    this.clock = clock;
    this.customClockValue = custom;
    this.pending = true;
    return this;
  }

  /** @internal */
  pendingDelta(): CrdtDelta | undefined {
    return this.pending ? this.fullState() : undefined;
  }

  /** @internal */
  resetDelta(): void {
    this.pending = false;
  }

  /** @internal */
  fullState(): CrdtDelta {
    return create(CrdtDeltaSchema, {
      delta: { case: "lwwregister", value: { value: this.current.any, clock: this.clock, customClockValue: this.customClockValue } },
    });
  }

  /** @internal The proxy has resolved the clocks: its value is the value. */
  applyDelta(delta: CrdtDelta): void {
    const { value } = this.deltaOf(delta, "lwwregister");
    if (!value) throw new ProtocolError("received an LWWRegister delta with no value");
    this.current = this.codec.decode(value);
    this.clock = CrdtClock.DEFAULT;
    this.customClockValue = 0n;
  }

  override toString(): string {
    return `LWWRegister(${this.codec.name})`;
  }
}
