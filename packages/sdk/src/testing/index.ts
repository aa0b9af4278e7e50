// "@cloudstate-ts/sdk/testing": test helpers for user functions and for the SDK itself.
export { ProxyDriver, EventSourcedStreamDriver, replyOf } from "./driver.js";
export type { StreamEnd } from "./driver.js";
export { testkit, EventSourcedTestkit } from "./testkit.js";
export type { CommandResult, TestkitOptions } from "./testkit.js";
// The protocol messages these helpers hand back, so that tests need not depend on the protocol package.
export type { EntitySpec, EventSourcedReply, EventSourcedStreamOut } from "@cloudstate-ts/protocol";
