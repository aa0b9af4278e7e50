// "@cloudstate-ts/sdk/testing": test helpers for user functions and for the SDK itself.
export { ProxyDriver, EventSourcedStreamDriver, ValueEntityStreamDriver, ActionStreamDriver, replyOf } from "./driver.js";
export type { StreamEnd, ProxyActionOptions, EntityCommandOptions } from "./driver.js";
export { CrdtStreamDriver, crdtMessageOf } from "./driver.js";
export type { CrdtCommandOptions, CrdtOutMessages } from "./driver.js";
export { crdtTestkit, CrdtTestkit, CrdtTestkitStream } from "./crdt-testkit.js";
export type { CrdtCallOptions, CrdtCancelResult, CrdtCommandResult, CrdtFailure, CrdtStreamedResult, CrdtTestkitOptions } from "./crdt-testkit.js";
export { crdtDelta } from "./crdt-delta.js";
export { testkit, EventSourcedTestkit, ValueEntityTestkit, ActionTestkit } from "./testkit.js";
export type {
  CommandResult,
  TestkitOptions,
  ValueCommandResult,
  ValueEntityTestkitOptions,
  ActionResult,
  ActionTestkitOptions,
  ActionCallOptions,
  ActionStreamOptions,
  CallOptions,
  DeliverOptions,
  MethodsOfKind,
} from "./testkit.js";
// The protocol messages these helpers hand back, so that tests need not depend on the protocol package.
export type {
  ActionResponse,
  CrdtDelta,
  CrdtStreamOut,
  EntitySpec,
  EventSourcedReply,
  EventSourcedStreamOut,
  ValueEntityReply,
  ValueEntityStreamOut,
} from "@cloudstate-ts/protocol";
