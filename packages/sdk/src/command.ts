// From a protocol command to the user's handler, the same for every entity type: the routes of a
// service (built and checked when the entity is defined), the decoding of a payload, and what a
// bug in a handler becomes.
import { fromBinary, type DescMethod, type DescService, type Message } from "@bufbuild/protobuf";
import { AnySchema, type Any } from "@bufbuild/protobuf/wkt";
import { isAnySchema, isProtobufUrl, typeNameOf, typeUrl } from "./any.js";
import { CommandFailure } from "./errors.js";
import { describeError, type Logger } from "./logger.js";

/** @internal A command handler resolved by the method's proto name. */
export interface CommandRoute<Handler> {
  readonly method: DescMethod;
  readonly outputUrl: string;
  readonly handle: Handler;
}

/**
 * The handlers of `service`, by proto method name. The checks repeat the compiler's, for JavaScript
 * users and casts: one handler per method, none for a method the service lacks, and (for entities)
 * unary methods only. `model` names the entity type in messages, e.g. "event-sourced entities".
 */
export function commandRoutes<Handler>(
  service: DescService,
  handlers: object,
  where: string,
  unaryOnly?: { model: string },
): ReadonlyMap<string, CommandRoute<Handler>> {
  const byKey = handlers as Record<string, unknown>;
  const routes = new Map<string, CommandRoute<Handler>>();
  for (const method of service.methods) {
    const handle = byKey[method.localName];
    if (typeof handle !== "function") throw new TypeError(`${where}: no command handler for ${method.name} (key "${method.localName}")`);
    if (unaryOnly && method.methodKind !== "unary") {
      throw new TypeError(`${where}: ${method.name} is ${method.methodKind}; ${unaryOnly.model} serve unary methods only`);
    }
    routes.set(method.name, { method, outputUrl: typeUrl(method.output), handle: handle as Handler });
  }
  for (const key of Object.keys(byKey)) {
    if (!service.methods.some((m) => m.localName === key)) {
      throw new TypeError(`${where}: command handler "${key}" matches no method of the service`);
    }
  }
  return routes;
}

/** Checks a passivation timeout option (undefined = the proxy's default). */
export function checkPassivationTimeout(where: string, ms: number | undefined): void {
  if (ms !== undefined && !(Number.isInteger(ms) && ms > 0)) {
    throw new TypeError(`${where}: passivationTimeoutMs must be a whole number > 0, got ${ms}`);
  }
}

/**
 * The command's input. A payload of another type, or one that does not decode, throws a
 * CommandFailure: the client gets the description, and the entity goes on. A method that takes
 * google.protobuf.Any takes any payload, as is (see anyInput).
 */
export function decodeInput(method: DescMethod, payload: Any | undefined): Message {
  if (isAnySchema(method.input) && payload) return anyInput(method, payload);
  // Compare names, not whole URLs: the host part of a type URL carries no meaning.
  if (!payload || typeNameOf(payload.typeUrl) !== method.input.typeName) {
    throw new CommandFailure(`${method.name} expects a ${typeUrl(method.input)} payload, got ${payload?.typeUrl || "none"}`);
  }
  try {
    return fromBinary(method.input, payload.value);
  } catch (e) {
    throw new CommandFailure(`Cannot decode the ${method.name} payload: ${(e as Error).message}`);
  }
}

/**
 * The input of a method that takes google.protobuf.Any: an eventing delivery's payload is the
 * message as is, whatever its type (a protobuf message, JSON, text, bytes). A client's call (or a
 * forward) packs its request like any other, as a `google.protobuf.Any` message: that one is unwrapped,
 * so the handler gets the Any the caller sent either way.
 */
function anyInput(method: DescMethod, payload: Any): Message {
  if (!isProtobufUrl(payload.typeUrl) || typeNameOf(payload.typeUrl) !== AnySchema.typeName) return payload;
  try {
    return fromBinary(AnySchema, payload.value);
  } catch (e) {
    throw new CommandFailure(`Cannot decode the ${method.name} payload: ${(e as Error).message}`);
  }
}

/**
 * A bug in the user's code (any exception but a CommandFailure): logs it as "<what> <service.Method><detail>
 * failed" with the stack, and returns the short description the client gets (the details stay in the log).
 */
export function reportBug(logger: Logger, method: DescMethod, what: string, detail: string, e: unknown): string {
  const where = `${method.parent.typeName}.${method.name}`;
  logger.error(`${what} ${where}${detail} failed: ${describeError(e)}`);
  return `Unexpected error in ${where} (see the user function's log)`;
}
