// The outcomes of a server-streaming call (one request, a stream of replies), for every ingress
// (gRPC, HTTP/JSON, gRPC-web/Connect): an action's streamedOut, or a keyed entity's handleStreamed (CRDT).
import type { Metadata } from "@cloudstate-ts/protocol";
import { Code, ProxyError } from "../errors.js";
import { readEntityId } from "../discovery/entity-key.js";
import type { MethodModel, ServiceModel } from "../discovery/service-model.js";
import type { CommandOutcome, EntityService } from "../entities/command.js";
import { ActionService } from "../entities/action/action-service.js";

/** Throws UNIMPLEMENTED for a service kind that cannot stream, INVALID_ARGUMENT for a bad entity key. */
export function serverStreamOutcomes(
  handler: EntityService | undefined,
  service: ServiceModel,
  method: MethodModel,
  payload: Uint8Array,
  metadata: Metadata | undefined,
  signal: AbortSignal,
): AsyncIterable<CommandOutcome> {
  if (handler instanceof ActionService) return handler.streamedOut(method, payload, metadata, signal);
  if (handler?.handleStreamed) {
    const entityId = readEntityId(payload, method.keyFields, method.desc.input.typeName);
    return handler.handleStreamed({ service, method, entityId, payload, metadata, signal });
  }
  throw new ProxyError(Code.UNIMPLEMENTED, `${method.path}: streaming calls are not supported yet for ${service.kind} services`);
}
