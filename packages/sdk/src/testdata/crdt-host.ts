// For the CRDT types' unit tests: a stand-in for the entity that holds a CRDT (it allows changes
// only while "in a handler", records their undos, and rolls back as a failed command does), and
// delta assertions.
import assert from "node:assert/strict";
import type { CrdtDelta } from "@cloudstate-ts/protocol";
import type { Crdt } from "../crdt/types/crdt.js";
import { crdtDelta } from "../testing/crdt-delta.js";

export interface TestHost {
  /** Whether changes are allowed (as in a command handler). */
  writable: boolean;
  /** Undoes the changes since the last commit, as for a failed command. */
  rollback(): void;
  /** Takes the pending delta (and resets it), as a reply does. */
  commit(): CrdtDelta | undefined;
}

export function hosted(crdt: Crdt): TestHost {
  let undo: (() => void)[] = [];
  const host: TestHost = {
    writable: true,
    rollback() {
      for (const u of undo.reverse()) u();
      undo = [];
      crdt.resetDelta();
    },
    commit() {
      const delta = crdt.pendingDelta();
      crdt.resetDelta();
      undo = [];
      return delta;
    },
  };
  crdt.host = {
    willChange(u) {
      if (!host.writable) throw new Error("read-only");
      undo.push(u);
    },
  };
  return host;
}

export function assertDelta(actual: CrdtDelta | undefined, expected: CrdtDelta | undefined, message = ""): void {
  assert.ok(
    crdtDelta.equals(actual, expected),
    `${message ? `${message}: ` : ""}expected ${crdtDelta.describe(expected)}\n     got ${crdtDelta.describe(actual)}`,
  );
}
