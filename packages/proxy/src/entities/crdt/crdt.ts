// What every CRDT type of PROTOCOL.md §5 shares. Each type holds a replica-aware state (per-node
// counts, dots, clocks) from which the user function's view is derived. The proxy:
//   - applies the local user function's deltas (check, then apply: an invalid delta changes nothing),
//   - sends the full view as the init delta,
//   - merges other replicas' states (a join: commutative, associative, idempotent),
//   - sends the user function the view's change after a merge (deltaFrom),
//   - encodes the state for the store (canonical JSON: equal states encode to equal bytes).
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { AnySchema, type Any } from "@bufbuild/protobuf/wkt";
import { CrdtDeltaSchema, type CrdtDelta } from "@cloudstate-ts/protocol";

export type CrdtKind = NonNullable<CrdtDelta["delta"]["case"]>;

/** Every kind, in the order that also breaks ties when two replicas created different kinds. */
export const CRDT_KINDS: readonly CrdtKind[] = ["gcounter", "pncounter", "gset", "orset", "lwwregister", "flag", "ormap", "vote"];

/** Where a replica runs: its node id (local changes are recorded under it), who is live, the clock. */
export interface ReplicaContext {
  readonly node: string;
  /** Whether a node's entries count in the view (Vote counts live voters only). */
  isLive(node: string): boolean;
  /** Wall-clock milliseconds, for LWWRegister's DEFAULT and REVERSE clocks. */
  now(): bigint;
}

/**
 * A node id for this proxy process: the host name and a random suffix, new at each start (a
 * restarted node is a new replica, as in the reference implementation; its old entries stay in the
 * state and count in counters and sets, not as live voters).
 */
export function newNodeId(): string {
  return `${hostname()}-${randomBytes(6).toString("hex")}`;
}

/** A single-node replica: only this node is live. */
export function singleNode(node: string, now: () => bigint = () => BigInt(Date.now())): ReplicaContext {
  return { node, isLive: (n) => n === node, now };
}

export interface Crdt {
  readonly kind: CrdtKind;
  /** Throws CrdtDeltaError when the user function's delta is not a valid change of this CRDT. */
  check(delta: CrdtDelta, ctx: ReplicaContext): void;
  /** Applies a delta that passed check(), as a change made by ctx.node. */
  apply(delta: CrdtDelta, ctx: ReplicaContext): void;
  /** The whole view, as the init delta a user function starts from. */
  toDelta(ctx: ReplicaContext): CrdtDelta;
  /** Joins another replica's state of the same kind into this one. */
  mergeFrom(other: Crdt): void;
  /**
   * The delta that turns the view of `before` (a state of the same kind) into this one's;
   * undefined when the view did not change; RESET when no delta of the type can say the change
   * (a map's value that was removed and written again: a counter that went down, a flag reset).
   */
  deltaFrom(before: Crdt, ctx: ReplicaContext): CrdtDelta | undefined | typeof RESET;
  clone(): Crdt;
  /** A JSON value; equal states give equal values (maps sorted), so encodings can be compared. */
  encode(): unknown;
}

/** See Crdt.deltaFrom: the user function needs the whole state again. */
export const RESET: unique symbol = Symbol("reset");

/** The user function sent a delta that is not a valid change: a protocol error, nothing was changed. */
export class CrdtDeltaError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CrdtDeltaError";
  }
}

/** A stored state that cannot be decoded (corrupt, or written by an incompatible version). */
export class CrdtStateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CrdtStateError";
  }
}

/** Validates, then applies: the state is unchanged when the delta is rejected. */
export function applyLocal(crdt: Crdt, delta: CrdtDelta, ctx: ReplicaContext): void {
  crdt.check(delta, ctx);
  crdt.apply(delta, ctx);
}

export function deltaOf(delta: MessageInitShape<typeof CrdtDeltaSchema>["delta"]): CrdtDelta {
  return create(CrdtDeltaSchema, { delta });
}

export type DeltaOf<K extends CrdtKind> = Extract<CrdtDelta["delta"], { case: K }>["value"];

/** Checks a delta's type against the CRDT it is meant for. */
export function expectKind<K extends CrdtKind>(delta: CrdtDelta, kind: K): DeltaOf<K> {
  if (delta.delta.case !== kind) {
    throw new CrdtDeltaError(
      delta.delta.case === undefined
        ? `an empty delta was sent for a ${kind}`
        : `a ${delta.delta.case} delta was sent for a ${kind}: a CRDT cannot change its type`,
    );
  }
  return delta.delta.value as unknown as DeltaOf<K>;
}

// ---- Any values (set elements, map keys, register values): identity is (type URL, bytes).

/** A string that identifies an Any by its type URL and bytes, for maps and ordering. */
export function anyKey(any: Any): string {
  return `${any.typeUrl.length}:${any.typeUrl}${Buffer.from(any.value.buffer, any.value.byteOffset, any.value.byteLength).toString("base64")}`;
}

export function anyOf(typeUrl: string, value: Uint8Array): Any {
  return create(AnySchema, { typeUrl, value });
}

export function copyAny(any: Any): Any {
  return anyOf(any.typeUrl, any.value.slice());
}

export function encodeAny(any: Any): [string, string] {
  return [any.typeUrl, Buffer.from(any.value.buffer, any.value.byteOffset, any.value.byteLength).toString("base64")];
}

export function decodeAny(json: unknown, where: string): Any {
  if (!Array.isArray(json) || json.length !== 2 || typeof json[0] !== "string" || typeof json[1] !== "string") {
    throw new CrdtStateError(`${where}: expected [typeUrl, base64]`);
  }
  return anyOf(json[0], new Uint8Array(Buffer.from(json[1], "base64")));
}

/** Code-unit order of the keys: any fixed total order gives canonical encodings. */
export function byKey<T>(entries: Iterable<[string, T]>): [string, T][] {
  return [...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

// ---- Per-node counters (GCounter, PNCounter, Vote): node → count, joined by pointwise max.

export const MAX_UINT64 = (1n << 64n) - 1n;

export function mergeMax(into: Map<string, bigint>, from: ReadonlyMap<string, bigint>): void {
  for (const [node, count] of from) {
    const mine = into.get(node);
    if (mine === undefined || count > mine) into.set(node, count);
  }
}

export function sum(counts: ReadonlyMap<string, bigint>): bigint {
  let total = 0n;
  for (const c of counts.values()) total += c;
  return total;
}

export function encodeCounts(counts: ReadonlyMap<string, bigint>): [string, string][] {
  return byKey([...counts].map(([n, c]): [string, string] => [n, c.toString()]));
}

export function decodeCounts(json: unknown, where: string): Map<string, bigint> {
  if (!Array.isArray(json)) throw new CrdtStateError(`${where}: expected a list of [node, count]`);
  const counts = new Map<string, bigint>();
  for (const entry of json) {
    if (!Array.isArray(entry) || typeof entry[0] !== "string" || typeof entry[1] !== "string" || !/^\d+$/.test(entry[1])) {
      throw new CrdtStateError(`${where}: expected [node, count] with a decimal count`);
    }
    counts.set(entry[0], BigInt(entry[1]));
  }
  return counts;
}

/** Reads one field of an encoded object, failing with a clear message. */
export function field(json: unknown, name: string, where: string): unknown {
  if (typeof json !== "object" || json === null || !(name in json)) {
    throw new CrdtStateError(`${where}: missing "${name}"`);
  }
  return (json as Record<string, unknown>)[name];
}
