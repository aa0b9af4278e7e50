// ORSet: an observed-remove set. Elements can be added and removed; an add concurrent with a remove
// of the same element wins. Elements are messages or primitives (see values.ts).
import { create } from "@bufbuild/protobuf";
import type { Any } from "@bufbuild/protobuf/wkt";
import { CrdtDeltaSchema, type CrdtDelta } from "@cloudstate-ts/protocol";
import { Crdt } from "./crdt.js";
import { codecOf, type Codec, type Encoded, type ValueInit, type ValueOf, type ValueType } from "./values.js";

/** A set of `T` values: a message schema (`new ORSet(UserSchema)`) or a primitive (`new ORSet("string")`). */
export class ORSet<T extends ValueType> extends Crdt implements Iterable<ValueOf<T>> {
  readonly kind = "orset";
  private readonly codec: Codec;
  private elements = new Map<string, Encoded>();
  // The pending delta, applied by the proxy in this order: clear, remove, add.
  private cleared = false;
  private readonly removed = new Map<string, Any>();
  private readonly added = new Map<string, Encoded>();

  constructor(readonly type: T) {
    super();
    this.codec = codecOf(type);
  }

  get size(): number {
    return this.elements.size;
  }

  has(value: ValueInit<T>): boolean {
    return this.elements.has(this.codec.encode(value).key);
  }

  /** Adds `value` (nothing happens if it is already in). */
  add(value: ValueInit<T>): this {
    const element = this.codec.encode(value);
    if (this.elements.has(element.key)) return this;
    this.willChange(() => this.elements.delete(element.key));
    this.elements.set(element.key, element);
    // Back in after a removal in this same delta: the proxy keeps the element it has.
    if (!this.removed.delete(element.key)) this.added.set(element.key, element);
    return this;
  }

  /** Removes `value`; returns whether it was in the set. */
  delete(value: ValueInit<T>): boolean {
    const key = this.codec.encode(value).key;
    const existing = this.elements.get(key);
    if (!existing) return false;
    this.willChange(() => this.elements.set(key, existing));
    this.elements.delete(key);
    if (!this.added.delete(key)) this.removed.set(key, existing.any);
    return true;
  }

  /** Removes every element. */
  clear(): void {
    if (this.elements.size === 0) return;
    const before = this.elements;
    this.willChange(() => {
      this.elements = before;
    });
    this.elements = new Map();
    this.cleared = true;
    this.removed.clear();
    this.added.clear();
  }

  /** The elements, in the order they were added here (do not modify them). */
  *values(): IterableIterator<ValueOf<T>> {
    for (const { value } of this.elements.values()) yield value as ValueOf<T>;
  }

  [Symbol.iterator](): IterableIterator<ValueOf<T>> {
    return this.values();
  }

  /** @internal */
  pendingDelta(): CrdtDelta | undefined {
    if (!this.cleared && this.removed.size === 0 && this.added.size === 0) return undefined;
    return create(CrdtDeltaSchema, {
      delta: {
        case: "orset",
        value: { cleared: this.cleared, removed: [...this.removed.values()], added: [...this.added.values()].map((e) => e.any) },
      },
    });
  }

  /** @internal */
  resetDelta(): void {
    this.cleared = false;
    this.removed.clear();
    this.added.clear();
  }

  /** @internal */
  fullState(): CrdtDelta {
    return create(CrdtDeltaSchema, { delta: { case: "orset", value: { added: [...this.elements.values()].map((e) => e.any) } } });
  }

  /** @internal */
  applyDelta(delta: CrdtDelta): void {
    const { cleared, removed, added } = this.deltaOf(delta, "orset");
    if (cleared) this.elements = new Map();
    for (const any of removed) this.elements.delete(this.codec.decode(any).key);
    for (const any of added) {
      const element = this.codec.decode(any);
      if (!this.elements.has(element.key)) this.elements.set(element.key, element);
    }
  }

  override toString(): string {
    return `ORSet(${this.codec.name}, ${this.size} elements)`;
  }
}
