// The context of a value entity's command: the state, setState(), deleteState() and noReply() on top
// of the common operations.
import { clone, isMessage, type Message } from "@bufbuild/protobuf";
import type { Command } from "@cloudstate-ts/protocol";
import { BaseCommandContext, Metadata, NoReply, type CommandContext } from "../context.js";
import type { ValueEntity } from "./entity.js";

export interface ValueEntityCommandContext<State extends Message> extends CommandContext {
  /**
   * The current state: the entity's, or what this command set (after `deleteState()`, the initial
   * state). It is the command's own copy: change it freely, and call `setState` to store a change.
   */
  readonly state: State;
  /** Makes `state` the entity's state; it is stored, as it is when the handler returns, if the command succeeds. */
  setState(state: State): void;
  /** Deletes the entity's stored state if the command succeeds; `state` is the initial state again. */
  deleteState(): void;
  /**
   * An answer that sends no reply: return it. The command's state change and side effects still
   * happen; a subscriber with an eventing `out` topic publishes nothing for it.
   */
  noReply(): NoReply;
}

export class ValueEntityContext extends BaseCommandContext implements ValueEntityCommandContext<Message> {
  /** What the command does to the stored state, if anything (the last call wins). */
  change: "update" | "delete" | undefined;
  /** The command's state: a copy of the entity's made at first read, or the one set. */
  private working: Message | undefined;

  constructor(
    private readonly entity: ValueEntity,
    private readonly committed: Message,
    command: Command,
  ) {
    super(command.entityId, command.id, command.name, Metadata.fromProto(command.metadata));
  }

  get state(): Message {
    // A copy, so that a handler that changes the state and then fails leaves the entity's untouched.
    this.working ??= clone(this.entity.stateSchema, this.committed);
    return this.working;
  }

  setState(state: Message): void {
    this.ensureActive("setState");
    const given: unknown = state;
    if (!isMessage(given, this.entity.stateSchema)) {
      const got = isMessage(given) ? `a ${given.$typeName}` : given === null ? "null" : typeof given;
      throw new TypeError(`setState() takes a ${this.entity.stateSchema.typeName} message (create(StateSchema, { ... })), got ${got}`);
    }
    this.working = state;
    this.change = "update";
  }

  deleteState(): void {
    this.ensureActive("deleteState");
    this.working = this.entity.initial(this.entityId);
    this.change = "delete";
  }

  noReply(): NoReply {
    return NoReply.instance;
  }
}
