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
import { pack, typeNameOf, typeUrl } from "../any.js";
import { failureAction, replyAction } from "../context.js";
import type { Entity, EntityProtocol, ProtocolEnv } from "../entity.js";
import { CommandFailure, ProtocolError } from "../errors.js";
import { describeError, type Logger } from "../logger.js";
import type { OpenStream } from "../streams.js";
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
    // Compare names, not whole URLs: the host part of a type URL carries no meaning.
    if (!command.payload || typeNameOf(command.payload.typeUrl) !== route.method.input.typeName) {
      const got = command.payload?.typeUrl || "none";
      return failed(command.id, `${command.name} expects a ${typeUrl(route.method.input)} payload, got ${got}`, false);
    }
    let input: Message;
    try {
      input = fromBinary(route.method.input, command.payload.value);
    } catch (e) {
      return failed(command.id, `Cannot decode the ${command.name} payload: ${(e as Error).message}`, false);
    }

    const ctx = new EventSourcedContext(this.entity, this.state, command);
    try {
      const result = await route.handle(input, ctx);
      if (ctx.failure !== undefined) return failed(command.id, ctx.failure, false);
      const clientAction = replyAction(route.method, route.outputUrl, result);
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
      const where = `${this.entity.service.typeName}.${command.name}`;
      this.logger.error(`command ${where} (id ${command.id}) of entity "${this.entityId}" failed: ${describeError(e)}`);
      return failed(command.id, `Unexpected error in ${where} (see the user function's log)`, true);
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
class EventSourcedStream implements OpenStream {
  private instance: EventSourcedInstance | undefined;
  private busy = false;
  private stopping = false;
  private ended = false;

  constructor(
    private readonly call: Call,
    private readonly entities: ReadonlyMap<string, EventSourcedEntity>,
    private readonly logger: Logger,
  ) {}

  async run(): Promise<void> {
    let commandId = 0n; // of the message in hand, for a stream failure (0 = not a command)
    try {
      // Iterating the call itself would destroy it at the end of input, before our end() can send the status.
      const messages = this.call.iterator({ destroyOnReturn: false }) as AsyncIterable<EventSourcedStreamIn>;
      for await (const message of messages) {
        if (this.ended) break;
        this.busy = true;
        commandId = 0n;
        switch (message.message.case) {
          case "init":
            this.init(message.message.value);
            break;
          case "event":
            this.started("an event").replay(message.message.value);
            break;
          case "command": {
            const command = message.message.value;
            commandId = command.id;
            const reply = await this.started("a command").handle(command);
            this.write(create(EventSourcedStreamOutSchema, { message: { case: "reply", value: reply } }));
            break;
          }
          default:
            throw new ProtocolError("received an empty EventSourcedStreamIn");
        }
        this.busy = false;
        if (this.stopping) break;
      }
    } catch (e) {
      if (this.call.cancelled || this.ended) return; // the proxy went away, or we are shutting down
      const entity = this.instance ? ` of ${this.instance.entity.service.typeName} entity "${this.instance.entityId}"` : "";
      if (e instanceof ProtocolError) {
        this.logger.warn(`protocol error on an event-sourced stream${entity}: ${e.message}`);
      } else {
        this.logger.error(`event-sourced stream${entity} failed: ${describeError(e)}`);
      }
      // The stream cannot go on: a StreamOut failure tells the proxy to stop this entity.
      const description = e instanceof Error ? e.message : String(e);
      this.write(create(EventSourcedStreamOutSchema, { message: { case: "failure", value: { commandId, description } } }));
    } finally {
      this.end();
    }
  }

  shutdown(): void {
    this.stopping = true;
    // Idle: end now (the for-await loop then stops). Busy: the loop ends after the current reply.
    if (!this.busy) this.end();
  }

  private init(init: EventSourcedInit): void {
    if (this.instance) throw new ProtocolError(`a second init (for entity "${init.entityId}") on one stream`);
    const entity = this.entities.get(init.serviceName);
    if (!entity) {
      const served = [...this.entities.keys()].join(", ") || "none";
      throw new ProtocolError(`no event-sourced entity serves ${init.serviceName} (served: ${served})`);
    }
    this.instance = new EventSourcedInstance(entity, init.entityId, init.snapshot, this.logger);
  }

  private started(what: string): EventSourcedInstance {
    if (!this.instance) throw new ProtocolError(`received ${what} before init`);
    return this.instance;
  }

  private write(message: EventSourcedStreamOut): void {
    if (!this.ended && !this.call.cancelled) this.call.write(message);
  }

  private end(): void {
    if (this.ended) return;
    this.ended = true;
    if (!this.call.cancelled) this.call.end();
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
