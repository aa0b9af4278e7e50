// The SDK's public API. Everything not exported here is internal.
export { eventSourced, EventSourcedEntity } from "./eventsourced/entity.js";
export type { EventSourcedOptions, EventHandlers, CommandHandlers } from "./eventsourced/entity.js";
export type { EventSourcedCommandContext } from "./eventsourced/context.js";
export { Forward, Metadata } from "./context.js";
export type { CommandContext, EffectOptions, ForwardOptions, MetadataInit, MetadataValue, Reply } from "./context.js";
export { CommandFailure } from "./errors.js";
export { serve } from "./server.js";
export type { ServeOptions, UserFunctionServer } from "./server.js";
export type { Entity } from "./entity.js";
export type { Logger } from "./logger.js";
export { fileDescriptorSet } from "./descriptors.js";
