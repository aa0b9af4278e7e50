// Builds the protocol's CRDT deltas, as the proxy sends them (the initial state, other replicas'
// changes) and as the user function should send them: for tests with the testkit or the ProxyDriver.
import { create, equals, isMessage } from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import { CrdtClock, CrdtDeltaSchema, type CrdtDelta } from "@cloudstate-ts/protocol";
import { codecOf, type PrimitiveType, type ValueInit, type ValueType } from "../crdt/types/values.js";

const primitiveUrl = "p.cloudstate.io/";

function readable(this: unknown, key: string, value: unknown): unknown {
  if (key === "$typeName") return undefined;
  if (typeof value === "bigint") return `${value}n`;
  if (value instanceof Uint8Array) return Buffer.from(value).toString("base64");
  if (isMessage(value, AnySchema)) {
    if (value.typeUrl.startsWith(primitiveUrl)) {
      const name = value.typeUrl.slice(primitiveUrl.length) as PrimitiveType;
      const decoded = codecOf(name).decode(value).value;
      return { [name]: typeof decoded === "bigint" ? `${decoded}n` : decoded instanceof Uint8Array ? Buffer.from(decoded).toString("base64") : decoded };
    }
    return { [value.typeUrl]: Buffer.from(value.value).toString("base64") };
  }
  return value;
}

type Entries<K extends ValueType> = readonly (readonly [key: ValueInit<K>, delta: CrdtDelta])[];

function anys<T extends ValueType>(type: T, values: readonly ValueInit<T>[] | undefined) {
  const codec = codecOf(type);
  return (values ?? []).map((v) => codec.encode(v).any);
}

function entries<K extends ValueType>(type: K, list: Entries<K> | undefined) {
  const codec = codecOf(type);
  return (list ?? []).map(([key, d]) => ({ key: codec.encode(key).any, delta: d }));
}

/** `CrdtDelta` builders. Elements, keys and values are typed as for the CRDTs: `crdtDelta.orset("string", { added: ["a"] })`. */
export const crdtDelta = {
  gcounter: (increment: number | bigint): CrdtDelta =>
    create(CrdtDeltaSchema, { delta: { case: "gcounter", value: { increment: BigInt(increment) } } }),
  pncounter: (change: number | bigint): CrdtDelta => create(CrdtDeltaSchema, { delta: { case: "pncounter", value: { change: BigInt(change) } } }),
  gset: <T extends ValueType>(type: T, added: readonly ValueInit<T>[]): CrdtDelta =>
    create(CrdtDeltaSchema, { delta: { case: "gset", value: { added: anys(type, added) } } }),
  orset: <T extends ValueType>(
    type: T,
    change: { cleared?: boolean; removed?: readonly ValueInit<T>[]; added?: readonly ValueInit<T>[] },
  ): CrdtDelta =>
    create(CrdtDeltaSchema, {
      delta: { case: "orset", value: { cleared: change.cleared ?? false, removed: anys(type, change.removed), added: anys(type, change.added) } },
    }),
  lwwregister: <T extends ValueType>(type: T, value: ValueInit<T>, clock: CrdtClock = CrdtClock.DEFAULT, customClockValue: number | bigint = 0): CrdtDelta =>
    create(CrdtDeltaSchema, {
      delta: { case: "lwwregister", value: { value: codecOf(type).encode(value).any, clock, customClockValue: BigInt(customClockValue) } },
    }),
  flag: (value = true): CrdtDelta => create(CrdtDeltaSchema, { delta: { case: "flag", value: { value } } }),
  /** As the proxy sends it: this replica's vote, the yes votes and the voters (the user function sends only `selfVote`). */
  vote: (tally: { selfVote?: boolean; votesFor?: number; totalVoters?: number }): CrdtDelta =>
    create(CrdtDeltaSchema, {
      delta: { case: "vote", value: { selfVote: tally.selfVote ?? false, votesFor: tally.votesFor ?? 0, totalVoters: tally.totalVoters ?? 0 } },
    }),
  ormap: <K extends ValueType>(
    keyType: K,
    change: { cleared?: boolean; removed?: readonly ValueInit<K>[]; updated?: Entries<K>; added?: Entries<K> },
  ): CrdtDelta =>
    create(CrdtDeltaSchema, {
      delta: {
        case: "ormap",
        value: {
          cleared: change.cleared ?? false,
          removed: anys(keyType, change.removed),
          updated: entries(keyType, change.updated),
          added: entries(keyType, change.added),
        },
      },
    }),
  /** The delta as readable text (primitive values decoded), for assertion messages. */
  describe: (d: CrdtDelta | undefined): string => (d === undefined ? "no delta" : JSON.stringify(d, readable)),
  /** Whether two deltas are the same (bytes compared by content, whatever their Uint8Array or Buffer class). */
  equals: (a: CrdtDelta | undefined, b: CrdtDelta | undefined): boolean =>
    a === undefined || b === undefined ? a === b : equals(CrdtDeltaSchema, a, b),
};
