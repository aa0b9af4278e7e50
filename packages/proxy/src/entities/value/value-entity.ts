// One value entity (PROTOCOL.md §5): the stored state is read before init; a reply's update or
// delete is written with the version the entity last saw before its outcome is released, so an
// acknowledged reply is durable and two writers can never both win. The mailbox and stream
// lifecycle are KeyedEntity's.
import { create } from "@bufbuild/protobuf";
import {
  ValueEntityStreamInSchema,
  ValueEntityStreamOutSchema,
  type ValueEntityReply,
  type ValueEntityStreamIn,
  type ValueEntityStreamOut,
} from "@cloudstate-ts/protocol";
import { Code, ProxyError } from "../../errors.js";
import { VersionConflictError, type KeyValueStore } from "../../store/store.js";
import type { BidiStream } from "../../user-function/connection.js";
import type { CommandRequest } from "../command.js";
import { anyOf, KeyedEntity, type KeyedEntityOptions, type StreamOutMessage } from "../keyed-entity.js";

const HANDLE_PATH = "/cloudstate.valueentity.ValueEntity/handle";

export interface ValueEntityOptions extends KeyedEntityOptions {
  readonly values: KeyValueStore;
}

export class ValueEntity extends KeyedEntity<ValueEntityStreamIn, ValueEntityStreamOut, ValueEntityReply> {
  /** The stored version as this entity last wrote or read it. */
  private version = 0;
  private readonly values: KeyValueStore;

  constructor(o: ValueEntityOptions) {
    super(o);
    this.values = o.values;
  }

  protected openStream(): BidiStream<ValueEntityStreamIn, ValueEntityStreamOut> {
    return this.o.connection.openStream(HANDLE_PATH, ValueEntityStreamInSchema, ValueEntityStreamOutSchema);
  }

  protected async recover(): Promise<ValueEntityStreamIn[]> {
    const stored = await this.values.get(this.o.persistenceId, this.o.entityId);
    this.version = stored.version;
    // `state` is always present; its `value` is unset when there is no state.
    const value = stored.value ? anyOf(stored.value.typeUrl, stored.value.bytes) : undefined;
    return [
      create(ValueEntityStreamInSchema, {
        message: { case: "init", value: { serviceName: this.o.serviceName, entityId: this.o.entityId, state: { value } } },
      }),
    ];
  }

  protected commandMessage(id: bigint, request: CommandRequest): ValueEntityStreamIn {
    return create(ValueEntityStreamInSchema, {
      message: {
        case: "command",
        value: {
          entityId: this.o.entityId,
          id,
          name: request.method.name,
          payload: anyOf(request.payloadTypeUrl ?? request.method.inputTypeUrl, request.payload),
          metadata: request.metadata,
        },
      },
    });
  }

  protected classify(out: ValueEntityStreamOut): StreamOutMessage<ValueEntityReply> {
    return out.message.case === undefined ? { case: undefined } : out.message;
  }

  protected async persist(reply: ValueEntityReply): Promise<void> {
    const action = reply.stateAction?.action;
    if (action?.case === undefined) return;
    const value = action.case === "update" && action.value.value
      ? { typeUrl: action.value.value.typeUrl, bytes: action.value.value.value }
      : undefined;
    if (action.case === "update" && value === undefined) {
      throw new ProxyError(Code.INTERNAL, `entity ${this.o.entityId} of ${this.o.serviceName}: a state update without a value`);
    }
    try {
      this.version = await this.values.write({
        persistenceId: this.o.persistenceId,
        entityId: this.o.entityId,
        expectedVersion: this.version,
        value,
      });
    } catch (e) {
      throw e instanceof VersionConflictError
        ? new ProxyError(Code.ABORTED, `entity ${this.o.entityId} was changed concurrently by another writer; the command was not applied, retry it`, { cause: e })
        : new ProxyError(Code.UNAVAILABLE, `could not store the state of entity ${this.o.entityId}: ${(e as Error).message}`, { cause: e });
    }
  }
}
