// The SDK's one error type for command failures, and the internal error for protocol violations.

/**
 * A command failure the client should see: throw it (or call `ctx.fail(message)`) from a command
 * handler. The SDK answers with the protocol's `client_action.failure` carrying `message`; the
 * entity keeps running and the command's events are dropped. Any other exception is treated as a
 * bug: it is logged and the proxy is asked to restart the entity.
 */
export class CommandFailure extends Error {
  override readonly name = "CommandFailure";
}

/** The proxy broke the protocol (e.g. a command before init): the stream is failed and ended. */
export class ProtocolError extends Error {
  override readonly name = "ProtocolError";
}
