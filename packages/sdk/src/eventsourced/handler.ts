// The event-sourced protocol (cloudstate.eventsourced.EventSourced/handle): one bidi stream per
// active entity. The proxy sends init (with the latest snapshot, if any), replays the journal's
// later events, then sends commands one at a time; each reply carries the command's events, a
// snapshot when one is due, and its side effects.
import { create, fromBinary, type Message } from "@bufbuild/protobuf";
import type { Any } from "@bufbuild/protobuf/wkt";
import {
  EventSourced,
  EventSourcedReplySchema,
  EventSourcedStreamOutSchema,
  type Command,
  type EventSourcedEvent,
  type EventSourcedInit,
  type EventSourcedReply,
  type EventSourcedSnapshot,
  type EventSourcedStreamIn,
  type EventSourcedStreamOut,
} from "@cloudstate-ts/protocol";
import type { ServerDuplexStream } from "@grpc/grpc-js";
import { pack, typeNameOf } from "../any.js";
import { decodeInput, reportBug } from "../command.js";
import { failureAction, NoReply, replyAction } from "../context.js";
import type { Entity, EntityProtocol, ProtocolEnv } from "../entity.js";
import { EntityStream } from "../entity-stream.js";
import { CommandFailure, ProtocolError } from "../errors.js";
import type { Logger } from "../logger.js";
import { EventSourcedContext } from "./context.js";
import type { EventSourcedEntity } from "./entity.js";

/**
 * One entity's state machine, independent of the transport (the testkit drives it directly):
 * start from a snapshot or the initial state, replay events, handle commands.
 */
export class EventSourcedInstance {
  /** The state after the last persisted event. */
  state: Message;
  /** The sequence number of the last persisted event (0 = none). */
  sequence: number;

  constructor(
    readonly entity: EventSourcedEntity,
    readonly entityId: string,
    snapshot: EventSourcedSnapshot | undefined,
    private readonly logger: Logger,
  ) {
    if (snapshot?.snapshot) {
      this.state = decode(entity.stateSchema, entity.stateUrl, snapshot.snapshot, "snapshot");
      this.sequence = Number(snapshot.snapshotSequence);
    } else {
      this.state = entity.initial(entityId);
      this.sequence = 0;
    }
  }

  /** Applies a journal event during recovery. */
  replay(event: EventSourcedEvent): void {
    if (!event.payload) throw new ProtocolError(`event ${event.sequence} has no payload`);
    const name = typeNameOf(event.payload.typeUrl);
    const route = this.entity.events.get(name);
    if (!route) {
      throw new Error(`${this.entity.service.typeName} has no handler for journal event ${name} (sequence ${event.sequence})`);
    }
    // In place, without a copy: a bad event fails the whole stream, so there is nothing to roll back.
    this.state = route.apply(this.state, fromBinary(route.schema, event.payload.value));
    this.sequence = Number(event.sequence);
  }

  async handle(command: Command): Promise<EventSourcedReply> {
    const route = this.entity.commands.get(command.name);
    if (!route) {
      return failed(command.id, `Unknown command ${command.name} for ${this.entity.service.typeName}`, false);
    }
    let input: Message;
    try {
      input = decodeInput(route.method, command.payload);
    } catch (e) {
      return failed(command.id, (e as CommandFailure).message, false);
    }

    const ctx = new EventSourcedContext(this.entity, this.state, command);
    try {
      const result = await route.handle(input, ctx);
      if (ctx.failure !== undefined) return failed(command.id, ctx.failure, false);
      // No reply: no client action (the proxy answers the client, or publishes, nothing).
      const clientAction = result instanceof NoReply ? undefined : replyAction(route.method, route.outputUrl, result);
      const events = ctx.emitted;
      const sequence = this.sequence + events.length;
      const state = ctx.working ?? this.state;
      const every = this.entity.snapshotEvery;
      const snapshotDue = events.length > 0 && every > 0 && Math.floor(sequence / every) > Math.floor(this.sequence / every);
      // Encode before committing, so that an encoding error leaves the state as it was.
      const snapshot = snapshotDue ? pack(this.entity.stateSchema, state, this.entity.stateUrl) : undefined;
      this.state = state;
      this.sequence = sequence;
      return create(EventSourcedReplySchema, {
        commandId: command.id,
        clientAction,
        events,
        snapshot,
        sideEffects: ctx.sideEffects,
      });
    } catch (e) {
      if (e instanceof CommandFailure || ctx.failure !== undefined) {
        return failed(command.id, ctx.failure ?? (e as CommandFailure).message, false);
      }
      // A bug in the user's code: the in-memory state may be suspect, so ask the proxy to rebuild
      // the entity from its journal, and give the client a short message (the details are logged).
      const description = reportBug(this.logger, route.method, "command", ` (id ${command.id}) of entity "${this.entityId}"`, e);
      return failed(command.id, description, true);
    } finally {
      ctx.deactivate();
    }
  }
}

function failed(commandId: bigint, description: string, restart: boolean): EventSourcedReply {
  return create(EventSourcedReplySchema, { commandId, clientAction: failureAction(commandId, description, restart) });
}

function decode(schema: EventSourcedEntity["stateSchema"], url: string, any: Any, what: string): Message {
  if (typeNameOf(any.typeUrl) !== schema.typeName) throw new ProtocolError(`the ${what} is a ${any.typeUrl}, expected ${url}`);
  return fromBinary(schema, any.value);
}

type Call = ServerDuplexStream<EventSourcedStreamIn, EventSourcedStreamOut>;

/** One protocol stream: init, then events and commands, in order. */
class EventSourcedStream extends EntityStream<EventSourcedStreamIn, EventSourcedStreamOut, EventSourcedInstance> {

  constructor(
    call: Call,
    private readonly entities: ReadonlyMap<string, EventSourcedEntity>,
    logger: Logger,
  ) {
    super(call, logger, "event-sourced");
  }

  protected async receive(message: EventSourcedStreamIn): Promise<void> {
    switch (message.message.case) {
      case "init":
        this.init(message.message.value);
        break;
      case "event":
        this.started("an event").replay(message.message.value);
        break;
      case "command": {
        const reply = await this.started("a command").handle(message.message.value);
        this.write(create(EventSourcedStreamOutSchema, { message: { case: "reply", value: reply } }));
        break;
      }
      default:
        throw new ProtocolError("received an empty EventSourcedStreamIn");
    }
  }

  protected streamFailure(commandId: bigint, description: string): EventSourcedStreamOut {
    return create(EventSourcedStreamOutSchema, { message: { case: "failure", value: { commandId, description } } });
  }

  private init(init: EventSourcedInit): void {
    this.begin(this.entities, init, "event-sourced entity", (entity) => new EventSourcedInstance(entity, init.entityId, init.snapshot, this.logger));
  }
}

export const eventSourcedProtocol: EntityProtocol = {
  service: EventSourced,
  handlers(entities: readonly Entity[], env: ProtocolEnv) {
    const byService = new Map<string, EventSourcedEntity>();
    for (const entity of entities) byService.set(entity.service.typeName, entity as EventSourcedEntity);
    return {
      handle(call: Call) {
        const stream = new EventSourcedStream(call, byService, env.logger);
        env.streams.track(stream, stream.run());
      },
    };
  },
};
