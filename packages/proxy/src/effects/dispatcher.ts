// Calls a service method on behalf of a client or of another entity, and carries out what the user
// function decided (PROTOCOL.md §6): side effects first (synchronous ones awaited in order,
// asynchronous ones fire-and-forget), then the forward or the reply. State is already durable when
// an outcome arrives here, so nothing in this module touches the store.
import type { Metadata, SideEffect } from "@cloudstate-ts/protocol";
import { Code, ProxyError } from "../errors.js";
import { readEntityId } from "../discovery/entity-key.js";
import { replyTypeFits, type MethodModel, type ServiceModel, type UserFunctionModel } from "../discovery/service-model.js";
import { toBinary } from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import type { CommandOutcome, EntityService } from "../entities/command.js";
import type { Logger } from "../telemetry/logger.js";
import type { ProxyMetrics } from "../telemetry/metrics.js";

export interface Reply {
  readonly payload: Uint8Array;
  readonly metadata?: Metadata | undefined;
  /**
   * A method returning google.protobuf.Any replies with any message: `payload` is then the whole
   * Any (what its client gets), and this is the Any itself (what a topic gets).
   */
  readonly any?: { readonly typeUrl: string; readonly value: Uint8Array } | undefined;
  /**
   * The type URL of `payload` as the user function sent it: the output type of the method that
   * answered (after a forward, the target's), for publishing to topics.
   */
  readonly typeUrl?: string | undefined;
}

/** A message from an eventing source, addressed to one subscriber method. */
export interface Delivery {
  readonly service: ServiceModel;
  readonly method: MethodModel;
  readonly payload: Uint8Array;
  /** The payload's type URL, when the method takes google.protobuf.Any. */
  readonly typeUrl?: string | undefined;
  /** The message's subject ("" when none): it addresses the entity when the payload has no key field (a method taking Any). */
  readonly subject: string;
  /** The CloudEvent attributes. */
  readonly metadata: Metadata;
  readonly signal?: AbortSignal | undefined;
}

/** Publishes the reply of a method that has an eventing.out topic (set by eventing/). */
export type ReplyPublisher = (service: ServiceModel, method: MethodModel, reply: Reply, cause: PublishCause) => Promise<void>;

/** Why a reply is published: a client's call, or the delivery of an eventing message (its id makes the publish idempotent). */
export type PublishCause = { readonly kind: "call"; readonly entityId: string } | { readonly kind: "delivery"; readonly delivery: Delivery; readonly messageKey: string };

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

  /** Where replies of methods with an eventing.out topic go; unset, such methods publish nothing. */
  publisher: ReplyPublisher | undefined;

  /**
   * Delivers one eventing message to its subscriber method: entity, effects, forwards, like a
   * client's call. Resolves with the reply (undefined when the user function sent none: nothing to
   * publish); rejects when the user function failed the command or could not be reached, so that
   * the consumer retries. A reply of a method with an eventing.out topic is published (idempotently,
   * keyed by `messageKey`) before this resolves.
   */
  async deliver(delivery: Delivery, messageKey: string): Promise<Reply | undefined> {
    const { service, method } = delivery;
    const handler = this.handlers.get(service.name);
    if (handler === undefined) throw new ProxyError(Code.UNIMPLEMENTED, `service ${service.name} is not served by this proxy`);
    const entityId = method.keyFields.length > 0 ? readEntityId(delivery.payload, method.keyFields, method.desc.input.typeName) : delivery.subject;
    if (service.kind !== "action" && entityId === "") {
      throw new ProxyError(Code.INVALID_ARGUMENT, `${service.name}.${method.name}: the message has no entity id (no key field value and no ce-subject)`);
    }
    const outcome = await handler.handle({
      service,
      method,
      entityId,
      payload: delivery.payload,
      payloadTypeUrl: delivery.typeUrl,
      metadata: delivery.metadata,
      signal: delivery.signal,
    });
    const reply = await this.settleWithTrail(outcome, service, method, { metadata: delivery.metadata, signal: delivery.signal }, 0);
    if (reply !== undefined && method.eventing?.out !== undefined && this.publisher !== undefined) {
      await this.publisher(service, method, reply, { kind: "delivery", delivery, messageKey });
    }
    return reply;
  }

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
    if (method.keyFields.length === 0 && service.kind !== "action") {
      // A subscriber method taking Any: its entity is named by the event, not by a key field.
      throw new ProxyError(Code.FAILED_PRECONDITION, `${service.name}.${method.name} only takes eventing messages (its input is google.protobuf.Any, so it has no entity key)`);
    }
    const entityId = readEntityId(payload, method.keyFields, method.desc.input.typeName);
    const outcome = await handler.handle({ service, method, entityId, payload, metadata: ctx.metadata, signal: ctx.signal });
    const reply = await this.complete(outcome, service, method, ctx, hops);
    // A method with an eventing.out topic publishes every reply, also to clients' calls; the client
    // gets its reply once the message is stored.
    if (hops === 0 && method.eventing?.out !== undefined && this.publisher !== undefined) {
      await this.publisher(service, method, reply, { kind: "call", entityId });
    }
    return reply;
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
        if (reply.payload !== undefined && !replyTypeFits(method, reply.payload.typeUrl)) {
          const message = `${where} replied with ${reply.payload.typeUrl || "an Any without a type URL"}, but the method returns ${method.outputTypeUrl}`;
          this.reportError(message);
          throw new ProxyError(Code.INTERNAL, message);
        }
        const typeUrl = reply.payload?.typeUrl;
        // A method returning Any: its client gets the whole Any (unless the user function wrapped it already).
        if (reply.payload !== undefined && typeUrl !== method.outputTypeUrl && method.outputIsAny) {
          return { payload: toBinary(AnySchema, reply.payload), metadata: reply.metadata, any: reply.payload };
        }
        return { payload: reply.payload?.value ?? EMPTY, metadata: reply.metadata, typeUrl: typeUrl ?? method.outputTypeUrl };
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
