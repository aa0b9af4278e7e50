// Talks to a user function as the proxy does, over real gRPC: for protocol-level tests of the SDK
// and of user functions (discovery, event-sourced streams).
import { create, type DescMessage, type DescMethod, type MessageInitShape } from "@bufbuild/protobuf";
import type { Any } from "@bufbuild/protobuf/wkt";
import {
  EntityDiscovery,
  EventSourced,
  type EntitySpec,
  type EventSourcedReply,
  type EventSourcedStreamIn,
  EventSourcedStreamInSchema,
  type EventSourcedStreamOut,
  ProxyInfoSchema,
  UserFunctionErrorSchema,
} from "@cloudstate-ts/protocol";
import * as grpc from "@grpc/grpc-js";
import { pack } from "../any.js";
import { serviceDefinition } from "../grpc.js";

const discovery = serviceDefinition(EntityDiscovery);
const eventSourcedHandle = serviceDefinition(EventSourced)["handle"]!;

export class ProxyDriver {
  private readonly client: grpc.Client;

  /** `address` is "host:port", or a port on 127.0.0.1. */
  constructor(address: string | number) {
    const target = typeof address === "number" ? `127.0.0.1:${address}` : address;
    this.client = new grpc.Client(target, grpc.credentials.createInsecure());
  }

  discover(info: MessageInitShape<typeof ProxyInfoSchema> = {}): Promise<EntitySpec> {
    const request = create(ProxyInfoSchema, {
      protocolMajorVersion: 0,
      protocolMinorVersion: 2,
      proxyName: "test-driver",
      proxyVersion: "0.0.0",
      supportedEntityTypes: ["cloudstate.eventsourced.EventSourced"],
      ...info,
    });
    return this.unary<EntitySpec>("discover", request);
  }

  async reportError(message: string): Promise<void> {
    await this.unary("reportError", create(UserFunctionErrorSchema, { message }));
  }

  /** Opens an event-sourced protocol stream (one entity). */
  eventSourced(): EventSourcedStreamDriver {
    const def = eventSourcedHandle;
    const call = this.client.makeBidiStreamRequest<EventSourcedStreamIn, EventSourcedStreamOut>(
      def.path,
      def.requestSerialize,
      def.responseDeserialize,
    );
    return new EventSourcedStreamDriver(call);
  }

  close(): void {
    this.client.close();
  }

  private unary<T>(method: string, request: unknown): Promise<T> {
    const def = discovery[method]!;
    return new Promise<T>((resolve, reject) => {
      this.client.makeUnaryRequest<unknown, T>(def.path, def.requestSerialize, def.responseDeserialize, request, (e, r) =>
        e ? reject(e) : resolve(r!),
      );
    });
  }
}

/** The end of a stream: the gRPC status the user function closed it with. */
export interface StreamEnd {
  readonly code: grpc.status;
  readonly details: string;
}

export class EventSourcedStreamDriver {
  private readonly received: EventSourcedStreamOut[] = [];
  private readonly waiting: ((message: EventSourcedStreamOut | undefined) => void)[] = [];
  private finished = false;
  private nextId = 1n;
  private entityId = "";
  /** Resolves when the user function ends the stream. */
  readonly ended: Promise<StreamEnd>;

  constructor(private readonly call: grpc.ClientDuplexStream<EventSourcedStreamIn, EventSourcedStreamOut>) {
    call.on("data", (message: EventSourcedStreamOut) => {
      const waiter = this.waiting.shift();
      if (waiter) waiter(message);
      else this.received.push(message);
    });
    this.ended = new Promise<StreamEnd>((resolve) => {
      call.on("status", (status: grpc.StatusObject) => {
        this.finish();
        resolve({ code: status.code, details: status.details });
      });
    });
    // The status event reports how the stream ended; an error event would otherwise be unhandled.
    call.on("error", () => this.finish());
  }

  send(message: MessageInitShape<typeof EventSourcedStreamInSchema>): void {
    this.call.write(create(EventSourcedStreamInSchema, message));
  }

  init(serviceName: string, entityId: string, snapshot?: { sequence: number; schema: DescMessage; state: MessageInitShape<DescMessage> }): void {
    this.entityId = entityId;
    this.send({
      message: {
        case: "init",
        value: {
          serviceName,
          entityId,
          snapshot: snapshot && {
            snapshotSequence: BigInt(snapshot.sequence),
            snapshot: pack(snapshot.schema, create(snapshot.schema, snapshot.state)),
          },
        },
      },
    });
  }

  event<S extends DescMessage>(sequence: number, schema: S, event: MessageInitShape<S>): void {
    this.send({ message: { case: "event", value: { sequence: BigInt(sequence), payload: pack(schema, create(schema, event)) } } });
  }

  /** Sends a command for `method` (ids count from 1 on each stream) and returns what comes back. */
  command<M extends DescMethod>(method: M, input: MessageInitShape<M["input"]>): Promise<EventSourcedStreamOut | undefined> {
    return this.rawCommand(method.name, pack(method.input, create(method.input, input)));
  }

  /** Sends a command with any name and payload, e.g. one the entity does not know. */
  rawCommand(name: string, payload: Any | undefined): Promise<EventSourcedStreamOut | undefined> {
    const id = this.nextId++;
    this.send({ message: { case: "command", value: { entityId: this.entityId, id, name, payload } } });
    return this.next();
  }

  /** The next message from the user function; undefined once the stream has ended. */
  next(timeoutMs = 5_000): Promise<EventSourcedStreamOut | undefined> {
    const message = this.received.shift();
    if (message || this.finished) return Promise.resolve(message);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.splice(this.waiting.indexOf(deliver), 1);
        reject(new Error(`no message from the user function within ${timeoutMs} ms`));
      }, timeoutMs);
      const deliver = (m: EventSourcedStreamOut | undefined): void => {
        clearTimeout(timer);
        resolve(m);
      };
      this.waiting.push(deliver);
    });
  }

  /** Half-closes the stream, as the proxy does to passivate an entity. */
  end(): void {
    this.call.end();
  }

  /** Cancels the call, as the proxy does when it goes away. */
  cancel(): void {
    this.call.cancel();
  }

  private finish(): void {
    this.finished = true;
    for (const waiter of this.waiting.splice(0)) waiter(undefined);
  }
}

/** The reply in a StreamOut, or an assertion error describing what came instead. */
export function replyOf(out: EventSourcedStreamOut | undefined): EventSourcedReply {
  if (out?.message.case !== "reply") {
    const what = out === undefined ? "the end of the stream" : out.message.case === "failure" ? `a stream failure: ${out.message.value.description}` : "an empty message";
    throw new Error(`expected a reply, got ${what}`);
  }
  return out.message.value;
}
