// GSet: a set that only grows. Elements are messages or primitives (see values.ts).
import { create } from "@bufbuild/protobuf";
import { CrdtDeltaSchema, type CrdtDelta } from "@cloudstate-ts/protocol";
import { Crdt } from "./crdt.js";
import { codecOf, type Codec, type Encoded, type ValueInit, type ValueOf, type ValueType } from "./values.js";

/** A grow-only set of `T` values: a message schema (`new GSet(ItemSchema)`) or a primitive (`new GSet("string")`). */
export class GSet<T extends ValueType> extends Crdt implements Iterable<ValueOf<T>> {
  readonly kind = "gset";
  private readonly codec: Codec;
  private readonly elements = new Map<string, Encoded>();
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
    this.added.set(element.key, element);
    return this;
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
    if (this.added.size === 0) return undefined;
    return create(CrdtDeltaSchema, { delta: { case: "gset", value: { added: [...this.added.values()].map((e) => e.any) } } });
  }

  /** @internal */
  resetDelta(): void {
    this.added.clear();
  }

  /** @internal */
  fullState(): CrdtDelta {
    return create(CrdtDeltaSchema, { delta: { case: "gset", value: { added: [...this.elements.values()].map((e) => e.any) } } });
  }

  /** @internal */
  applyDelta(delta: CrdtDelta): void {
    for (const any of this.deltaOf(delta, "gset").added) {
      const element = this.codec.decode(any);
      if (!this.elements.has(element.key)) this.elements.set(element.key, element);
    }
  }

  override toString(): string {
    return `GSet(${this.codec.name}, ${this.size} elements)`;
  }
}
