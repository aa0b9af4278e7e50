// ORMap: a map from Any keys to CRDT values, with observed-remove keys (add-wins, like ORSet).
// Each write of a key (add or update) by a node is a dot carrying the value it produced; a key's
// value is the join of the values of its live dots, so concurrent updates on two nodes merge,
// and a remove drops the values it has seen: a key added again later starts from an empty value.
// Leniencies for races with other replicas: `added` for an existing key updates it, `updated` for a
// missing key adds it; a value of another type than the key's current one is a protocol error.
import type { Any } from "@bufbuild/protobuf/wkt";
import type { CrdtDelta, ORMapEntryDelta } from "@cloudstate-ts/protocol";
import {
  anyKey,
  byKey,
  copyAny,
  CRDT_KINDS,
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
import { decodeCrdt, emptyCrdt, encodeCrdt, kindOf } from "./crdt-state.js";
import {
  decodeNodeCounter,
  decodeVersionVector,
  encodeVersionVector,
  mergeDots,
  mergeVersionVectors,
  nextDot,
  type Dots,
  type VersionVector,
} from "./dots.js";

interface Entry {
  readonly key: Any;
  /** Dot payloads are never mutated once written, so clones of the map share them. */
  readonly dots: Dots<Crdt>;
  /** The join of the dots' values, computed on first use. */
  value?: Crdt;
}

export class ORMap implements Crdt {
  readonly kind = "ormap";

  constructor(
    private readonly vv: VersionVector = new Map(),
    private readonly entries = new Map<string, Entry>(),
  ) {}

  /** The live keys with their values, in key order. */
  view(): [Any, Crdt][] {
    return byKey(this.entries).map(([, e]) => [e.key, valueOf(e)]);
  }

  check(delta: CrdtDelta, ctx: ReplicaContext): void {
    const { cleared, removed, updated, added } = expectKind(delta, "ormap");
    const gone = new Set(cleared ? this.entries.keys() : removed.map(anyKey));
    const written = new Set<string>();
    for (const [list, entry] of [...updated.map((e) => ["updated", e] as const), ...added.map((e) => ["added", e] as const)]) {
      if (entry.key === undefined) throw new CrdtDeltaError(`an ORMap ${list} entry has no key`);
      const key = anyKey(entry.key);
      const where = `ORMap key ${describeKey(entry.key)}`;
      if (written.has(key)) throw new CrdtDeltaError(`${where} appears more than once in the updated and added entries of one delta`);
      written.add(key);
      if (entry.delta === undefined || entry.delta.delta.case === undefined) throw new CrdtDeltaError(`${where}: the ${list} entry has no delta`);
      const existing = gone.has(key) ? undefined : this.entries.get(key);
      const target = existing ? valueOf(existing) : emptyCrdt(kindOf(entry.delta));
      try {
        target.check(entry.delta, ctx);
      } catch (e) {
        if (e instanceof CrdtDeltaError) throw new CrdtDeltaError(`${where}: ${e.message}`);
        throw e;
      }
    }
  }

  /** In the SDKs' order: clear, removes, updates, adds. */
  apply(delta: CrdtDelta, ctx: ReplicaContext): void {
    const { cleared, removed, updated, added } = expectKind(delta, "ormap");
    if (cleared) this.entries.clear();
    for (const key of removed) this.entries.delete(anyKey(key));
    for (const entry of [...updated, ...added]) this.write(entry, ctx);
  }

  private write(entry: ORMapEntryDelta, ctx: ReplicaContext): void {
    const key = anyKey(entry.key!);
    const existing = this.entries.get(key);
    const value = existing ? valueOf(existing).clone() : emptyCrdt(kindOf(entry.delta!));
    value.apply(entry.delta!, ctx);
    const counter = nextDot(this.vv, ctx.node);
    this.entries.set(key, { key: existing?.key ?? copyAny(entry.key!), dots: new Map([[ctx.node, { counter, payload: value }]]), value });
  }

  toDelta(ctx: ReplicaContext): CrdtDelta {
    return deltaOf({ case: "ormap", value: { added: this.view().map(([key, value]) => ({ key, delta: value.toDelta(ctx) })) } });
  }

  mergeFrom(other: Crdt): void {
    const o = other as ORMap;
    for (const key of new Set([...this.entries.keys(), ...o.entries.keys()])) {
      const mine = this.entries.get(key);
      const theirs = o.entries.get(key);
      const dots = mergeDots(mine?.dots, this.vv, theirs?.dots, o.vv);
      if (dots.size === 0) this.entries.delete(key);
      else this.entries.set(key, { key: (mine ?? theirs)!.key, dots });
    }
    mergeVersionVectors(this.vv, o.vv);
  }

  deltaFrom(before: Crdt, ctx: ReplicaContext): CrdtDelta | undefined {
    const old = (before as ORMap).entries;
    const removed: Any[] = [];
    const updated: { key: Any; delta: CrdtDelta }[] = [];
    const added: { key: Any; delta: CrdtDelta }[] = [];
    for (const [key, entry] of byKey(old)) {
      const now = this.entries.get(key);
      if (now === undefined) {
        removed.push(entry.key);
        continue;
      }
      const a = valueOf(entry);
      const b = valueOf(now);
      if (a.kind !== b.kind) {
        // Two replicas wrote values of different types; the join kept the other one.
        removed.push(entry.key);
        added.push({ key: now.key, delta: b.toDelta(ctx) });
        continue;
      }
      const delta = b.deltaFrom(a, ctx);
      if (delta === RESET) {
        // The key was removed and written again elsewhere: the user function starts it afresh.
        removed.push(entry.key);
        added.push({ key: now.key, delta: b.toDelta(ctx) });
      } else if (delta) {
        updated.push({ key: now.key, delta });
      }
    }
    for (const [key, entry] of byKey(this.entries)) {
      if (!old.has(key)) added.push({ key: entry.key, delta: valueOf(entry).toDelta(ctx) });
    }
    if (removed.length === 0 && updated.length === 0 && added.length === 0) return undefined;
    const cleared = removed.length > 0 && removed.length === old.size;
    return deltaOf({ case: "ormap", value: { cleared, removed: cleared ? [] : removed, updated, added } });
  }

  clone(): ORMap {
    const entries = new Map<string, Entry>();
    for (const [k, e] of this.entries) entries.set(k, { key: e.key, dots: new Map(e.dots), value: e.value });
    return new ORMap(new Map(this.vv), entries);
  }

  encode(): unknown {
    return {
      vv: encodeVersionVector(this.vv),
      entries: byKey(this.entries).map(([, e]) => ({
        key: encodeAny(e.key),
        dots: byKey(e.dots).map(([node, dot]) => [node, dot.counter, encodeCrdt(dot.payload)]),
      })),
    };
  }

  static decode(json: unknown): ORMap {
    const vv = decodeVersionVector(field(json, "vv", "ormap"), "ormap.vv");
    const list = field(json, "entries", "ormap");
    if (!Array.isArray(list)) throw new CrdtStateError("ormap.entries: expected a list");
    const entries = new Map<string, Entry>();
    for (const e of list) {
      const key = decodeAny(field(e, "key", "ormap.entries"), "ormap.entries.key");
      const dotList = field(e, "dots", "ormap.entries");
      if (!Array.isArray(dotList) || dotList.length === 0) throw new CrdtStateError("ormap.entries.dots: expected a non-empty list");
      const dots: Dots<Crdt> = new Map();
      for (const d of dotList) {
        if (!Array.isArray(d) || d.length !== 3) throw new CrdtStateError("ormap.entries.dots: expected [node, counter, value]");
        const [node, counter] = decodeNodeCounter(d, "ormap.entries.dots");
        dots.set(node, { counter, payload: decodeCrdt(d[2]) });
      }
      entries.set(anyKey(key), { key, dots });
    }
    return new ORMap(vv, entries);
  }
}

/**
 * A key's value: the join of its live dots' values. Should concurrent writes have given the key
 * values of different types, the type later in CRDT_KINDS wins (any fixed choice keeps joins
 * commutative and associative).
 */
function valueOf(entry: Entry): Crdt {
  if (entry.value) return entry.value;
  const payloads = [...entry.dots.values()].map((d) => d.payload);
  const kind = payloads.reduce((k, p) => (CRDT_KINDS.indexOf(p.kind) > CRDT_KINDS.indexOf(k) ? p.kind : k), payloads[0]!.kind);
  const same = payloads.filter((p) => p.kind === kind);
  let value = same[0]!;
  if (same.length > 1) {
    value = value.clone();
    for (const p of same.slice(1)) value.mergeFrom(p);
  }
  entry.value = value;
  return value;
}

function describeKey(key: Any): string {
  const type = key.typeUrl.slice(key.typeUrl.lastIndexOf("/") + 1) || "(no type)";
  return `${type}:${Buffer.from(key.value.buffer, key.value.byteOffset, key.value.byteLength).toString("base64")}`;
}
