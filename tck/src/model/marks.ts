// What the entity models write into their second service, so that a forward or a side effect leaves
// a trace a test can read back (see the comments at the top of the model protos).
export const MARK = {
  forward: "forward",
  effect: "effect",
  syncEffect: "sync-effect",
} as const;

/** The passivation timeout of the configured entities, in milliseconds. */
export const CONFIGURED_PASSIVATION_MS = 100;
