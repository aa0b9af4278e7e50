// The value entity protocol (cloudstate.valueentity.ValueEntity/handle): one bidi stream per active
// entity. The proxy sends init (with the stored state, if any), then commands one at a time; each
// reply carries the command's state action (update or delete, only if it changed the state) and its
// side effects.
import { create, fromBinary, type Message } from "@bufbuild/protobuf";
import {
  ValueEntity as ValueEntityProtocol,
  ValueEntityActionSchema,
  ValueEntityReplySchema,
  ValueEntityStreamOutSchema,
  type Command,
  type ValueEntityAction,
  type ValueEntityInit,
  type ValueEntityInitState,
  type ValueEntityReply,
  type ValueEntityStreamIn,
  type ValueEntityStreamOut,
} from "@cloudstate-ts/protocol";
import type { ServerDuplexStream } from "@grpc/grpc-js";
import { pack, typeNameOf } from "../any.js";
import { decodeInput, reportBug } from "../command.js";
import { failureAction, NoReply, replyAction } from "../context.js";
import type { Entity, EntityProtocol, ProtocolEnv } from "../entity.js";
import { EntityStream } from "../entity-stream.js";
import { CommandFailure, ProtocolError } from "../errors.js";
import type { Logger } from "../logger.js";
import { ValueEntityContext } from "./context.js";
import type { ValueEntity } from "./entity.js";

/**
 * One entity's state machine, independent of the transport (the testkit drives it directly):
 * start from the stored state or the initial one, handle commands.
 */
export class ValueEntityInstance {
  /** The state as stored (the initial state when none is). */
  state: Message;

  constructor(
    readonly entity: ValueEntity,
    readonly entityId: string,
    stored: ValueEntityInitState | undefined,
    private readonly logger: Logger,
  ) {
    const value = stored?.value;
    if (value) {
      if (typeNameOf(value.typeUrl) !== entity.stateSchema.typeName) {
        throw new ProtocolError(`the stored state is a ${value.typeUrl}, expected ${entity.stateUrl}`);
      }
      this.state = fromBinary(entity.stateSchema, value.value);
    } else {
      this.state = entity.initial(entityId);
    }
  }

  async handle(command: Command): Promise<ValueEntityReply> {
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

    const ctx = new ValueEntityContext(this.entity, this.state, command);
    try {
      const result = await route.handle(input, ctx);
      if (ctx.failure !== undefined) return failed(command.id, ctx.failure, false);
      // No reply: no client action (the proxy answers the client, or publishes, nothing).
      const clientAction = result instanceof NoReply ? undefined : replyAction(route.method, route.outputUrl, result);
      let stateAction: ValueEntityAction | undefined;
      if (ctx.change === "update") {
        // Encoded now, as the state is when the handler returned; an encoding error leaves the state as it was.
        const value = pack(this.entity.stateSchema, ctx.state, this.entity.stateUrl);
        stateAction = create(ValueEntityActionSchema, { action: { case: "update", value: { value } } });
      } else if (ctx.change === "delete") {
        stateAction = create(ValueEntityActionSchema, { action: { case: "delete", value: {} } });
      }
      if (ctx.change) this.state = ctx.state;
      return create(ValueEntityReplySchema, { commandId: command.id, clientAction, sideEffects: ctx.sideEffects, stateAction });
    } catch (e) {
      if (e instanceof CommandFailure || ctx.failure !== undefined) {
        return failed(command.id, ctx.failure ?? (e as CommandFailure).message, false);
      }
      // A bug in the user's code: ask the proxy to restart the entity from its stored state, and
      // give the client a short message (the details are logged).
      const description = reportBug(this.logger, route.method, "command", ` (id ${command.id}) of entity "${this.entityId}"`, e);
      return failed(command.id, description, true);
    } finally {
      ctx.deactivate();
    }
  }
}

function failed(commandId: bigint, description: string, restart: boolean): ValueEntityReply {
  return create(ValueEntityReplySchema, { commandId, clientAction: failureAction(commandId, description, restart) });
}

type Call = ServerDuplexStream<ValueEntityStreamIn, ValueEntityStreamOut>;

/** One protocol stream: init, then commands, in order. */
class ValueEntityStream extends EntityStream<ValueEntityStreamIn, ValueEntityStreamOut, ValueEntityInstance> {

  constructor(
    call: Call,
    private readonly entities: ReadonlyMap<string, ValueEntity>,
    logger: Logger,
  ) {
    super(call, logger, "value entity");
  }

  protected async receive(message: ValueEntityStreamIn): Promise<void> {
    switch (message.message.case) {
      case "init":
        this.init(message.message.value);
        break;
      case "command": {
        const reply = await this.started("a command").handle(message.message.value);
        this.write(create(ValueEntityStreamOutSchema, { message: { case: "reply", value: reply } }));
        break;
      }
      default:
        throw new ProtocolError("received an empty ValueEntityStreamIn");
    }
  }

  protected streamFailure(commandId: bigint, description: string): ValueEntityStreamOut {
    return create(ValueEntityStreamOutSchema, { message: { case: "failure", value: { commandId, description } } });
  }

  private init(init: ValueEntityInit): void {
    // `state` is always present in protocol 0.2; a proxy that leaves it out means "none stored".
    this.begin(this.entities, init, "value entity", (entity) => new ValueEntityInstance(entity, init.entityId, init.state, this.logger));
  }
}

export const valueEntityProtocol: EntityProtocol = {
  service: ValueEntityProtocol,
  handlers(entities: readonly Entity[], env: ProtocolEnv) {
    const byService = new Map<string, ValueEntity>();
    for (const entity of entities) byService.set(entity.service.typeName, entity as ValueEntity);
    return {
      handle(call: Call) {
        const stream = new ValueEntityStream(call, byService, env.logger);
        env.streams.track(stream, stream.run());
      },
    };
  },
};
