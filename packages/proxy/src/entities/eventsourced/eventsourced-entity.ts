// One event-sourced entity (PROTOCOL.md §5). Recovery replays the latest snapshot and the events
// after it; each command's events (and snapshot) are appended to the journal with the expected
// sequence before its outcome is released, so an acknowledged reply is always durable and the
// journal never forks. The mailbox and stream lifecycle are KeyedEntity's.
import { create } from "@bufbuild/protobuf";
import {
  EventSourcedStreamInSchema,
  type EventSourcedReply,
  type EventSourcedStreamIn,
  type EventSourcedStreamOut,
} from "@cloudstate-ts/protocol";
import { Code, ProxyError } from "../../errors.js";
import { SequenceConflictError, type Journal } from "../../store/store.js";
import type { BidiStream } from "../../user-function/connection.js";
import type { CommandRequest } from "../command.js";
import { anyOf, KeyedEntity, type KeyedEntityOptions, type StreamOutMessage } from "../keyed-entity.js";
import { commandFrame, eventSourcedCodec, type EventSourcedOutgoing } from "./codec.js";

const HANDLE_PATH = "/cloudstate.eventsourced.EventSourced/handle";

export interface EventSourcedEntityOptions extends KeyedEntityOptions {
  readonly journal: Journal;
}

export class EventSourcedEntity extends KeyedEntity<EventSourcedOutgoing, EventSourcedStreamOut, EventSourcedReply> {
  /** The journal's highest sequence as this entity last wrote or read it. */
  private sequence = 0;
  private readonly journal: Journal;

  constructor(o: EventSourcedEntityOptions) {
    super(o);
    this.journal = o.journal;
  }

  protected openStream(): BidiStream<EventSourcedOutgoing, EventSourcedStreamOut> {
    return this.o.connection.openEntityStream(HANDLE_PATH, eventSourcedCodec);
  }

  protected async recover(): Promise<EventSourcedStreamIn[]> {
    const recovered = await this.journal.recover(this.o.persistenceId, this.o.entityId);
    this.sequence = recovered.sequence;
    const snapshot = recovered.snapshot;
    const messages = [
      create(EventSourcedStreamInSchema, {
        message: {
          case: "init",
          value: {
            serviceName: this.o.serviceName,
            entityId: this.o.entityId,
            snapshot: snapshot
              ? { snapshotSequence: BigInt(snapshot.sequence), snapshot: anyOf(snapshot.typeUrl, snapshot.bytes) }
              : undefined,
          },
        },
      }),
    ];
    for (const event of recovered.events) {
      messages.push(
        create(EventSourcedStreamInSchema, {
          message: { case: "event", value: { sequence: BigInt(event.sequence), payload: anyOf(event.typeUrl, event.bytes) } },
        }),
      );
    }
    return messages;
  }

  protected commandMessage(id: bigint, request: CommandRequest): EventSourcedOutgoing {
    const typeUrl = request.payloadTypeUrl ?? request.method.inputTypeUrl;
    // Client commands carry no metadata (PROTOCOL.md §5): encoded by hand into their frame. Eventing
    // deliveries do carry their CloudEvent attributes, for subscribers that read them.
    if (request.metadata === undefined || request.metadata.entries.length === 0) {
      return commandFrame(this.o.entityId, id, request.method.name, typeUrl, request.payload);
    }
    return create(EventSourcedStreamInSchema, {
      message: {
        case: "command",
        value: { entityId: this.o.entityId, id, name: request.method.name, payload: anyOf(typeUrl, request.payload), metadata: request.metadata },
      },
    });
  }

  protected classify(out: EventSourcedStreamOut): StreamOutMessage<EventSourcedReply> {
    return out.message.case === undefined ? { case: undefined } : out.message;
  }

  protected async persist(reply: EventSourcedReply): Promise<void> {
    if (reply.events.length === 0) return;
    try {
      await this.journal.append({
        persistenceId: this.o.persistenceId,
        entityId: this.o.entityId,
        expectedSequence: this.sequence,
        events: reply.events.map((e) => ({ typeUrl: e.typeUrl, bytes: e.value })),
        snapshot: reply.snapshot ? { typeUrl: reply.snapshot.typeUrl, bytes: reply.snapshot.value } : undefined,
      });
    } catch (e) {
      throw e instanceof SequenceConflictError
        ? new ProxyError(Code.ABORTED, `entity ${this.o.entityId} was changed concurrently by another writer; the command was not applied, retry it`, { cause: e })
        : new ProxyError(Code.UNAVAILABLE, `could not persist the events of entity ${this.o.entityId}: ${(e as Error).message}`, { cause: e });
    }
    this.sequence += reply.events.length;
  }
}
