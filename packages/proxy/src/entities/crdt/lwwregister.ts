// LWWRegister: a last-writer-wins register. Each write carries a clock value and the writing node;
// a join keeps the write with the highest (clock, node, value) — the node breaks clock ties, the
// value breaks ties between two writes of one node at one custom clock value. A local write
// replaces the local value whatever its clock, as the reference proxy does (so a REVERSE or
// backwards CUSTOM clock takes effect locally and loses to older writes on a join: first writer wins).
import type { Any } from "@bufbuild/protobuf/wkt";
import { CrdtClock, type CrdtDelta } from "@cloudstate-ts/protocol";
import {
  anyKey,
  compareStrings,
  copyAny,
  CrdtDeltaError,
  CrdtStateError,
  decodeAny,
  deltaOf,
  encodeAny,
  expectKind,
  field,
  RESET,
  type Crdt,
  type ReplicaContext,
} from "./crdt.js";

interface Write {
  /** undefined when the user function set no value (an unset Any). */
  readonly value: Any | undefined;
  readonly clock: bigint;
  readonly node: string;
}

export class LWWRegister implements Crdt {
  readonly kind = "lwwregister";

  constructor(private write: Write | undefined = undefined) {}

  value(): Any | undefined {
    return this.write?.value;
  }

  check(delta: CrdtDelta): void {
    const { clock } = expectKind(delta, "lwwregister");
    if (CrdtClock[clock] === undefined) throw new CrdtDeltaError(`LWWRegister delta with unknown clock ${clock}`);
  }

  apply(delta: CrdtDelta, ctx: ReplicaContext): void {
    const { value, clock, customClockValue } = expectKind(delta, "lwwregister");
    this.write = { value: value && copyAny(value), clock: nextClock(this.write?.clock, clock, customClockValue, ctx), node: ctx.node };
  }

  toDelta(): CrdtDelta {
    return deltaOf({ case: "lwwregister", value: { value: this.write?.value } });
  }

  mergeFrom(other: Crdt): void {
    const theirs = (other as LWWRegister).write;
    if (theirs !== undefined && (this.write === undefined || compareWrites(theirs, this.write) > 0)) this.write = theirs;
  }

  deltaFrom(before: Crdt): CrdtDelta | undefined | typeof RESET {
    const old = (before as LWWRegister).write?.value;
    const now = this.write?.value;
    if (now === undefined) return old === undefined ? undefined : RESET;
    if (old !== undefined && anyKey(old) === anyKey(now)) return undefined;
    return this.toDelta();
  }

  clone(): LWWRegister {
    return new LWWRegister(this.write);
  }

  encode(): unknown {
    const w = this.write;
    return w === undefined ? {} : { value: w.value === undefined ? null : encodeAny(w.value), clock: w.clock.toString(), node: w.node };
  }

  static decode(json: unknown): LWWRegister {
    if (typeof json !== "object" || json === null) throw new CrdtStateError("lwwregister: expected an object");
    if (!("clock" in json)) return new LWWRegister();
    const clock = field(json, "clock", "lwwregister");
    const node = field(json, "node", "lwwregister");
    const value = field(json, "value", "lwwregister");
    if (typeof clock !== "string" || !/^-?\d+$/.test(clock) || typeof node !== "string") {
      throw new CrdtStateError("lwwregister: expected a decimal clock and a node");
    }
    return new LWWRegister({ value: value === null ? undefined : decodeAny(value, "lwwregister.value"), clock: BigInt(clock), node });
  }
}

/**
 * The clock of a new local write. DEFAULT: wall-clock ms, and past the current write's clock so a
 * local write is newer than what this node has; REVERSE: the negated wall clock (earlier writes win
 * joins), kept below the current clock; CUSTOM: the given value; CUSTOM_AUTO_INCREMENT: the given
 * value, or current + 1 when that is not greater.
 */
function nextClock(current: bigint | undefined, clock: CrdtClock, custom: bigint, ctx: ReplicaContext): bigint {
  switch (clock) {
    case CrdtClock.DEFAULT: {
      const now = ctx.now();
      return current !== undefined && current >= now ? current + 1n : now;
    }
    case CrdtClock.REVERSE: {
      const reversed = -ctx.now();
      return current !== undefined && current <= reversed ? current - 1n : reversed;
    }
    case CrdtClock.CUSTOM:
      return custom;
    case CrdtClock.CUSTOM_AUTO_INCREMENT:
      return current !== undefined && custom <= current ? current + 1n : custom;
    default:
      throw new CrdtDeltaError(`LWWRegister delta with unknown clock ${String(clock)}`);
  }
}

function compareWrites(a: Write, b: Write): number {
  if (a.clock !== b.clock) return a.clock > b.clock ? 1 : -1;
  if (a.node !== b.node) return compareStrings(a.node, b.node);
  return compareStrings(a.value ? anyKey(a.value) : "", b.value ? anyKey(b.value) : "");
}
