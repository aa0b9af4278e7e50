// ORMap: an observed-remove map whose values are CRDTs. Keys are added and removed like the
// elements of an ORSet; a value changes by its own operations, and replicas merge it by its type.
import { create } from "@bufbuild/protobuf";
import type { Any } from "@bufbuild/protobuf/wkt";
import { CrdtDeltaSchema, type CrdtDelta } from "@cloudstate-ts/protocol";
import { ProtocolError } from "../../errors.js";
import { Crdt, aKind, type CrdtContainer } from "./crdt.js";
import { codecOf, describeValue, type Codec, type Encoded, type ValueInit, type ValueOf, type ValueType } from "./values.js";

interface Entry<V> {
  readonly key: Encoded;
  readonly value: V;
}

/**
 * A map from `K` keys (a message schema or a primitive, see `ValueType`) to CRDT values. `create`
 * makes the value of a new key: for `getOrCreate`, and for the keys other replicas add (so it must
 * return a new CRDT of the same type for a key every time).
 */
export class ORMap<K extends ValueType, V extends Crdt> extends Crdt implements CrdtContainer, Iterable<[ValueOf<K>, V]> {
  readonly kind = "ormap";
  private readonly codec: Codec;
  private map = new Map<string, Entry<V>>();
  // The pending delta, applied by the proxy in this order: clear, remove, update, add.
  private cleared = false;
  private readonly removed = new Map<string, Any>();
  private readonly updated = new Set<string>();
  private readonly added = new Set<string>();

  constructor(
    readonly keyType: K,
    private readonly create: (key: ValueOf<K>) => V,
  ) {
    super();
    this.codec = codecOf(keyType);
    if (typeof create !== "function") throw new TypeError("new ORMap(keyType, create): create must make the value of a new key");
  }

  get size(): number {
    return this.map.size;
  }

  has(key: ValueInit<K>): boolean {
    return this.map.has(this.codec.encode(key).key);
  }

  /** The value at `key`, if there is one. */
  get(key: ValueInit<K>): V | undefined {
    return this.map.get(this.codec.encode(key).key)?.value;
  }

  /** The value at `key`; a new one (made by `create`) if there is none. */
  getOrCreate(key: ValueInit<K>): V {
    const encoded = this.codec.encode(key);
    const existing = this.map.get(encoded.key);
    if (existing) return existing.value;
    const value = this.newValue(encoded);
    this.put(encoded, value);
    return value;
  }

  /** Puts `value` at `key`, replacing the value there (a new CRDT: the old one's state is gone). */
  set(key: ValueInit<K>, value: V): this {
    if (!(value instanceof Crdt)) throw new TypeError(`ORMap.set() takes a CRDT value, got ${describeValue(value)}`);
    const encoded = this.codec.encode(key);
    if (this.map.get(encoded.key)?.value === value) return this;
    if (value.host) throw new TypeError("the entity's CRDT cannot be a value in an ORMap");
    if (value.parent?.container.holds(value, value.parent.key)) throw new TypeError("this CRDT is already a value in an ORMap");
    if ((value as Crdt) === this || this.within(value)) throw new TypeError("an ORMap cannot hold itself");
    this.put(encoded, value);
    return this;
  }

  /** Removes `key` and its value; returns whether it was there. */
  delete(key: ValueInit<K>): boolean {
    const { key: id } = this.codec.encode(key);
    const existing = this.map.get(id);
    if (!existing) return false;
    this.willChange(() => this.map.set(id, existing));
    this.map.delete(id);
    this.updated.delete(id);
    if (!this.added.delete(id)) this.removed.set(id, existing.key.any);
    return true;
  }

  /** Removes every key. */
  clear(): void {
    if (this.map.size === 0) return;
    const before = this.map;
    this.willChange(() => {
      this.map = before;
    });
    this.map = new Map();
    this.cleared = true;
    this.removed.clear();
    this.updated.clear();
    this.added.clear();
  }

  *keys(): IterableIterator<ValueOf<K>> {
    for (const { key } of this.map.values()) yield key.value as ValueOf<K>;
  }

  *values(): IterableIterator<V> {
    for (const { value } of this.map.values()) yield value;
  }

  *entries(): IterableIterator<[ValueOf<K>, V]> {
    for (const { key, value } of this.map.values()) yield [key.value as ValueOf<K>, value];
  }

  [Symbol.iterator](): IterableIterator<[ValueOf<K>, V]> {
    return this.entries();
  }

  /** @internal */
  childChanged(child: Crdt, key: string): void {
    if (this.holds(child, key) && !this.added.has(key)) this.updated.add(key);
  }

  /** @internal */
  holds(child: Crdt, key: string): boolean {
    return this.map.get(key)?.value === child;
  }

  /** @internal */
  pendingDelta(): CrdtDelta | undefined {
    const updated = [];
    for (const id of this.updated) {
      const entry = this.map.get(id);
      const delta = entry?.value.pendingDelta();
      if (entry && delta) updated.push({ key: entry.key.any, delta });
    }
    if (!this.cleared && this.removed.size === 0 && updated.length === 0 && this.added.size === 0) return undefined;
    const added = [...this.added].map((id) => {
      const { key, value } = this.map.get(id)!;
      return { key: key.any, delta: value.fullState() };
    });
    return create(CrdtDeltaSchema, {
      delta: { case: "ormap", value: { cleared: this.cleared, removed: [...this.removed.values()], updated, added } },
    });
  }

  /** @internal */
  resetDelta(): void {
    this.cleared = false;
    this.removed.clear();
    this.updated.clear();
    this.added.clear();
    for (const { value } of this.map.values()) value.resetDelta();
  }

  /** @internal */
  fullState(): CrdtDelta {
    const added = [...this.map.values()].map(({ key, value }) => ({ key: key.any, delta: value.fullState() }));
    return create(CrdtDeltaSchema, { delta: { case: "ormap", value: { added } } });
  }

  /** @internal */
  applyDelta(delta: CrdtDelta): void {
    const { cleared, removed, updated, added } = this.deltaOf(delta, "ormap");
    if (cleared) this.map = new Map();
    for (const any of removed) this.map.delete(this.codec.decode(any).key);
    for (const entry of updated) {
      if (!entry.key || !entry.delta) throw new ProtocolError("received an ORMap update with no key or no delta");
      const key = this.codec.decode(entry.key);
      const existing = this.map.get(key.key);
      if (!existing) throw new ProtocolError(`received an ORMap update for key ${describeValue(key.value)}, which is not in the map`);
      existing.value.applyDelta(entry.delta);
    }
    for (const entry of added) {
      if (!entry.key || !entry.delta) throw new ProtocolError("received an ORMap entry with no key or no delta");
      const key = this.codec.decode(entry.key);
      const value = this.newValue(key);
      if (entry.delta.delta.case !== value.kind) {
        throw new ProtocolError(
          `received ${aKind(entry.delta.delta.case)} for ORMap key ${describeValue(key.value)}, where create() makes ${aKind(value.kind)}`,
        );
      }
      value.applyDelta(entry.delta);
      value.resetDelta();
      this.map.set(key.key, { key, value });
      value.parent = { container: this, key: key.key };
    }
  }

  override toString(): string {
    return `ORMap(${this.codec.name}, ${this.size} entries)`;
  }

  /** Whether `crdt` holds this map, at some depth. */
  private within(crdt: Crdt): boolean {
    for (let parent = this.parent; parent; parent = parent.container.parent) if (parent.container === crdt) return true;
    return false;
  }

  private newValue(key: Encoded): V {
    const value = this.create(key.value as ValueOf<K>);
    if (!(value instanceof Crdt)) throw new TypeError(`the ORMap's create() returned ${describeValue(value)}, not a CRDT`);
    if (value.host || value.parent?.container.holds(value, value.parent.key)) {
      throw new TypeError("the ORMap's create() must return a new CRDT each time");
    }
    return value;
  }

  private put(key: Encoded, value: V): void {
    const id = key.key;
    const existing = this.map.get(id);
    this.willChange(() => {
      if (existing) this.map.set(id, existing);
      else this.map.delete(id);
    });
    // Replacing a value the proxy has is a remove and an add.
    if (existing && !this.added.has(id)) this.removed.set(id, existing.key.any);
    this.updated.delete(id);
    this.added.add(id);
    this.map.set(id, { key, value });
    value.parent = { container: this, key: id };
  }
}
