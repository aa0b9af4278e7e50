// The context of an action call: the common operations, a way to answer with no reply, and a
// signal for a call that ends early.
import { BaseContext, Metadata, NoReply, type Context } from "../context.js";

export interface ActionContext extends Context {
  /**
   * Aborted when the call ends before the handler: the client cancelled it, or (for streamed
   * responses) the user function is shutting down. Pass it on to what the handler waits for.
   */
  readonly signal: AbortSignal;
  /**
   * Fails the call: the client gets `message` as the error, and the response's side effects are
   * dropped. In a stream of responses, the failure is the last response: the stream ends with it.
   */
  fail(message: string): never;
  /** An answer that sends the client nothing (its side effects still run): return or yield it. */
  noReply(): NoReply;
}

export class ActionCallContext extends BaseContext implements ActionContext {
  constructor(
    commandName: string,
    metadata: Metadata,
    readonly signal: AbortSignal,
  ) {
    super(commandName, metadata);
  }

  noReply(): NoReply {
    return NoReply.instance;
  }
}
