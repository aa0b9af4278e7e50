// Defining an action: a stateless service whose handlers take the call's shape (unary, streamed
// in, streamed out, both), typed from the user's generated protobuf code.
import type { DescFile, DescMessage, Message, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import type { GenService, GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import { commandRoutes, type CommandRoute } from "../command.js";
import type { Forward, NoReply } from "../context.js";
import type { Entity } from "../entity.js";
import type { ActionContext } from "./context.js";
import { actionProtocol } from "./handler.js";

/** An action's answer: the reply (a message or its init shape), `ctx.forward(...)`, or `ctx.noReply()`. */
export type ActionReply<O extends DescMessage> = MessageInitShape<O> | Forward<O> | NoReply;

/** The answers of a streamed-out or bidirectional call, in order: an async generator, usually. */
export type ActionReplies<O extends DescMessage> = AsyncIterable<ActionReply<O>> | Iterable<ActionReply<O>>;

type Method = GenServiceMethods[string];

/** A method's handler; the method's kind decides its shape. */
export type ActionHandler<M extends Method> = M["methodKind"] extends "unary"
  ? (request: MessageShape<M["input"]>, ctx: ActionContext) => ActionReply<M["output"]> | Promise<ActionReply<M["output"]>>
  : M["methodKind"] extends "server_streaming"
    ? (request: MessageShape<M["input"]>, ctx: ActionContext) => ActionReplies<M["output"]>
    : M["methodKind"] extends "client_streaming"
      ? (
          requests: AsyncIterable<MessageShape<M["input"]>>,
          ctx: ActionContext,
        ) => ActionReply<M["output"]> | Promise<ActionReply<M["output"]>>
      : (requests: AsyncIterable<MessageShape<M["input"]>>, ctx: ActionContext) => ActionReplies<M["output"]>;

/** One handler per method of the service, keyed by the method's local name (e.g. `addItem`). */
export type ActionHandlers<Methods extends GenServiceMethods> = {
  [K in keyof Methods]: ActionHandler<Methods[K]>;
};

export interface ActionOptions<Methods extends GenServiceMethods> {
  /** The generated service. */
  service: GenService<Methods>;
  /** The handlers, one per method; each one's shape follows its method's kind. */
  commands: NoInfer<ActionHandlers<Methods>>;
}

type AnyHandler = (request: Message | AsyncIterable<Message>, ctx: ActionContext) => unknown;

/** An action: a stateless service; pass it to `serve({ entities: [...] })`. */
export class Action<Methods extends GenServiceMethods = GenServiceMethods> implements Entity {
  readonly entityType = "cloudstate.action.ActionProtocol";
  readonly protocol = actionProtocol;
  readonly service: GenService<Methods>;
  /** Actions store nothing. */
  readonly persistenceId = "";
  /** Actions are not passivated. */
  readonly passivationTimeoutMs = undefined;
  readonly files: readonly DescFile[];
  /** @internal By proto method name, as commands name them. */ readonly commands: ReadonlyMap<string, CommandRoute<AnyHandler>>;

  constructor(options: ActionOptions<Methods>) {
    const { service } = options;
    this.service = service;
    this.commands = commandRoutes(service, options.commands, `action ${service.typeName}`);
    this.files = [service.file];
  }
}

/**
 * Defines an action. The compiler checks the handlers against the service: names, each handler's
 * shape for its method's kind (a request or a stream of them; a reply or a stream of them), the
 * input and reply types.
 */
export function action<Methods extends GenServiceMethods>(options: ActionOptions<Methods>): Action<Methods> {
  return new Action(options);
}
