// The CRDT protocol (cloudstate.crdt.Crdt/handle): one bidi stream per entity per proxy node. The
// proxy sends init (with the CRDT's state, if any), then commands, other replicas' deltas,
// cancellations of streamed calls and, at the end, maybe a delete. Each reply carries the command's
// delta; after every change of the CRDT, the open streamed calls push what their onStateChange returns.
import { create, isMessage, type DescMethod, type Message, type MessageInitShape } from "@bufbuild/protobuf";
import {
  Crdt as CrdtProtocolService,
  CrdtStateActionSchema,
  CrdtStreamOutSchema,
  type ClientAction,
  type Command,
  type CrdtDelta,
  type CrdtInit,
  type CrdtStateAction,
  type CrdtStreamIn,
  type CrdtStreamOut,
  type CrdtWriteConsistency,
} from "@cloudstate-ts/protocol";
import type { ServerDuplexStream } from "@grpc/grpc-js";
import { decodeInput, reportBug, type CommandRoute } from "../command.js";
import { failureAction, replyAction } from "../context.js";
import type { Entity, EntityProtocol, ProtocolEnv } from "../entity.js";
import { EntityStream } from "../entity-stream.js";
import { CommandFailure, ProtocolError } from "../errors.js";
import type { Logger } from "../logger.js";
import {
  CrdtContext,
  StateChangeCallContext,
  StreamCancelCallContext,
  type CallIdentity,
  type StateChangeHandler,
  type StreamCancelHandler,
} from "./context.js";
import type { CrdtEntity } from "./entity.js";
import { Crdt, type CrdtHost } from "./types/crdt.js";
import { describeValue } from "./types/values.js";

/** A streamed call kept open by its onStateChange or onStreamCancel. */
interface StreamedCall {
  readonly identity: CallIdentity;
  readonly method: DescMethod;
  readonly outputUrl: string;
  readonly onChange: StateChangeHandler<Crdt, never> | undefined;
  readonly onCancel: StreamCancelHandler<Crdt> | undefined;
}

const READ_ONLY =
  "the CRDT can change only in a command handler or in onStreamCancel (not in onStateChange, nor after the handler has returned)";

/**
 * One entity's replica, independent of the transport (the testkit drives it directly). Its methods
 * return the StreamOut messages to send, in order; they must be called one at a time.
 */
export class CrdtInstance implements CrdtHost {
  readonly state: Crdt;
  /** Deleted by a command here, or by the proxy: it answers no more commands. */
  deleted = false;
  private readonly calls = new Map<bigint, StreamedCall>();
  /** True while a handler may change the CRDT; its changes' undos are kept until it succeeds. */
  private changing = false;
  private undo: (() => void)[] = [];

  constructor(
    readonly entity: CrdtEntity,
    readonly entityId: string,
    initial: CrdtDelta | undefined,
    private readonly logger: Logger,
  ) {
    const state: unknown = entity.crdt(entityId);
    const where = `the crdt() of CRDT entity ${entity.service.typeName}`;
    if (!(state instanceof Crdt)) throw new TypeError(`${where} returned ${describeValue(state)}, not a CRDT`);
    if (state.host || state.parent) throw new TypeError(`${where} must return a new CRDT each time`);
    state.resetDelta(); // what crdt() made is the empty state, not a change
    if (initial?.delta.case) state.applyDelta(initial);
    state.host = this;
    this.state = state;
  }

  /** The ids of the streamed calls open on this entity. */
  get openCalls(): bigint[] {
    return [...this.calls.keys()];
  }

  /** @internal */
  willChange(undo: () => void): void {
    if (!this.changing) throw new Error(READ_ONLY);
    this.undo.push(undo);
  }

  async handleCommand(command: Command): Promise<CrdtStreamOut[]> {
    const route = this.entity.commands.get(command.name);
    if (!route) return [failed(command.id, `Unknown command ${command.name} for ${this.entity.service.typeName}`, false)];
    if (this.deleted) return [failed(command.id, `Entity "${this.entityId}" of ${this.entity.service.typeName} was deleted`, false)];
    let input: Message;
    try {
      input = decodeInput(route.method, command.payload);
    } catch (e) {
      return [failed(command.id, (e as CommandFailure).message, false)];
    }

    const streaming = route.method.methodKind === "server_streaming";
    const ctx = new CrdtContext(this.state, command, command.streamed && streaming);
    this.changing = true;
    try {
      const result = await route.handle(input, ctx as never);
      this.changing = false;
      if (ctx.failure !== undefined) throw new CommandFailure(ctx.failure);
      const actions = streaming ? replyActions(route, result) : [replyAction(route.method, route.outputUrl, result)];
      if (!ctx.streamed && actions.length > 1) {
        throw new TypeError(`the handler of ${route.method.name} returned ${actions.length} replies, but the call is not streamed`);
      }
      const stateAction = this.commit(ctx);
      const subscribed = ctx.subscribed && !ctx.deleted;
      const [first, ...more] = actions;
      const out = [
        streamOut("reply", {
          commandId: command.id,
          clientAction: first,
          sideEffects: ctx.sideEffects,
          stateAction,
          streamed: subscribed || more.length > 0,
        }),
        ...more.map((clientAction, i) =>
          streamOut("streamedMessage", { commandId: command.id, clientAction, endStream: !subscribed && i === more.length - 1 }),
        ),
      ];
      if (subscribed) {
        this.calls.set(command.id, {
          identity: ctx.identity,
          method: route.method,
          outputUrl: route.outputUrl,
          onChange: ctx.changeHandler as StateChangeHandler<Crdt, never> | undefined,
          onCancel: ctx.cancelHandler,
        });
      }
      if (stateAction?.action.case === "update") out.push(...this.stateChanged());
      return out;
    } catch (e) {
      this.rollback();
      if (e instanceof CommandFailure || ctx.failure !== undefined) {
        return [failed(command.id, ctx.failure ?? (e as CommandFailure).message, false)];
      }
      // A bug in the user's code: its changes are undone; ask the proxy to restart the entity from
      // the replicated state, and give the client a short message (the details are logged).
      const description = reportBug(this.logger, route.method, "command", ` (id ${command.id}) of entity "${this.entityId}"`, e);
      return [failed(command.id, description, true)];
    } finally {
      this.changing = false;
      ctx.deactivate();
    }
  }

  /** Applies another replica's change, then tells the open streamed calls. */
  applyDelta(delta: CrdtDelta): CrdtStreamOut[] {
    if (this.deleted) throw new ProtocolError("received a delta for a deleted CRDT");
    if (!delta.delta.case) throw new ProtocolError("received an empty delta");
    this.state.applyDelta(delta);
    return this.stateChanged();
  }

  /** The proxy deleted the CRDT (another replica did): the open streamed calls end with the stream. */
  deletedByProxy(): void {
    this.deleted = true;
    this.calls.clear();
  }

  /** The client of streamed call `commandId` went away: run its onStreamCancel, and answer. */
  cancelStream(commandId: bigint): CrdtStreamOut[] {
    const call = this.calls.get(commandId);
    this.calls.delete(commandId);
    if (!call?.onCancel || this.deleted) return [streamOut("streamCancelledResponse", { commandId })];
    const ctx = new StreamCancelCallContext(call.identity);
    this.changing = true;
    try {
      const result: unknown = call.onCancel(this.state, ctx);
      this.changing = false;
      notAsync(result, "onStreamCancel");
      const stateAction = this.commit(ctx);
      const out = [streamOut("streamCancelledResponse", { commandId, sideEffects: ctx.sideEffects, stateAction })];
      if (stateAction?.action.case === "update") out.push(...this.stateChanged());
      return out;
    } catch (e) {
      // Nobody waits for this answer: the changes are undone, and the bug is logged.
      this.rollback();
      reportBug(this.logger, call.method, "onStreamCancel of", ` (call ${commandId}) of entity "${this.entityId}"`, e);
      return [streamOut("streamCancelledResponse", { commandId })];
    } finally {
      this.changing = false;
      ctx.deactivate();
    }
  }

  /** The state action of a handler that succeeded (its delta, or the deletion); the delta is reset. */
  private commit(ctx: { readonly deleted: boolean; readonly writeConsistency: CrdtWriteConsistency }): CrdtStateAction | undefined {
    this.undo = [];
    const { writeConsistency } = ctx;
    if (ctx.deleted) {
      this.deleted = true;
      this.calls.clear();
      this.state.resetDelta();
      return create(CrdtStateActionSchema, { action: { case: "delete", value: {} }, writeConsistency });
    }
    const delta = this.state.pendingDelta();
    this.state.resetDelta();
    return delta && create(CrdtStateActionSchema, { action: { case: "update", value: delta }, writeConsistency });
  }

  private rollback(): void {
    for (const undo of this.undo.reverse()) undo();
    this.undo = [];
    this.state.resetDelta();
  }

  /** Runs the onStateChange of every open streamed call, in the order they were opened. */
  private stateChanged(): CrdtStreamOut[] {
    const out: CrdtStreamOut[] = [];
    for (const [commandId, call] of this.calls) {
      if (call.onChange) out.push(...this.notify(commandId, call, call.onChange));
    }
    return out;
  }

  private notify(commandId: bigint, call: StreamedCall, onChange: StateChangeHandler<Crdt, never>): CrdtStreamOut[] {
    const ctx = new StateChangeCallContext(call.identity);
    try {
      const result: unknown = onChange(this.state, ctx);
      notAsync(result, "onStateChange");
      if (ctx.failure !== undefined) throw new CommandFailure(ctx.failure);
      const actions = replyActions(call, result).filter((a) => a !== undefined);
      const endStream = ctx.ended;
      if (endStream) this.calls.delete(commandId);
      const sideEffects = ctx.sideEffects;
      if (actions.length === 0) {
        return sideEffects.length > 0 || endStream ? [streamOut("streamedMessage", { commandId, sideEffects, endStream })] : [];
      }
      return actions.map((clientAction, i) =>
        streamOut("streamedMessage", {
          commandId,
          clientAction,
          sideEffects: i === 0 ? sideEffects : [],
          endStream: endStream && i === actions.length - 1,
        }),
      );
    } catch (e) {
      this.calls.delete(commandId);
      const description =
        e instanceof CommandFailure || ctx.failure !== undefined
          ? (ctx.failure ?? (e as CommandFailure).message)
          : reportBug(this.logger, call.method, "onStateChange of", ` (call ${commandId}) of entity "${this.entityId}"`, e);
      // The CRDT is untouched (onStateChange cannot change it): only this call ends, with the failure.
      return [streamOut("streamedMessage", { commandId, clientAction: failureAction(commandId, description, false), endStream: true })];
    } finally {
      ctx.deactivate();
    }
  }
}

/** The client actions of a streamed call's answer: one per reply, or one undefined for none. */
function replyActions(route: Pick<CommandRoute<unknown>, "method" | "outputUrl">, result: unknown): (ClientAction | undefined)[] {
  if (result === undefined || result === null) return [undefined];
  const list: readonly unknown[] = Array.isArray(result) ? result : [result];
  if (list.length === 0) return [undefined];
  return list.map((r) => replyAction(route.method, route.outputUrl, r));
}

function notAsync(result: unknown, what: string): void {
  if (typeof result === "object" && result !== null && !isMessage(result) && typeof (result as { then?: unknown }).then === "function") {
    // Owned here: its outcome has nowhere to go.
    (result as Promise<unknown>).then(undefined, () => undefined);
    throw new TypeError(`${what} handlers must not be async (this one returned a promise)`);
  }
}

type StreamOutCase = NonNullable<CrdtStreamOut["message"]["case"]>;
type StreamOutInit<C extends StreamOutCase> = Extract<NonNullable<MessageInitShape<typeof CrdtStreamOutSchema>["message"]>, { case: C }>["value"];

function streamOut<C extends StreamOutCase>(kind: C, value: StreamOutInit<C>): CrdtStreamOut {
  return create(CrdtStreamOutSchema, { message: { case: kind, value } as MessageInitShape<typeof CrdtStreamOutSchema>["message"] });
}

function failed(commandId: bigint, description: string, restart: boolean): CrdtStreamOut {
  return streamOut("reply", { commandId, clientAction: failureAction(commandId, description, restart) });
}

type Call = ServerDuplexStream<CrdtStreamIn, CrdtStreamOut>;

/** One protocol stream: init, then commands, deltas, cancellations and maybe a delete, in order. */
class CrdtStream extends EntityStream<CrdtStreamIn, CrdtStreamOut, CrdtInstance> {

  constructor(
    call: Call,
    private readonly entities: ReadonlyMap<string, CrdtEntity>,
    logger: Logger,
  ) {
    super(call, logger, "CRDT");
  }

  protected async receive(message: CrdtStreamIn): Promise<void> {
    switch (message.message.case) {
      case "init":
        this.init(message.message.value);
        break;
      case "delta":
        this.writeAll(this.started("a delta").applyDelta(message.message.value));
        break;
      case "delete":
        this.started("a delete").deletedByProxy();
        this.shutdown(); // the CRDT is gone everywhere: end the stream after this message
        break;
      case "command":
        this.writeAll(await this.started("a command").handleCommand(message.message.value));
        break;
      case "streamCancelled":
        this.writeAll(this.started("a stream cancellation").cancelStream(message.message.value.id));
        break;
      default:
        throw new ProtocolError("received an empty CrdtStreamIn");
    }
  }

  protected streamFailure(commandId: bigint, description: string): CrdtStreamOut {
    return streamOut("failure", { commandId, description });
  }

  private writeAll(messages: readonly CrdtStreamOut[]): void {
    for (const message of messages) this.write(message);
  }

  private init(init: CrdtInit): void {
    this.begin(this.entities, init, "CRDT entity", (entity) => new CrdtInstance(entity, init.entityId, init.delta, this.logger));
  }
}

export const crdtProtocol: EntityProtocol = {
  service: CrdtProtocolService,
  handlers(entities: readonly Entity[], env: ProtocolEnv) {
    const byService = new Map<string, CrdtEntity>();
    for (const entity of entities) byService.set(entity.service.typeName, entity as CrdtEntity);
    return {
      handle(call: Call) {
        const stream = new CrdtStream(call, byService, env.logger);
        env.streams.track(stream, stream.run());
      },
    };
  },
};
