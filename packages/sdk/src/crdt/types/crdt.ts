// What every CRDT type does for the entity that holds it: it keeps the change made since the last
// reply (its pending delta, sent in the reply), applies the deltas of other replicas, and reports
// each local change before making it, so that the entity can refuse it (outside a handler) or
// undo it (when the command fails).
import type { CrdtDelta } from "@cloudstate-ts/protocol";
import { ProtocolError } from "../../errors.js";

/** The kind of a CRDT, as the protocol's `CrdtDelta` names it. */
export type CrdtKind = NonNullable<CrdtDelta["delta"]["case"]>;

type DeltaOf<K extends CrdtKind> = Extract<CrdtDelta["delta"], { case: K }>["value"];

const kindNames: Record<CrdtKind, string> = {
  gcounter: "GCounter",
  pncounter: "PNCounter",
  gset: "GSet",
  orset: "ORSet",
  lwwregister: "LWWRegister",
  flag: "Flag",
  ormap: "ORMap",
  vote: "Vote",
};

/** A kind for messages, with its article: "a GCounter", "an ORSet", "an empty". */
export function aKind(kind: CrdtKind | undefined): string {
  const name = kind ? kindNames[kind] : "empty";
  return /^(OR|LWW|e)/.test(name) ? `an ${name}` : `a ${name}`;
}

/** @internal What owns a root CRDT (the entity instance): it allows, records and can undo changes. */
export interface CrdtHost {
  /** Called before each local change; throws if the state may not change now. `undo` reverts the change. */
  willChange(undo: () => void): void;
}

/** @internal A CRDT that holds others (ORMap): told when one of them changes. */
export interface CrdtContainer {
  childChanged(child: Crdt, key: string): void;
  /** Whether `child` is (still) the value at `key`. */
  holds(child: Crdt, key: string): boolean;
}

/**
 * A replicated data type. The subclasses are GCounter, PNCounter, GSet, ORSet, LWWRegister, Flag,
 * ORMap and Vote; the entity's `ctx.state` is one of them. Change them only in a command handler
 * (or `onStreamCancel`): the change is then sent with the reply, and undone if the command fails.
 */
export abstract class Crdt {
  /** The protocol's name of this CRDT type, e.g. "gcounter". */
  abstract readonly kind: CrdtKind;
  /** @internal Set on the entity's root CRDT. */
  host: CrdtHost | undefined;
  /** @internal Set on a value of an ORMap: the map and the value's key there. */
  parent: { readonly container: Crdt & CrdtContainer; readonly key: string } | undefined;

  /** @internal The change since the last reset, as a delta; undefined when there is none. */
  abstract pendingDelta(): CrdtDelta | undefined;
  /** @internal Forgets the pending change (it was sent, or undone). */
  abstract resetDelta(): void;
  /** @internal The whole state as a delta, as a new ORMap value is sent. */
  abstract fullState(): CrdtDelta;
  /** @internal Applies a delta from the proxy (another replica's change, or the initial state). */
  abstract applyDelta(delta: CrdtDelta): void;

  /** Whether this CRDT has changed since the last reply (the change the reply will carry). */
  get hasDelta(): boolean {
    return this.pendingDelta() !== undefined;
  }

  /** Mutators call this before they change anything: it may throw, and then nothing changed. */
  protected willChange(undo: () => void): void {
    rootOf(this).host?.willChange(undo);
    markChanged(this);
  }

  /** The `kind` part of a delta from the proxy; a delta of another kind breaks the protocol. */
  protected deltaOf<K extends CrdtKind>(delta: CrdtDelta, kind: K): DeltaOf<K> {
    if (delta.delta.case !== kind) {
      throw new ProtocolError(`received ${aKind(delta.delta.case)} delta for ${aKind(kind)}`);
    }
    return delta.delta.value as DeltaOf<K>;
  }
}

/** The CRDT at the top of the ORMaps holding `crdt` (itself if none does). */
function rootOf(crdt: Crdt): Crdt {
  while (crdt.parent) crdt = crdt.parent.container;
  return crdt;
}

/** Tells each ORMap above `crdt` that the value it holds changed. */
function markChanged(crdt: Crdt): void {
  for (let parent = crdt.parent; parent; crdt = parent.container, parent = crdt.parent) parent.container.childChanged(crdt, parent.key);
}

/** @internal Checks a count given to a counter: a whole number (or bigint); returns it as a bigint. */
export function wholeNumber(what: string, n: number | bigint): bigint {
  if (typeof n === "bigint") return n;
  if (typeof n !== "number" || !Number.isSafeInteger(n)) throw new TypeError(`${what} takes a whole number, got ${String(n)}`);
  return BigInt(n);
}
