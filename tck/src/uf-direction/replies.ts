// Reads what the user function answers, with assertion messages that say what was expected: the
// client action (reply, forward, failure) and the side effects of an entity reply or action response.
import assert from "node:assert/strict";
import { fromBinary, toJson, type DescMessage, type JsonValue, type MessageShape } from "@bufbuild/protobuf";
import type { Any } from "@bufbuild/protobuf/wkt";
import type { ActionResponse } from "@cloudstate-ts/sdk/testing";

/** The Any's message, asserting its type URL is `type.googleapis.com/<schema>`. */
export function unpack<S extends DescMessage>(any: Any | undefined, schema: S, what: string): MessageShape<S> {
  assert.ok(any, `${what}: expected a ${schema.typeName} payload, got none`);
  assert.equal(any.typeUrl, `type.googleapis.com/${schema.typeName}`, `${what}: the payload's type URL`);
  return fromBinary(schema, any.value);
}

/** The parts of a ClientAction this suite looks at (entity replies and action responses both have them). */
type ClientActionCase =
  | { case: "reply"; value: { payload?: Any } }
  | { case: "forward"; value: { serviceName: string; commandName: string; payload?: Any } }
  | { case: "failure"; value: { description: string } }
  | { case: undefined; value?: undefined };

function describe(action: ClientActionCase): string {
  switch (action.case) {
    case "reply":
      return "a reply";
    case "forward":
      return `a forward to ${action.value.serviceName}.${action.value.commandName}`;
    case "failure":
      return `a failure "${action.value.description}"`;
    default:
      return "no client action";
  }
}

/** The reply's message; fails if the answer is a forward, a failure or nothing. */
export function expectReply<S extends DescMessage>(action: ClientActionCase | undefined, schema: S, what: string): MessageShape<S> {
  const a = action ?? { case: undefined };
  assert.equal(a.case, "reply", `${what}: expected a reply, got ${describe(a)}`);
  return unpack((a as { value: { payload?: Any } }).value.payload, schema, `${what} (reply)`);
}

/** The forward's payload (as proto3 JSON), after checking its target. */
export function expectForward(
  action: ClientActionCase | undefined,
  target: { service: string; method: string; input: DescMessage },
  what: string,
): JsonValue {
  const a = action ?? { case: undefined };
  assert.equal(a.case, "forward", `${what}: expected ${`a forward to ${target.service}.${target.method}`}, got ${describe(a)}`);
  const forward = (a as Extract<ClientActionCase, { case: "forward" }>).value;
  assert.equal(forward.serviceName, target.service, `${what}: the forward's service`);
  assert.equal(forward.commandName, target.method, `${what}: the forward's command`);
  return toJson(target.input, unpack(forward.payload, target.input, `${what} (forward)`));
}

/** Asserts a failure with this description. */
export function expectFailure(action: ClientActionCase | undefined, description: string, what: string): void {
  const a = action ?? { case: undefined };
  assert.equal(a.case, "failure", `${what}: expected a failure "${description}", got ${describe(a)}`);
  assert.equal((a as Extract<ClientActionCase, { case: "failure" }>).value.description, description, `${what}: the failure's description`);
}

/** Asserts that nothing goes to the client (an action's "no reply"). */
export function expectNoReply(action: ClientActionCase | undefined, what: string): void {
  const a = action ?? { case: undefined };
  assert.equal(a.case, undefined, `${what}: expected no reply, got ${describe(a)}`);
}

interface SideEffectLike {
  serviceName: string;
  commandName: string;
  payload?: Any;
  synchronous: boolean;
}

/** The side effects as [service.method, payload as proto3 JSON, synchronous], in order, each payload checked against `input`. */
export function sideEffectsOf(effects: readonly SideEffectLike[], input: DescMessage, what: string): [string, JsonValue, boolean][] {
  return effects.map((e, i) => [`${e.serviceName}.${e.commandName}`, toJson(input, unpack(e.payload, input, `${what} (side effect ${i + 1})`)), e.synchronous]);
}

/** An action response's client action, in the shape above. */
export function actionOf(response: ActionResponse | undefined, what: string): ClientActionCase {
  assert.ok(response, `${what}: expected a response, but the call ended`);
  return response.response as ClientActionCase;
}
