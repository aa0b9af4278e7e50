// A CRDT entity's state as a whole: creating a CRDT from the user function's first delta, joining
// replicas' states (also of different types), and the stored encoding.
//
// Encoding: UTF-8 JSON under the type URL STATE_TYPE_URL, `{"kind": "...", "state": {...}}`, with
// counters as decimal strings, Any values as [typeUrl, base64] and every map as a sorted list, so
// equal states have equal bytes. JSON rather than a private protobuf: readable in the console and
// in the database, and the states are small next to the cost of a write.
import type { CrdtDelta } from "@cloudstate-ts/protocol";
import type { StoredPayload } from "../../store/store.js";
import { CRDT_KINDS, CrdtDeltaError, CrdtStateError, field, type Crdt, type CrdtKind } from "./crdt.js";
import { Flag } from "./flag.js";
import { GCounter } from "./gcounter.js";
import { GSet } from "./gset.js";
import { LWWRegister } from "./lwwregister.js";
import { ORMap } from "./ormap.js";
import { ORSet } from "./orset.js";
import { PNCounter } from "./pncounter.js";
import { Vote } from "./vote.js";

export const STATE_TYPE_URL = "cloudstate-ts/crdt-state/v1";

const decoders: Record<CrdtKind, (json: unknown) => Crdt> = {
  gcounter: GCounter.decode,
  pncounter: PNCounter.decode,
  gset: GSet.decode,
  orset: ORSet.decode,
  lwwregister: LWWRegister.decode,
  flag: Flag.decode,
  ormap: ORMap.decode,
  vote: Vote.decode,
};

export function emptyCrdt(kind: CrdtKind): Crdt {
  switch (kind) {
    case "gcounter":
      return new GCounter();
    case "pncounter":
      return new PNCounter();
    case "gset":
      return new GSet();
    case "orset":
      return new ORSet();
    case "lwwregister":
      return new LWWRegister();
    case "flag":
      return new Flag();
    case "ormap":
      return new ORMap();
    case "vote":
      return new Vote();
  }
}

/** The kind of CRDT a delta is for; an empty delta is a protocol error. */
export function kindOf(delta: CrdtDelta): CrdtKind {
  const kind = delta.delta.case;
  if (kind === undefined) throw new CrdtDeltaError("the delta is empty: it sets none of the CRDT types");
  return kind;
}

/**
 * The join of two states, as a new state. States of different kinds (two replicas created the
 * entity with different types) join to the one whose kind comes later in CRDT_KINDS.
 */
export function mergeCrdts(a: Crdt, b: Crdt): Crdt {
  if (a.kind !== b.kind) return (CRDT_KINDS.indexOf(a.kind) > CRDT_KINDS.indexOf(b.kind) ? a : b).clone();
  const merged = a.clone();
  merged.mergeFrom(b);
  return merged;
}

export function encodeCrdt(crdt: Crdt): unknown {
  return { kind: crdt.kind, state: crdt.encode() };
}

export function decodeCrdt(json: unknown): Crdt {
  const kind = field(json, "kind", "crdt");
  if (typeof kind !== "string" || !(CRDT_KINDS as readonly string[]).includes(kind)) {
    throw new CrdtStateError(`crdt: unknown kind ${JSON.stringify(kind)}`);
  }
  return decoders[kind as CrdtKind](field(json, "state", "crdt"));
}

export function encodeState(crdt: Crdt): StoredPayload {
  return { typeUrl: STATE_TYPE_URL, bytes: new Uint8Array(Buffer.from(JSON.stringify(encodeCrdt(crdt)), "utf8")) };
}

export function decodeState(payload: StoredPayload): Crdt {
  if (payload.typeUrl !== STATE_TYPE_URL) {
    throw new CrdtStateError(`the stored CRDT state has type ${JSON.stringify(payload.typeUrl)}; this proxy reads ${STATE_TYPE_URL}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(payload.bytes.buffer, payload.bytes.byteOffset, payload.bytes.byteLength).toString("utf8"));
  } catch (e) {
    throw new CrdtStateError(`the stored CRDT state is not valid JSON: ${(e as Error).message}`);
  }
  return decodeCrdt(json);
}
