// Causal bookkeeping shared by ORSet and ORMap (add-wins observed-remove semantics). Each replica
// keeps a version vector (for every node, the highest change counter it has seen from it), and each
// live element the dots (node, counter) of the adds that put it there. A node's new add of an
// element replaces the element's dots with one new dot, so an element has at most one dot per node.
// A join keeps a dot that both sides hold, or that one side holds and the other has not seen yet:
// a dot the other side has seen but no longer holds was removed there.
import { byKey, CrdtStateError } from "./crdt.js";

export type VersionVector = Map<string, number>;

export interface Dot<P> {
  readonly counter: number;
  readonly payload: P;
}

/** node → the element's dot from that node. */
export type Dots<P> = Map<string, Dot<P>>;

/** The next counter of `node`, recorded in the version vector. */
export function nextDot(vv: VersionVector, node: string): number {
  const counter = (vv.get(node) ?? 0) + 1;
  vv.set(node, counter);
  return counter;
}

export function mergeVersionVectors(into: VersionVector, from: VersionVector): void {
  for (const [node, counter] of from) if (counter > (into.get(node) ?? 0)) into.set(node, counter);
}

/** The join of one element's dots on two replicas; empty when the element is removed. */
export function mergeDots<P>(mine: Dots<P> | undefined, myVv: VersionVector, theirs: Dots<P> | undefined, theirVv: VersionVector): Dots<P> {
  const out: Dots<P> = new Map();
  const nodes = new Set([...(mine?.keys() ?? []), ...(theirs?.keys() ?? [])]);
  for (const node of nodes) {
    const a = mine?.get(node);
    const b = theirs?.get(node);
    if (a !== undefined && b !== undefined && a.counter === b.counter) {
      out.set(node, a);
      continue;
    }
    const keepA = a !== undefined && a.counter > (theirVv.get(node) ?? 0);
    const keepB = b !== undefined && b.counter > (myVv.get(node) ?? 0);
    // Well-formed states never keep both (each side has seen its own dots); the higher is the newer.
    if (keepA && (!keepB || a.counter > b!.counter)) out.set(node, a);
    else if (keepB) out.set(node, b);
  }
  return out;
}

export function encodeVersionVector(vv: VersionVector): [string, number][] {
  return byKey(vv);
}

export function decodeVersionVector(json: unknown, where: string): VersionVector {
  if (!Array.isArray(json)) throw new CrdtStateError(`${where}: expected a list of [node, counter]`);
  const vv: VersionVector = new Map();
  for (const entry of json) vv.set(...decodeNodeCounter(entry, where));
  return vv;
}

export function decodeNodeCounter(entry: unknown, where: string): [string, number] {
  if (!Array.isArray(entry) || typeof entry[0] !== "string" || !Number.isSafeInteger(entry[1]) || (entry[1] as number) < 1) {
    throw new CrdtStateError(`${where}: expected [node, positive counter]`);
  }
  return [entry[0], entry[1] as number];
}
