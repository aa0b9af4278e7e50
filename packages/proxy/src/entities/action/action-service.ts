// Actions (PROTOCOL.md §5): stateless calls, one protocol call per client call, in the client's shape.
// Each ActionResponse becomes a CommandOutcome that the dispatcher carries out (effects, forward,
// reply). Unary actions also serve forwards and side effects from other services.
import { create } from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import {
  ActionCommandSchema,
  ActionResponseSchema,
  ClientActionSchema,
  type ActionCommand,
  type ActionResponse,
  type Metadata,
} from "@cloudstate-ts/protocol";
import type { MethodModel, ServiceModel } from "../../discovery/service-model.js";
import type { UserFunctionConnection } from "../../user-function/connection.js";
import type { CommandOutcome, CommandRequest, EntityService } from "../command.js";

const PATHS = {
  unary: "/cloudstate.action.ActionProtocol/handleUnary",
  streamedIn: "/cloudstate.action.ActionProtocol/handleStreamedIn",
  streamedOut: "/cloudstate.action.ActionProtocol/handleStreamedOut",
  streamed: "/cloudstate.action.ActionProtocol/handleStreamed",
} as const;

export interface ActionServiceOptions {
  readonly service: ServiceModel;
  readonly connection: UserFunctionConnection;
  /** How long a unary action may take. */
  readonly commandTimeoutMs: number;
}

export class ActionService implements EntityService {
  private open = 0;

  constructor(private readonly o: ActionServiceOptions) {}

  /** A unary action (also the target of forwards and side effects). */
  async handle(request: CommandRequest): Promise<CommandOutcome> {
    this.open++;
    try {
      const response = await this.o.connection.unary(
        PATHS.unary,
        ActionCommandSchema,
        ActionResponseSchema,
        this.command(request.method, request.payload, request.metadata, request.payloadTypeUrl),
        this.o.commandTimeoutMs,
        request.signal,
      );
      return outcomeOf(response);
    } finally {
      this.open--;
    }
  }

  /** Client streaming: the first message names the method (no payload), then one per client message. */
  async streamedIn(method: MethodModel, requests: AsyncIterable<Uint8Array>, metadata: Metadata | undefined, signal: AbortSignal): Promise<CommandOutcome> {
    this.open++;
    try {
      const call = this.o.connection.clientStream(PATHS.streamedIn, ActionCommandSchema, ActionResponseSchema, signal);
      call.write(create(ActionCommandSchema, { serviceName: this.o.service.name, name: method.name, metadata }));
      for await (const payload of requests) {
        call.write(create(ActionCommandSchema, { payload: anyOf(method.inputTypeUrl, payload) }));
      }
      call.end();
      return outcomeOf(await call.response);
    } finally {
      this.open--;
    }
  }

  /** Server streaming: every response the user function streams, in order. */
  async *streamedOut(method: MethodModel, payload: Uint8Array, metadata: Metadata | undefined, signal: AbortSignal): AsyncIterable<CommandOutcome> {
    this.open++;
    try {
      const responses = this.o.connection.serverStream(PATHS.streamedOut, ActionCommandSchema, ActionResponseSchema, this.command(method, payload, metadata), signal);
      for await (const response of responses) yield outcomeOf(response);
    } finally {
      this.open--;
    }
  }

  /** Bidirectional: requests flow in as they come, responses out as the user function sends them. */
  async *streamed(method: MethodModel, requests: AsyncIterable<Uint8Array>, metadata: Metadata | undefined, signal: AbortSignal): AsyncIterable<CommandOutcome> {
    this.open++;
    const stream = this.o.connection.openStream(PATHS.streamed, ActionCommandSchema, ActionResponseSchema);
    const cancel = () => stream.cancel();
    signal.addEventListener("abort", cancel, { once: true });
    try {
      stream.write(create(ActionCommandSchema, { serviceName: this.o.service.name, name: method.name, metadata }));
      const pumping = (async () => {
        for await (const payload of requests) stream.write(create(ActionCommandSchema, { payload: anyOf(method.inputTypeUrl, payload) }));
        stream.end();
      })();
      // A failing client side cancels the call; the read loop below then ends with the error.
      pumping.catch(cancel);
      for await (const response of this.o.connection.iterate<ActionResponse>(stream as unknown as AsyncIterable<unknown>)) {
        yield outcomeOf(response);
      }
    } finally {
      signal.removeEventListener("abort", cancel);
      this.open--;
    }
  }

  activeEntities(): number {
    return this.open;
  }

  async shutdown(): Promise<void> {
    // Open calls are owned by their clients' calls, which the ingress drains first.
  }

  abort(): void {
    // Open calls end with their clients' calls when the ingress force-closes them.
  }

  private command(method: MethodModel, payload: Uint8Array, metadata: Metadata | undefined, typeUrl = method.inputTypeUrl): ActionCommand {
    return create(ActionCommandSchema, {
      serviceName: this.o.service.name,
      name: method.name,
      payload: anyOf(typeUrl, payload),
      metadata,
    });
  }
}

/** An ActionResponse as an outcome; no response set means "send nothing", its side effects still run. */
function outcomeOf(response: ActionResponse): CommandOutcome {
  const r = response.response;
  const action = r.case === undefined ? undefined : create(ClientActionSchema, { action: r });
  return { action, sideEffects: response.sideEffects };
}

function anyOf(typeUrl: string, value: Uint8Array) {
  return create(AnySchema, { typeUrl, value });
}
