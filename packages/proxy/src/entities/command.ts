// What every state model's host takes and gives: a command for one entity, and the outcome the
// user function decided once its state change is durable. Effects, forwards and the client's reply
// are run from the outcome by the dispatcher, outside the entity's mailbox.
import type { ProxyError } from "../errors.js";
import type { ClientAction, Metadata, SideEffect } from "@cloudstate-ts/protocol";
import type { MethodModel, ServiceModel } from "../discovery/service-model.js";

export interface CommandRequest {
  readonly service: ServiceModel;
  readonly method: MethodModel;
  readonly entityId: string;
  /** The client's serialized request message, passed through to the user function. */
  readonly payload: Uint8Array;
  /**
   * The payload's type URL when it is not the method's input type: a method taking
   * google.protobuf.Any gets an eventing message as is, with the message's own type (PROTOCOL.md §8).
   */
  readonly payloadTypeUrl?: string | undefined;
  readonly metadata?: Metadata | undefined;
  /** Aborted when the client cancels or its deadline passes: a command still waiting is dropped. */
  readonly signal?: AbortSignal | undefined;
}

export interface CommandOutcome {
  /** reply, forward or failure; undefined when the user function sent no action. */
  readonly action: ClientAction | undefined;
  readonly sideEffects: readonly SideEffect[];
}

/** The host of one state model for one service: routes commands to entities and owns their streams. */
export interface EntityService {
  handle(request: CommandRequest): Promise<CommandOutcome>;
  /**
   * A server-streaming command of a keyed entity (CRDT entities): its outcomes in order, ending when
   * the user function ends the stream. Stopping the iteration early (or aborting the request's
   * signal) cancels the call.
   */
  handleStreamed?(request: CommandRequest): AsyncIterable<CommandOutcome>;
  /** Active entities, for metrics and the summary. */
  activeEntities(): number;
  /** The ids of the live entities (keyed and CRDT services), for the console. */
  activeEntityIds?(): string[];
  /** Finishes queued and in-flight commands, then closes every entity stream. */
  shutdown(): Promise<void>;
  /** Fails every queued and in-flight command with the error (the shutdown grace period is over). */
  abort(error: ProxyError): void;
}
