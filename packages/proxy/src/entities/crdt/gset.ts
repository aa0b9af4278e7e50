// GSet: a grow-only set of Any values (identity: type URL and bytes); the join is the union.
import type { Any } from "@bufbuild/protobuf/wkt";
import type { CrdtDelta } from "@cloudstate-ts/protocol";
import { anyKey, byKey, copyAny, CrdtStateError, decodeAny, deltaOf, encodeAny, expectKind, field, RESET, type Crdt } from "./crdt.js";

export class GSet implements Crdt {
  readonly kind = "gset";

  constructor(private readonly elements = new Map<string, Any>()) {}

  values(): Any[] {
    return byKey(this.elements).map(([, v]) => v);
  }

  check(delta: CrdtDelta): void {
    expectKind(delta, "gset");
  }

  apply(delta: CrdtDelta): void {
    for (const element of expectKind(delta, "gset").added) {
      const key = anyKey(element);
      if (!this.elements.has(key)) this.elements.set(key, copyAny(element));
    }
  }

  toDelta(): CrdtDelta {
    return deltaOf({ case: "gset", value: { added: this.values() } });
  }

  mergeFrom(other: Crdt): void {
    for (const [key, element] of (other as GSet).elements) {
      if (!this.elements.has(key)) this.elements.set(key, element);
    }
  }

  deltaFrom(before: Crdt): CrdtDelta | undefined | typeof RESET {
    const old = (before as GSet).elements;
    for (const key of old.keys()) if (!this.elements.has(key)) return RESET;
    const added = byKey(this.elements).filter(([k]) => !old.has(k)).map(([, v]) => v);
    return added.length > 0 ? deltaOf({ case: "gset", value: { added } }) : undefined;
  }

  clone(): GSet {
    // Elements are never mutated, so they can be shared.
    return new GSet(new Map(this.elements));
  }

  encode(): unknown {
    return { elements: this.values().map(encodeAny) };
  }

  static decode(json: unknown): GSet {
    const list = field(json, "elements", "gset");
    if (!Array.isArray(list)) throw new CrdtStateError("gset.elements: expected a list");
    const elements = new Map<string, Any>();
    for (const e of list) {
      const any = decodeAny(e, "gset.elements");
      elements.set(anyKey(any), any);
    }
    return new GSet(elements);
  }
}
