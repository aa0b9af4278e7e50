// Calls a service method on behalf of a client or of another entity, and carries out what the user
// function decided (PROTOCOL.md §6): side effects first (synchronous ones awaited in order,
// asynchronous ones fire-and-forget), then the forward or the reply. State is already durable when
// an outcome arrives here, so nothing in this module touches the store.
import type { Metadata, SideEffect } from "@cloudstate-ts/protocol";
import { Code, ProxyError } from "../errors.js";
import { readEntityId } from "../discovery/entity-key.js";
import type { MethodModel, ServiceModel, UserFunctionModel } from "../discovery/service-model.js";
import type { CommandOutcome, EntityService } from "../entities/command.js";
import type { Logger } from "../telemetry/logger.js";
import type { ProxyMetrics } from "../telemetry/metrics.js";

export interface Reply {
  readonly payload: Uint8Array;
  readonly metadata?: Metadata | undefined;
}

export interface CallContext {
  readonly metadata?: Metadata | undefined;
  readonly signal?: AbortSignal | undefined;
  /** The client call's request id, for log lines about it. */
  readonly requestId?: string | undefined;
}

/** Forward chains longer than this are a loop in the user function. */
const MAX_FORWARD_HOPS = 32;
const EMPTY = new Uint8Array(0);

export class Dispatcher {
  constructor(
    private readonly model: UserFunctionModel,
    private readonly handlers: ReadonlyMap<string, EntityService>,
    private readonly reportError: (message: string) => void,
    private readonly log: Logger,
    private readonly metrics?: ProxyMetrics,
  ) {}

  /**
   * Runs one unary command end to end: entity, effects, forwards; resolves with the client's reply.
   * This is where every client command (gRPC or HTTP/JSON) is counted and timed, once.
   */
  async call(service: ServiceModel, method: MethodModel, payload: Uint8Array, ctx: CallContext): Promise<Reply> {
    const metrics = this.metrics;
    if (metrics === undefined) return this.callWithTrail(service, method, payload, ctx, 0);
    const start = process.hrtime.bigint();
    try {
      const reply = await this.callWithTrail(service, method, payload, ctx, 0);
      metrics.commandDone(service, method, "OK", start);
      return reply;
    } catch (e) {
      metrics.commandDone(service, method, ProxyError.from(e).codeName, start);
      throw e;
    }
  }

  private async callWithTrail(
    service: ServiceModel,
    method: MethodModel,
    payload: Uint8Array,
    ctx: CallContext,
    hops: number,
  ): Promise<Reply> {
    const handler = this.handlers.get(service.name);
    if (handler === undefined) {
      throw new ProxyError(Code.UNIMPLEMENTED, `service ${service.name} is not served by this proxy`);
    }
    const entityId = readEntityId(payload, method.keyFields, method.desc.input.typeName);
    const outcome = await handler.handle({ service, method, entityId, payload, metadata: ctx.metadata, signal: ctx.signal });
    return this.complete(outcome, service, method, ctx, hops);
  }

  private async complete(
    outcome: CommandOutcome,
    service: ServiceModel,
    method: MethodModel,
    ctx: CallContext,
    hops: number,
  ): Promise<Reply> {
    const reply = await this.settleWithTrail(outcome, service, method, ctx, hops);
    if (reply !== undefined) return reply;
    // An action may answer nothing; a unary client still needs a message: the empty one.
    if (service.kind === "action") return { payload: EMPTY };
    const message = `${service.name}.${method.name}: the user function sent no reply, forward or failure`;
    this.reportError(message);
    throw new ProxyError(Code.INTERNAL, message);
  }

  /**
   * Carries out one outcome: side effects, then the reply or forward. Resolves with the reply for
   * the client, or undefined when the user function chose to send nothing (streamed actions).
   */
  settle(outcome: CommandOutcome, service: ServiceModel, method: MethodModel, ctx: CallContext): Promise<Reply | undefined> {
    return this.settleWithTrail(outcome, service, method, ctx, 0);
  }

  private async settleWithTrail(
    outcome: CommandOutcome,
    service: ServiceModel,
    method: MethodModel,
    ctx: CallContext,
    hops: number,
  ): Promise<Reply | undefined> {
    const action = outcome.action?.action;
    if (action?.case === "failure") {
      // Failures are the user's own errors: the text reaches the client as is.
      throw new ProxyError(Code.UNKNOWN, action.value.description);
    }
    const where = `${service.name}.${method.name}`;
    if (outcome.sideEffects.length > 0) await this.runSideEffects(outcome.sideEffects, where, ctx.requestId);
    switch (action?.case) {
      case "reply": {
        const reply = action.value;
        if (reply.payload !== undefined && reply.payload.typeUrl !== method.outputTypeUrl) {
          const message = `${where} replied with ${reply.payload.typeUrl || "an Any without a type URL"}, but the method returns ${method.outputTypeUrl}`;
          this.reportError(message);
          throw new ProxyError(Code.INTERNAL, message);
        }
        return { payload: reply.payload?.value ?? EMPTY, metadata: reply.metadata };
      }
      case "forward": {
        const forward = action.value;
        if (hops >= MAX_FORWARD_HOPS) {
          const message = `forward loop: more than ${MAX_FORWARD_HOPS} forwards starting before ${where}`;
          this.reportError(message);
          throw new ProxyError(Code.INTERNAL, message);
        }
        const target = this.resolve(forward.serviceName, forward.commandName, forward.payload?.typeUrl, `forwarded from ${where}`);
        return this.callWithTrail(
          target.service,
          target.method,
          forward.payload?.value ?? EMPTY,
          { metadata: forward.metadata ?? ctx.metadata, signal: ctx.signal, requestId: ctx.requestId },
          hops + 1,
        );
      }
      default:
        return undefined;
    }
  }

  private async runSideEffects(effects: readonly SideEffect[], where: string, requestId: string | undefined): Promise<void> {
    for (const effect of effects) {
      const run = this.runSideEffect(effect, where, requestId);
      if (effect.synchronous) await run;
      else void run;
    }
  }

  /** Side effects are not atomic with the state change: a failing one is logged, never thrown. */
  private async runSideEffect(effect: SideEffect, where: string, requestId: string | undefined): Promise<void> {
    try {
      const target = this.resolve(effect.serviceName, effect.commandName, effect.payload?.typeUrl, `side effect of ${where}`);
      await this.callWithTrail(target.service, target.method, effect.payload?.value ?? EMPTY, { metadata: effect.metadata }, 1);
    } catch (e) {
      const err = ProxyError.from(e);
      this.log.warn(
        { effect: `${effect.serviceName}.${effect.commandName}`, code: err.codeName, from: where, requestId },
        `side effect failed: ${err.message}`,
      );
    }
  }

  /** Finds a forward's or side effect's target; a bad one is reported to the user function with its trail. */
  private resolve(serviceName: string, methodName: string, typeUrl: string | undefined, trail: string) {
    const service = this.model.services.get(serviceName);
    const method = service?.methods.get(methodName);
    if (method !== undefined && (method.clientStreaming || method.serverStreaming)) {
      const message = `${serviceName}.${methodName} is a streaming method: forwards and side effects can only call unary methods (${trail})`;
      this.reportError(message);
      throw new ProxyError(Code.INTERNAL, message);
    }
    if (service === undefined || method === undefined) {
      const message = service === undefined
        ? `unknown service ${serviceName} (${trail})`
        : `unknown method ${methodName} of ${serviceName} (${trail})`;
      this.reportError(message);
      throw new ProxyError(Code.INTERNAL, message);
    }
    if (typeUrl !== undefined && typeUrl !== method.inputTypeUrl) {
      const message = `${serviceName}.${methodName} takes ${method.inputTypeUrl}, but was sent ${typeUrl} (${trail})`;
      this.reportError(message);
      throw new ProxyError(Code.INTERNAL, message);
    }
    return { service, method };
  }
}
