// The context of an event-sourced command: the state, emit() and noReply() on top of the common operations.
import { clone, isMessage, type Message } from "@bufbuild/protobuf";
import type { Any } from "@bufbuild/protobuf/wkt";
import type { Command } from "@cloudstate-ts/protocol";
import { pack } from "../any.js";
import { BaseCommandContext, Metadata, NoReply, type CommandContext } from "../context.js";
import type { EventSourcedEntity } from "./entity.js";

export interface EventSourcedCommandContext<State extends Message, Event extends Message> extends CommandContext {
  /** The current state, with the events emitted so far by this command applied. Do not modify it: emit events. */
  readonly state: State;
  /** Records an event, applies it to `state` at once, and persists it if the command succeeds. */
  emit(event: Event): void;
  /**
   * An answer that sends no reply: return it. The command's state change and side effects still
   * happen; a subscriber with an eventing `out` topic publishes nothing for it.
   */
  noReply(): NoReply;
}

export class EventSourcedContext extends BaseCommandContext implements EventSourcedCommandContext<Message, Message> {
  /**
   * The events emitted so far, in order, encoded at emit time: an event handler may keep the event
   * object in the state and a later event change it, but the journal must get the event as emitted.
   */
  readonly emitted: Any[] = [];
  /**
   * The state after the emitted events: a copy made at the first emit, so that a command that fails
   * leaves the entity's state untouched. Undefined while nothing was emitted.
   */
  working: Message | undefined;

  constructor(
    private readonly entity: EventSourcedEntity,
    private readonly committed: Message,
    command: Command,
  ) {
    super(command.entityId, command.id, command.name, Metadata.fromProto(command.metadata));
  }

  get state(): Message {
    return this.working ?? this.committed;
  }

  emit(event: Message): void {
    this.ensureActive("emit");
    if (!isMessage(event)) throw new TypeError("emit() takes a message: emit(create(EventSchema, { ... }))");
    const route = this.entity.events.get(event.$typeName);
    if (!route) {
      const known = [...this.entity.events.keys()].join(", ") || "none";
      throw new TypeError(`emitted a ${event.$typeName}, but ${this.entity.service.typeName} has no handler for it (handlers: ${known})`);
    }
    const encoded = pack(route.schema, event, route.url);
    const state = route.apply(this.working ?? clone(this.entity.stateSchema, this.committed), event);
    if (state === undefined || state === null) {
      throw new TypeError(`the event handler of ${event.$typeName} returned nothing: return the new state`);
    }
    this.emitted.push(encoded);
    this.working = state;
  }

  noReply(): NoReply {
    return NoReply.instance;
  }
}
