// Runs a CRDT entity in-process, as one proxy node would, with no network: commands, streamed calls
// (their pushed messages, their cancellation), other replicas' changes and deletion, restarts. The
// deltas the entity sends are recorded for inspection; commands and replies go through their wire
// encoding.
import { create, type DescMessage, type Message, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import type { GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import {
  CommandSchema,
  CrdtWriteConsistency,
  type ClientAction,
  type CrdtDelta,
  type CrdtStateAction,
  type CrdtStreamOut,
  type Forward,
  type SideEffect,
} from "@cloudstate-ts/protocol";
import { pack, unpackReply } from "../any.js";
import { metadataProto, type MetadataInit } from "../context.js";
import type { CrdtEntity } from "../crdt/entity.js";
import { CrdtInstance } from "../crdt/handler.js";
import type { Crdt } from "../crdt/types/crdt.js";
import { CommandFailure } from "../errors.js";
import { stderrLogger, type Logger } from "../logger.js";
import type { MethodsOfKind } from "./testkit.js";

/** A command's failure, as the client sees it. */
export interface CrdtFailure {
  readonly description: string;
  /** True for an unexpected error (a bug): the proxy then restarts the entity. */
  readonly restart: boolean;
}

/** Everything one command produced. */
export interface CrdtCommandResult<Output extends Message> {
  /** The reply (the first one, for a streamed call), unless the command forwarded, failed or sent none. */
  readonly reply?: Output;
  readonly forward?: Forward;
  readonly failure?: CrdtFailure;
  /** The side effects the proxy would run (none on failure). */
  readonly sideEffects: SideEffect[];
  /** The change the entity sent, to be replicated (undefined if none). */
  readonly delta?: CrdtDelta;
  /** Whether the command deleted the CRDT. */
  readonly deleted: boolean;
  /** The write consistency the change asked for (LOCAL when there was no change). */
  readonly writeConsistency: CrdtWriteConsistency;
  /** Whether the call stays open (a streamed call that registered onStateChange or onStreamCancel). */
  readonly streamed: boolean;
}

/** One message a streamed call pushed to its client. */
export interface CrdtStreamedResult<Output extends Message> {
  readonly reply?: Output;
  readonly forward?: Forward;
  readonly failure?: CrdtFailure;
  readonly sideEffects: SideEffect[];
  /** Whether this message ended the call. */
  readonly endStream: boolean;
}

/** What the cancellation of a streamed call produced (its onStreamCancel's work). */
export interface CrdtCancelResult {
  readonly sideEffects: SideEffect[];
  readonly delta?: CrdtDelta;
  readonly deleted: boolean;
  readonly writeConsistency: CrdtWriteConsistency;
}

export interface CrdtTestkitOptions {
  /** Default "test-entity". */
  entityId?: string;
  /** The CRDT's state as the proxy has it at start (build it with `crdtDelta`); default none. */
  state?: CrdtDelta;
  /** Where unexpected handler errors are logged; default stderr. */
  logger?: Logger;
}

export interface CrdtCallOptions {
  metadata?: MetadataInit;
}

type Output<Methods extends GenServiceMethods, K extends keyof Methods> = MessageShape<Methods[K]["output"]>;

export class CrdtTestkit<Methods extends GenServiceMethods, State extends Crdt> {
  readonly entityId: string;
  /** Every delta the entity sent, in order (commands and cancellations). */
  readonly deltas: CrdtDelta[] = [];
  private instance: CrdtInstance;
  /** The open streamed calls, with their method's output type. */
  private readonly streams = new Map<bigint, { readonly stream: CrdtTestkitStream<Message>; readonly output: DescMessage }>();
  private nextId = 1n;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly logger: Logger;

  constructor(
    private readonly entity: CrdtEntity<Methods, State>,
    options: CrdtTestkitOptions = {},
  ) {
    this.entityId = options.entityId ?? "test-entity";
    this.logger = options.logger ?? stderrLogger;
    this.instance = new CrdtInstance(entity as unknown as CrdtEntity, this.entityId, options.state, this.logger);
  }

  /** The entity's CRDT (read it; change it only through commands). */
  get state(): State {
    return this.instance.state as State;
  }

  /** Whether the CRDT was deleted (by a command, or by `deleteRemotely`). */
  get deleted(): boolean {
    return this.instance.deleted;
  }

  /** Handles one command and reports all it produced; failures resolve too. A streaming method is called unstreamed. */
  send<K extends keyof Methods & string>(
    command: K,
    input: MessageInitShape<Methods[K]["input"]>,
    options?: CrdtCallOptions,
  ): Promise<CrdtCommandResult<Output<Methods, K>>> {
    return this.serially(async () => (await this.handle(command, input, false, options)).result as CrdtCommandResult<Output<Methods, K>>);
  }

  /** Handles one command and returns its reply; rejects with a CommandFailure if it failed. */
  async call<K extends keyof Methods & string>(
    command: K,
    input: MessageInitShape<Methods[K]["input"]>,
    options?: CrdtCallOptions,
  ): Promise<Output<Methods, K>> {
    const result = await this.send(command, input, options);
    if (result.failure) {
      if (result.failure.restart) throw new Error(result.failure.description);
      throw new CommandFailure(result.failure.description);
    }
    if (!result.reply) {
      const instead = result.forward ? `forwarded to ${result.forward.serviceName}/${result.forward.commandName}` : "sent no reply";
      throw new Error(`${command} ${instead} instead of replying`);
    }
    return result.reply;
  }

  /** Calls a server-streaming method as a stream: read what it pushes from the returned stream, and cancel it. */
  stream<K extends MethodsOfKind<Methods, "server_streaming">>(
    command: K,
    input: MessageInitShape<Methods[K]["input"]>,
    options?: CrdtCallOptions,
  ): Promise<CrdtTestkitStream<Output<Methods, K>>> {
    return this.serially(async () => (await this.handle(command, input, true, options)).stream as CrdtTestkitStream<Output<Methods, K>>);
  }

  /** Applies a change made by another replica (build it with `crdtDelta`), as the proxy would send it. */
  replicate(delta: CrdtDelta): Promise<void> {
    return this.serially(async () => this.dispatch(this.instance.applyDelta(delta)));
  }

  /** Deletes the CRDT as another replica would: the entity answers no more commands, and its streamed calls end. */
  deleteRemotely(): Promise<void> {
    return this.serially(async () => {
      this.instance.deletedByProxy();
      this.closeStreams();
    });
  }

  /**
   * Starts the entity afresh from its replicated state, as the proxy does after a failure with
   * restart or after passivation: its streamed calls end.
   */
  restart(): void {
    const state = this.instance.deleted ? undefined : this.instance.state.fullState();
    this.closeStreams();
    this.instance = new CrdtInstance(this.entity as unknown as CrdtEntity, this.entityId, state, this.logger);
  }

  /** @internal */
  cancel(commandId: bigint): Promise<CrdtCancelResult> {
    return this.serially(async () => {
      this.streams.get(commandId)?.stream.close();
      this.streams.delete(commandId);
      const out = this.instance.cancelStream(commandId);
      const first = out[0]?.message;
      if (first?.case !== "streamCancelledResponse") throw new Error(`the entity answered a cancellation with ${first?.case}`);
      this.dispatch(out.slice(1));
      const { sideEffects, stateAction } = first.value;
      return { sideEffects, ...this.stateOf(stateAction) };
    });
  }

  private closeStreams(): void {
    for (const { stream } of this.streams.values()) stream.close();
    this.streams.clear();
  }

  private serially<T>(op: () => Promise<T>): Promise<T> {
    const result = this.queue.then(op);
    this.queue = result.catch(() => undefined);
    return result;
  }

  private async handle(
    name: string,
    input: MessageInitShape<Methods[string]["input"]>,
    streamed: boolean,
    options: CrdtCallOptions | undefined,
  ): Promise<{ result: CrdtCommandResult<Message>; stream?: CrdtTestkitStream<Message> }> {
    const method = this.entity.service.method[name];
    if (!method) throw new TypeError(`${this.entity.service.typeName} has no method ${name}`);
    if (streamed && method.methodKind !== "server_streaming") throw new TypeError(`${name} is not a server-streaming method: use call() or send()`);
    const id = this.nextId++;
    const out = await this.instance.handleCommand(
      create(CommandSchema, {
        entityId: this.entityId,
        id,
        name: method.name,
        payload: pack(method.input, create(method.input, input)),
        streamed,
        metadata: metadataProto(options?.metadata),
      }),
    );
    const first = out[0]?.message;
    if (first?.case !== "reply") throw new Error(`the entity answered a command with ${first?.case}`);
    const reply = first.value;
    const action = decodeAction(method.output, reply.clientAction);
    if (action.failure?.restart) this.restart();
    const result: CrdtCommandResult<Message> = {
      ...action,
      sideEffects: reply.sideEffects,
      ...this.stateOf(reply.stateAction),
      streamed: reply.streamed,
    };
    let stream: CrdtTestkitStream<Message> | undefined;
    if (streamed) {
      stream = new CrdtTestkitStream(this as unknown as CrdtTestkit<GenServiceMethods, Crdt>, id, result);
      if (reply.streamed) this.streams.set(id, { stream, output: method.output });
      else stream.close();
    }
    // The command's own further replies come first, then what its change made the open calls push.
    this.dispatch(out.slice(1));
    return { result, stream };
  }

  /** Hands streamed messages to their calls. */
  private dispatch(out: readonly CrdtStreamOut[]): void {
    for (const message of out) {
      if (message.message.case !== "streamedMessage") throw new Error(`unexpected ${message.message.case} from the entity`);
      const { commandId, clientAction, sideEffects, endStream } = message.message.value;
      const open = this.streams.get(commandId);
      if (!open) throw new Error(`the entity pushed a message on call ${commandId}, which is not open`);
      open.stream.push({ ...decodeAction(open.output, clientAction), sideEffects, endStream });
      if (endStream) {
        open.stream.close();
        this.streams.delete(commandId);
      }
    }
  }

  private stateOf(stateAction: CrdtStateAction | undefined): Pick<CrdtCommandResult<Message>, "delta" | "deleted" | "writeConsistency"> {
    const action = stateAction?.action;
    const delta = action?.case === "update" ? action.value : undefined;
    if (delta) this.deltas.push(delta);
    if (action?.case === "delete") this.closeStreams();
    return { delta, deleted: action?.case === "delete", writeConsistency: stateAction?.writeConsistency ?? CrdtWriteConsistency.LOCAL };
  }
}

/** A streamed call in the testkit: what it pushed so far, and its cancellation. */
export class CrdtTestkitStream<Output extends Message> {
  /** Every message pushed to the client, in order: the command's replies first. */
  readonly messages: CrdtStreamedResult<Output>[] = [];
  private closed = false;

  constructor(
    private readonly testkit: CrdtTestkit<GenServiceMethods, Crdt>,
    /** The command's id (the call's id on the protocol stream). */
    readonly commandId: bigint,
    /** What the command itself produced (its first reply is also the first of `messages`). */
    readonly result: CrdtCommandResult<Output>,
  ) {
    const { reply, forward, failure, sideEffects, streamed } = result;
    if (reply || forward || failure) this.messages.push({ reply, forward, failure, sideEffects, endStream: !streamed });
  }

  /** The replies pushed to the client so far, in order. */
  get replies(): Output[] {
    return this.messages.flatMap((m) => (m.reply ? [m.reply] : []));
  }

  /** Whether the call is still open. */
  get open(): boolean {
    return !this.closed;
  }

  /** The failure that ended the call, if one did. */
  get failure(): CrdtFailure | undefined {
    return this.messages.find((m) => m.failure)?.failure;
  }

  /** The client goes away: the entity's onStreamCancel runs (if any), and its answer is returned. */
  cancel(): Promise<CrdtCancelResult> {
    if (this.closed) return Promise.reject(new Error(`call ${this.commandId} is not open`));
    return this.testkit.cancel(this.commandId);
  }

  /** @internal */
  push(message: CrdtStreamedResult<Output>): void {
    this.messages.push(message);
  }

  /** @internal */
  close(): void {
    this.closed = true;
  }
}

function decodeAction(output: DescMessage, action: ClientAction | undefined) {
  const a = action?.action;
  return {
    reply: a?.case === "reply" && a.value.payload ? unpackReply(output, a.value.payload) : undefined,
    forward: a?.case === "forward" ? a.value : undefined,
    failure: a?.case === "failure" ? { description: a.value.description, restart: a.value.restart } : undefined,
  };
}

/** An in-process testkit for a CRDT entity. */
export function crdtTestkit<Methods extends GenServiceMethods, State extends Crdt>(
  entity: CrdtEntity<Methods, State>,
  options?: CrdtTestkitOptions,
): CrdtTestkit<Methods, State> {
  return new CrdtTestkit(entity, options);
}
