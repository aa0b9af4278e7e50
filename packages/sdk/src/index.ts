// The SDK's public API. Everything not exported here is internal.
export { eventSourced, EventSourcedEntity } from "./eventsourced/entity.js";
export type { EventSourcedOptions, EventHandlers, CommandHandlers } from "./eventsourced/entity.js";
export type { EventSourcedCommandContext } from "./eventsourced/context.js";
export { valueEntity, ValueEntity } from "./value/entity.js";
export type { ValueEntityOptions, ValueEntityCommandHandlers } from "./value/entity.js";
export type { ValueEntityCommandContext } from "./value/context.js";
export { action, Action } from "./action/entity.js";
export type { ActionOptions, ActionHandlers, ActionHandler, ActionReply, ActionReplies } from "./action/entity.js";
export type { ActionContext } from "./action/context.js";
export { crdtEntity, CrdtEntity } from "./crdt/entity.js";
export type { CrdtEntityOptions, CrdtCommandHandlers } from "./crdt/entity.js";
export type {
  CrdtCommandContext,
  CrdtStreamedCommandContext,
  StateChangeContext,
  StateChangeHandler,
  StreamCancelContext,
  StreamCancelHandler,
  StreamedReplies,
} from "./crdt/context.js";
export { Crdt } from "./crdt/types/crdt.js";
export type { CrdtKind } from "./crdt/types/crdt.js";
export { GCounter } from "./crdt/types/gcounter.js";
export { PNCounter } from "./crdt/types/pncounter.js";
export { GSet } from "./crdt/types/gset.js";
export { ORSet } from "./crdt/types/orset.js";
export { LWWRegister } from "./crdt/types/lww-register.js";
export { Flag } from "./crdt/types/flag.js";
export { ORMap } from "./crdt/types/ormap.js";
export { Vote } from "./crdt/types/vote.js";
export type { PrimitiveType, Primitives, ValueInit, ValueOf, ValueType } from "./crdt/types/values.js";
export { CrdtClock as Clock, CrdtWriteConsistency as WriteConsistency } from "@cloudstate-ts/protocol";
export { Forward, Metadata, NoReply } from "./context.js";
export type { Context, CommandContext, EffectOptions, ForwardOptions, MetadataInit, MetadataValue, Reply } from "./context.js";
export { CommandFailure } from "./errors.js";
export { serve } from "./server.js";
export type { ServeOptions, UserFunctionServer } from "./server.js";
export type { Entity } from "./entity.js";
export type { Logger } from "./logger.js";
export { fileDescriptorSet } from "./descriptors.js";
export { eventData, protobufAny, jsonAny, textAny, bytesAny } from "./any.js";
export type { EventData } from "./any.js";
export type { CloudEvent } from "./cloud-event.js";
