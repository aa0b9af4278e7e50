// Builders of the CRDT model's requests and states (proto/cloudstate/tck/model/crdt.proto), shared by
// both directions' tests: `up.gcounter(5)` is an Update, `st.gcounter(5)` the State it reads as.
import { create, toJson, type JsonValue, type MessageInitShape } from "@bufbuild/protobuf";
import {
  ClockType,
  StateSchema,
  WriteConsistency,
  type EffectSchema,
  type RequestActionSchema,
  type State,
  type UpdateSchema,
} from "../gen/cloudstate/tck/model/crdt_pb.js";

export type UpdateInit = MessageInitShape<typeof UpdateSchema>;
export type StateInit = MessageInitShape<typeof StateSchema>;
export type ActionInit = MessageInitShape<typeof RequestActionSchema>;
export type EffectInit = MessageInitShape<typeof EffectSchema>;

/** Updates, one per CRDT operation. */
export const up = {
  gcounter: (increment: number): UpdateInit => ({ update: { case: "gcounter", value: { increment: BigInt(increment) } } }),
  pncounter: (change: number): UpdateInit => ({ update: { case: "pncounter", value: { change: BigInt(change) } } }),
  gset: (add: string): UpdateInit => ({ update: { case: "gset", value: { add } } }),
  orsetAdd: (add: string): UpdateInit => ({ update: { case: "orset", value: { action: { case: "add", value: add } } } }),
  orsetRemove: (remove: string): UpdateInit => ({ update: { case: "orset", value: { action: { case: "remove", value: remove } } } }),
  orsetClear: (): UpdateInit => ({ update: { case: "orset", value: { action: { case: "clear", value: true } } } }),
  lww: (value: string, clockType = ClockType.DEFAULT, customClockValue = 0): UpdateInit => ({
    update: { case: "lwwregister", value: { value, clock: { clockType, customClockValue: BigInt(customClockValue) } } },
  }),
  flag: (): UpdateInit => ({ update: { case: "flag", value: {} } }),
  ormapAdd: (key: string): UpdateInit => ({ update: { case: "ormap", value: { action: { case: "add", value: key } } } }),
  ormapUpdate: (key: string, update: UpdateInit): UpdateInit => ({ update: { case: "ormap", value: { action: { case: "update", value: { key, update } } } } }),
  ormapRemove: (key: string): UpdateInit => ({ update: { case: "ormap", value: { action: { case: "remove", value: key } } } }),
  ormapClear: (): UpdateInit => ({ update: { case: "ormap", value: { action: { case: "clear", value: true } } } }),
  vote: (selfVote: boolean): UpdateInit => ({ update: { case: "vote", value: { selfVote } } }),
  /** The same update with a write consistency. */
  consistent: (update: UpdateInit, writeConsistency: WriteConsistency): UpdateInit => ({ ...update, writeConsistency }),
};

/** Request actions. */
export const act = {
  update: (update: UpdateInit): ActionInit => ({ action: { case: "update", value: update } }),
  delete: (): ActionInit => ({ action: { case: "delete", value: {} } }),
  forward: (id: string): ActionInit => ({ action: { case: "forward", value: { id } } }),
  effect: (id: string, synchronous = false): ActionInit => ({ action: { case: "effect", value: { id, synchronous } } }),
  fail: (message: string): ActionInit => ({ action: { case: "fail", value: { message } } }),
};

/** States, as Response.state reads. */
export const st = {
  gcounter: (value: number): StateInit => ({ value: { case: "gcounter", value: { value: BigInt(value) } } }),
  pncounter: (value: number): StateInit => ({ value: { case: "pncounter", value: { value: BigInt(value) } } }),
  gset: (...elements: string[]): StateInit => ({ value: { case: "gset", value: { elements } } }),
  orset: (...elements: string[]): StateInit => ({ value: { case: "orset", value: { elements } } }),
  lww: (value: string): StateInit => ({ value: { case: "lwwregister", value: { value } } }),
  flag: (value: boolean): StateInit => ({ value: { case: "flag", value: { value } } }),
  ormap: (...entries: [key: string, value: StateInit][]): StateInit => ({
    value: { case: "ormap", value: { entries: entries.map(([key, value]) => ({ key, value })) } },
  }),
  vote: (selfVote: boolean, votesFor: number, totalVoters: number): StateInit => ({ value: { case: "vote", value: { selfVote, votesFor, totalVoters } } }),
};

/** A state as proto3 JSON, for deepEqual with readable diffs. */
export const stateJson = (state: State | StateInit | undefined): JsonValue =>
  state === undefined ? null : toJson(StateSchema, create(StateSchema, state as StateInit));

export { ClockType, WriteConsistency };
