// ORSet: an observed-remove set of Any values with add-wins semantics: a remove takes away the
// adds it has seen, so an add concurrent with a remove (or a clear) survives.
import type { Any } from "@bufbuild/protobuf/wkt";
import type { CrdtDelta } from "@cloudstate-ts/protocol";
import { anyKey, byKey, copyAny, CrdtStateError, decodeAny, deltaOf, encodeAny, expectKind, field, type Crdt, type ReplicaContext } from "./crdt.js";
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

interface Element {
  readonly value: Any;
  dots: Dots<undefined>;
}

export class ORSet implements Crdt {
  readonly kind = "orset";

  constructor(
    private readonly vv: VersionVector = new Map(),
    private readonly elements = new Map<string, Element>(),
  ) {}

  values(): Any[] {
    return byKey(this.elements).map(([, e]) => e.value);
  }

  check(delta: CrdtDelta): void {
    expectKind(delta, "orset");
  }

  /** In the SDKs' order: clear, then removes, then adds. Removing an absent element is a no-op. */
  apply(delta: CrdtDelta, ctx: ReplicaContext): void {
    const { cleared, removed, added } = expectKind(delta, "orset");
    if (cleared) this.elements.clear();
    for (const element of removed) this.elements.delete(anyKey(element));
    for (const element of added) {
      const key = anyKey(element);
      const counter = nextDot(this.vv, ctx.node);
      const existing = this.elements.get(key);
      const dots: Dots<undefined> = new Map([[ctx.node, { counter, payload: undefined }]]);
      if (existing) existing.dots = dots;
      else this.elements.set(key, { value: copyAny(element), dots });
    }
  }

  toDelta(): CrdtDelta {
    return deltaOf({ case: "orset", value: { added: this.values() } });
  }

  mergeFrom(other: Crdt): void {
    const o = other as ORSet;
    for (const key of new Set([...this.elements.keys(), ...o.elements.keys()])) {
      const mine = this.elements.get(key);
      const theirs = o.elements.get(key);
      const dots = mergeDots(mine?.dots, this.vv, theirs?.dots, o.vv);
      if (dots.size === 0) this.elements.delete(key);
      else if (mine) mine.dots = dots;
      else this.elements.set(key, { value: theirs!.value, dots });
    }
    mergeVersionVectors(this.vv, o.vv);
  }

  deltaFrom(before: Crdt): CrdtDelta | undefined {
    const old = (before as ORSet).elements;
    const added = byKey(this.elements).filter(([k]) => !old.has(k)).map(([, e]) => e.value);
    const gone = byKey(old).filter(([k]) => !this.elements.has(k)).map(([, e]) => e.value);
    if (added.length === 0 && gone.length === 0) return undefined;
    // Everything the user function knew is gone: one "cleared" says it shortest.
    const cleared = gone.length > 0 && gone.length === old.size;
    return deltaOf({ case: "orset", value: { cleared, removed: cleared ? [] : gone, added } });
  }

  clone(): ORSet {
    const elements = new Map<string, Element>();
    for (const [k, e] of this.elements) elements.set(k, { value: e.value, dots: new Map(e.dots) });
    return new ORSet(new Map(this.vv), elements);
  }

  encode(): unknown {
    return {
      vv: encodeVersionVector(this.vv),
      elements: byKey(this.elements).map(([, e]) => ({ value: encodeAny(e.value), dots: byKey(e.dots).map(([n, d]) => [n, d.counter]) })),
    };
  }

  static decode(json: unknown): ORSet {
    const vv = decodeVersionVector(field(json, "vv", "orset"), "orset.vv");
    const list = field(json, "elements", "orset");
    if (!Array.isArray(list)) throw new CrdtStateError("orset.elements: expected a list");
    const elements = new Map<string, Element>();
    for (const e of list) {
      const value = decodeAny(field(e, "value", "orset.elements"), "orset.elements.value");
      const dotList = field(e, "dots", "orset.elements");
      if (!Array.isArray(dotList) || dotList.length === 0) throw new CrdtStateError("orset.elements.dots: expected a non-empty list");
      const dots: Dots<undefined> = new Map();
      for (const d of dotList) {
        const [node, counter] = decodeNodeCounter(d, "orset.elements.dots");
        dots.set(node, { counter, payload: undefined });
      }
      elements.set(anyKey(value), { value, dots });
    }
    return new ORSet(vv, elements);
  }
}
