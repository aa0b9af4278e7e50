// The action protocol (cloudstate.action.ActionProtocol): one protocol call per client call, in the
// client call's shape. A streamed-in call's first message names the method (and carries the
// metadata) but no payload; each later message is one request. Every response carries the side
// effects recorded since the previous one; a response with nothing set sends the client nothing.
import { create, type DescMethod, type Message } from "@bufbuild/protobuf";
import { ActionProtocol, ActionResponseSchema, type ActionCommand, type ActionResponse } from "@cloudstate-ts/protocol";
import * as grpc from "@grpc/grpc-js";
import { once } from "node:events";
import { decodeInput, reportBug, type CommandRoute } from "../command.js";
import { Metadata, NoReply, replyAction } from "../context.js";
import type { Entity, EntityProtocol, ProtocolEnv } from "../entity.js";
import { CommandFailure, ProtocolError } from "../errors.js";
import { describeError, type Logger } from "../logger.js";
import type { OpenStream } from "../streams.js";
import { ActionCallContext, type ActionContext } from "./context.js";
import type { Action } from "./entity.js";

type Handler = (request: Message | AsyncIterable<Message>, ctx: ActionContext) => unknown;
type Kind = DescMethod["methodKind"];

/** The protocol method that serves each kind of method. */
const RPC: Record<Kind, string> = {
  unary: "handleUnary",
  client_streaming: "handleStreamedIn",
  server_streaming: "handleStreamedOut",
  bidi_streaming: "handleStreamed",
};

/** One call in progress: its handler and context. */
interface Call {
  readonly route: CommandRoute<Handler>;
  readonly ctx: ActionCallContext;
}

/**
 * Runs action calls, independent of the transport (the testkit drives it directly). Whatever goes
 * wrong becomes a failure response: a `ctx.fail`, a bug in a handler (logged), a protocol violation.
 */
export class ActionRunner {
  constructor(
    private readonly actions: ReadonlyMap<string, Action>,
    private readonly logger: Logger,
  ) {}

  async unary(command: ActionCommand, signal: AbortSignal): Promise<ActionResponse> {
    let call: Call | undefined;
    try {
      call = this.start(command, "unary", signal);
      const request = decodeInput(call.route.method, command.payload);
      return this.respond(call, await call.route.handle(request, call.ctx));
    } catch (e) {
      return this.failed(e, call, signal);
    } finally {
      call?.ctx.deactivate();
    }
  }

  async streamedIn(commands: AsyncIterable<ActionCommand>, signal: AbortSignal): Promise<ActionResponse> {
    const input = new Requests(commands);
    let call: Call | undefined;
    try {
      call = this.start(await input.header(), "client_streaming", signal);
      const result = await call.route.handle(input.requests(call.route.method), call.ctx);
      input.check();
      return this.respond(call, result);
    } catch (e) {
      return this.failed(input.violation ?? e, call, signal);
    } finally {
      call?.ctx.deactivate();
    }
  }

  /** The responses, in order; a failure is the last one. The caller stops early by returning the generator. */
  async *streamedOut(command: ActionCommand, signal: AbortSignal): AsyncGenerator<ActionResponse, void, undefined> {
    let call: Call | undefined;
    try {
      call = this.start(command, "server_streaming", signal);
      const request = decodeInput(call.route.method, command.payload);
      yield* this.responses(call, call.route.handle(request, call.ctx));
    } catch (e) {
      yield this.failed(e, call, signal);
    } finally {
      call?.ctx.deactivate();
    }
  }

  async *streamed(commands: AsyncIterable<ActionCommand>, signal: AbortSignal): AsyncGenerator<ActionResponse, void, undefined> {
    const input = new Requests(commands);
    let call: Call | undefined;
    try {
      call = this.start(await input.header(), "bidi_streaming", signal);
      yield* this.responses(call, call.route.handle(input.requests(call.route.method), call.ctx), input);
    } catch (e) {
      yield this.failed(input.violation ?? e, call, signal);
    } finally {
      call?.ctx.deactivate();
    }
  }

  /** Finds the handler for a call of the given kind. */
  private start(command: ActionCommand, kind: Kind, signal: AbortSignal): Call {
    const action = this.actions.get(command.serviceName);
    if (!action) {
      const served = [...this.actions.keys()].join(", ") || "none";
      throw new ProtocolError(`no action serves ${command.serviceName || "(no service name)"} (served: ${served})`);
    }
    const route = action.commands.get(command.name) as CommandRoute<Handler> | undefined;
    if (!route) throw new CommandFailure(`Unknown command ${command.name} for ${action.service.typeName}`);
    if (route.method.methodKind !== kind) {
      throw new ProtocolError(`${action.service.typeName}.${command.name} is ${route.method.methodKind}: call it with ${RPC[route.method.methodKind]}, not ${RPC[kind]}`);
    }
    return { route, ctx: new ActionCallContext(route.method.name, Metadata.fromProto(command.metadata), signal) };
  }

  /** A handler's answer as a response, with the side effects recorded since the last response. */
  private respond(call: Call, answer: unknown): ActionResponse {
    const { ctx, route } = call;
    // A failure stands even if the handler caught the CommandFailure.
    if (ctx.failure !== undefined) throw new CommandFailure(ctx.failure);
    if (answer instanceof NoReply) return create(ActionResponseSchema, { sideEffects: ctx.takeSideEffects() });
    if (answer === undefined || answer === null) {
      const where = `the handler of ${route.method.parent.name}.${route.method.name}`;
      throw new TypeError(`${where} answered nothing: give the ${route.method.output.typeName} reply, ctx.forward(...) or ctx.noReply()`);
    }
    const action = replyAction(route.method, route.outputUrl, answer).action;
    if (action.case !== "reply" && action.case !== "forward") throw new Error(`unexpected client action ${action.case}`);
    return create(ActionResponseSchema, { response: action, sideEffects: ctx.takeSideEffects() });
  }

  /**
   * The responses of a handler's answers (an iterable). Stops when the handler is done, fails, or
   * the call is aborted; then the handler's iterator is closed (its `finally` blocks run).
   */
  private async *responses(call: Call, answers: unknown, input?: Requests): AsyncGenerator<ActionResponse, void, undefined> {
    const iterator = iteratorOf(answers, call.route.method);
    let finished = false;
    try {
      for (;;) {
        const next = await iterator.next();
        input?.check();
        if (call.ctx.signal.aborted) return;
        if (next.done) break;
        yield this.respond(call, next.value);
      }
      finished = true;
      if (call.ctx.failure !== undefined) throw new CommandFailure(call.ctx.failure);
      // Effects recorded after the last answer still run, with a response that sends nothing.
      if (call.ctx.sideEffects.length > 0) yield create(ActionResponseSchema, { sideEffects: call.ctx.takeSideEffects() });
    } finally {
      if (!finished) await this.close(iterator, call);
    }
  }

  private async close(iterator: AsyncIterator<unknown> | Iterator<unknown>, call: Call): Promise<void> {
    try {
      await iterator.return?.();
    } catch (e) {
      if (!(e instanceof CommandFailure)) reportBug(this.logger, call.route.method, "closing the responses of action", "", e);
    }
  }

  /** What a thrown error becomes: a failure response (logged, unless it is the user's own failure). */
  private failed(e: unknown, call: Call | undefined, signal: AbortSignal): ActionResponse {
    const failure = (description: string) => create(ActionResponseSchema, { response: { case: "failure", value: { description } } });
    const userFailure = call?.ctx.failure ?? (e instanceof CommandFailure ? e.message : undefined);
    if (userFailure !== undefined) return failure(userFailure);
    if (e instanceof ProtocolError) {
      this.logger.warn(`protocol error on an action call${call ? ` of ${call.route.method.parent.typeName}.${call.route.method.name}` : ""}: ${e.message}`);
      return failure(e.message);
    }
    // A call the client gave up: the handler stopped because of it (e.g. an AbortError); nobody listens.
    if (signal.aborted) return failure("cancelled");
    if (!call) {
      this.logger.error(`an action call failed: ${describeError(e)}`);
      return failure(e instanceof Error ? e.message : String(e));
    }
    return failure(reportBug(this.logger, call.route.method, "action", "", e));
  }
}

/** A streamed call's messages: the header (no payload), then the requests. */
class Requests {
  /** A protocol violation seen in the requests: it fails the call even if the handler caught it. */
  violation: ProtocolError | undefined;
  private readonly iterator: AsyncIterator<ActionCommand>;

  constructor(commands: AsyncIterable<ActionCommand>) {
    this.iterator = commands[Symbol.asyncIterator]();
  }

  async header(): Promise<ActionCommand> {
    const first = await this.iterator.next();
    if (first.done) throw new ProtocolError("the call ended before its first message (the one that names the method)");
    if (first.value.payload) {
      throw new ProtocolError(`the first message of a streamed call names the method and carries no payload, got a ${first.value.payload.typeUrl} payload`);
    }
    return first.value;
  }

  /** The requests, decoded; the handler may stop reading them at any time. */
  async *requests(method: DescMethod): AsyncGenerator<Message, void, undefined> {
    for (;;) {
      const next = await this.iterator.next();
      if (next.done) return;
      let request: Message;
      try {
        request = decodeInput(method, next.value.payload);
      } catch (e) {
        this.violation = new ProtocolError((e as Error).message);
        throw this.violation;
      }
      yield request;
    }
  }

  check(): void {
    if (this.violation) throw this.violation;
  }
}

function iteratorOf(answers: unknown, method: DescMethod): AsyncIterator<unknown> | Iterator<unknown> {
  if (answers !== null && typeof answers === "object") {
    if (Symbol.asyncIterator in answers) return (answers as AsyncIterable<unknown>)[Symbol.asyncIterator]();
    if (Symbol.iterator in answers) return (answers as Iterable<unknown>)[Symbol.iterator]();
  }
  const what = answers instanceof Promise ? "a promise" : typeof answers;
  throw new TypeError(
    `the handler of ${method.parent.name}.${method.name} returned ${what}: a ${method.methodKind} handler returns an (async) iterable of answers, e.g. it is an async generator (async *${method.localName}(...) { yield ... })`,
  );
}

/** A call of the protocol service, for close(): streamed responses stop; other calls finish. */
class ActionCallStream implements OpenStream {
  /** Set when the server's close() stopped this call. */
  stopped = false;
  readonly controller = new AbortController();

  constructor(
    call: { once(event: "cancelled", listener: () => void): unknown },
    private readonly streamsResponses: boolean,
  ) {
    call.once("cancelled", () => this.controller.abort(new Error("the call was cancelled")));
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  shutdown(): void {
    if (!this.streamsResponses) return; // a single response: let it come (close() bounds the wait)
    this.stopped = true;
    this.controller.abort(new Error("the user function is shutting down"));
  }
}

type ResponseStream = grpc.ServerWritableStream<ActionCommand, ActionResponse> | grpc.ServerDuplexStream<ActionCommand, ActionResponse>;

/** Writes the responses down the call, with backpressure, until they end or the call is aborted. */
async function relay(call: ResponseStream, responses: AsyncGenerator<ActionResponse, void, undefined>, open: ActionCallStream, logger: Logger): Promise<void> {
  const { signal } = open;
  try {
    for await (const response of responses) {
      if (signal.aborted) break;
      if (!call.write(response)) await drained(call, signal);
    }
  } catch (e) {
    // The runner turns every error into a failure response: this is the SDK's own bug.
    logger.error(`an action stream failed: ${describeError(e)}`);
    if (!call.cancelled) call.emit("error", { code: grpc.status.INTERNAL, details: "the user function failed (see its log)" });
    return;
  }
  if (call.cancelled) return;
  if (open.stopped) call.emit("error", { code: grpc.status.UNAVAILABLE, details: "the user function is shutting down" });
  else call.end();
}

async function drained(call: ResponseStream, signal: AbortSignal): Promise<void> {
  try {
    await once(call, "drain", { signal });
  } catch {
    // Aborted: the caller sees the signal.
  }
}

export const actionProtocol: EntityProtocol = {
  service: ActionProtocol,
  handlers(entities: readonly Entity[], env: ProtocolEnv) {
    const byService = new Map<string, Action>();
    for (const entity of entities) byService.set(entity.service.typeName, entity as Action);
    const runner = new ActionRunner(byService, env.logger);
    const incoming = (call: grpc.ServerReadableStream<ActionCommand, ActionResponse> | grpc.ServerDuplexStream<ActionCommand, ActionResponse>) =>
      // Iterating the call itself would destroy it at the end of input, before the response is sent.
      call.iterator({ destroyOnReturn: false }) as AsyncIterable<ActionCommand>;
    return {
      handleUnary(call: grpc.ServerUnaryCall<ActionCommand, ActionResponse>, callback: grpc.sendUnaryData<ActionResponse>) {
        const open = new ActionCallStream(call, false);
        env.streams.track(open, runner.unary(call.request, open.signal).then((response) => callback(null, response)));
      },
      handleStreamedIn(call: grpc.ServerReadableStream<ActionCommand, ActionResponse>, callback: grpc.sendUnaryData<ActionResponse>) {
        const open = new ActionCallStream(call, false);
        env.streams.track(open, runner.streamedIn(incoming(call), open.signal).then((response) => callback(null, response)));
      },
      handleStreamedOut(call: grpc.ServerWritableStream<ActionCommand, ActionResponse>) {
        const open = new ActionCallStream(call, true);
        env.streams.track(open, relay(call, runner.streamedOut(call.request, open.signal), open, env.logger));
      },
      handleStreamed(call: grpc.ServerDuplexStream<ActionCommand, ActionResponse>) {
        const open = new ActionCallStream(call, true);
        env.streams.track(open, relay(call, runner.streamed(incoming(call), open.signal), open, env.logger));
      },
    };
  },
};
