// Test fixture: a CRDT user function written directly against the Cloudstate protocol with grpc-js
// and protobuf-es (no SDK), serving `crdttest.CrdtTest`, whose descriptors are built here in code.
// Each request's `op` says what the function does, so tests can drive every protocol path:
//   get            reply with the function's view of the counter (GCounter or PNCounter value)
//   inc            GCounter increment by `amount` with write consistency `consistency`, reply the view
//   update         send `delta` (a serialized CrdtDelta) as the state action, as it is
//   delete         delete the entity
//   slow           reply (the view) after `amount` ms
//   hang           never reply
//   fail           reply with a failure (and a state action, which must be ignored)
//   fail-restart   the same, asking for a restart
//   entity-failure a stream-level Failure
//   close          complete the stream instead of answering
//   effect         reply, with a side effect `inc` of 1 on entity `target`
//   streamed-reply reply with streamed=true (to a unary method: a protocol error)
//   wrong-id       reply with a command id that is not in flight
// and for the streaming method Watch:
//   stream         first reply, then `amount` streamed messages, the last with end_stream
//   plain          one reply with streamed=false
//   forever        first reply, then nothing until cancelled; the cancellation answer increments
//                  the entity by 1 and has a side effect `inc` of 1 on entity `target`
//   stray          first reply, then a streamed message for an unknown command id, then end_stream
import * as grpc from "@grpc/grpc-js";
import {
  create,
  createFileRegistry,
  fromBinary,
  toBinary,
  type DescMessage,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import { WireType } from "@bufbuild/protobuf/wire";
import {
  EmptySchema,
  FieldDescriptorProto_Label,
  FieldDescriptorProto_Type,
  FieldOptionsSchema,
  FileDescriptorProtoSchema,
  FileDescriptorSetSchema,
  type Any,
} from "@bufbuild/protobuf/wkt";
import {
  CrdtDeltaSchema,
  CrdtReplySchema,
  CrdtStreamInSchema,
  CrdtStreamOutSchema,
  EntitySpecSchema,
  ProxyInfoSchema,
  UserFunctionErrorSchema,
  type Command,
  type CrdtDelta,
  type CrdtStreamIn,
  type CrdtStreamOut,
  type CrdtWriteConsistency,
  type EntitySpec,
  type ProxyInfo,
} from "@cloudstate-ts/protocol";

export const SERVICE = "crdttest.CrdtTest";
export const PERSISTENCE_ID = "crdt-test";
const { STRING: TYPE_STRING, BYTES: TYPE_BYTES, INT32: TYPE_INT32, INT64: TYPE_INT64 } = FieldDescriptorProto_Type;

function descriptorSet(): Uint8Array {
  const keyOption = create(FieldOptionsSchema);
  keyOption.$unknown = [{ no: 1080, wireType: WireType.Varint, data: new Uint8Array([1]) }];
  const f = (name: string, number: number, type: FieldDescriptorProto_Type, options?: typeof keyOption) => ({
    name,
    number,
    type,
    label: FieldDescriptorProto_Label.OPTIONAL,
    jsonName: name,
    options,
  });
  const file = create(FileDescriptorProtoSchema, {
    name: "crdttest/crdttest.proto",
    package: "crdttest",
    syntax: "proto3",
    messageType: [
      {
        name: "Request",
        field: [f("key", 1, TYPE_STRING, keyOption), f("op", 2, TYPE_STRING), f("delta", 3, TYPE_BYTES), f("consistency", 4, TYPE_INT32), f("amount", 5, TYPE_INT64), f("target", 6, TYPE_STRING)],
      },
      { name: "Response", field: [f("key", 1, TYPE_STRING), f("value", 2, TYPE_INT64), f("text", 3, TYPE_STRING)] },
    ],
    service: [
      {
        name: "CrdtTest",
        method: [
          { name: "Do", inputType: ".crdttest.Request", outputType: ".crdttest.Response" },
          { name: "Watch", inputType: ".crdttest.Request", outputType: ".crdttest.Response", serverStreaming: true },
        ],
      },
    ],
  });
  return toBinary(FileDescriptorSetSchema, create(FileDescriptorSetSchema, { file: [file] }));
}

const DESCRIPTORS = descriptorSet();
const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, DESCRIPTORS));
const RequestSchema = registry.getMessage("crdttest.Request")!;
const ResponseSchema = registry.getMessage("crdttest.Response")!;
export const REQUEST_TYPE_URL = "type.googleapis.com/crdttest.Request";
export const RESPONSE_TYPE_URL = "type.googleapis.com/crdttest.Response";

export interface Request {
  key: string;
  op?: string;
  delta?: CrdtDelta;
  consistency?: CrdtWriteConsistency;
  amount?: number;
  target?: string;
}

export interface Response {
  key: string;
  value: bigint;
  text: string;
}

export function encodeRequest(r: Request): Uint8Array {
  const message = create(RequestSchema) as unknown as Record<string, unknown>;
  message.key = r.key;
  message.op = r.op ?? "get";
  message.delta = r.delta ? toBinary(CrdtDeltaSchema, r.delta) : new Uint8Array();
  message.consistency = r.consistency ?? 0;
  message.amount = BigInt(r.amount ?? 0);
  message.target = r.target ?? "";
  return toBinary(RequestSchema, message as MessageShape<DescMessage>);
}

function decodeRequest(bytes: Uint8Array): Required<Omit<Request, "delta">> & { delta: Uint8Array } {
  const m = fromBinary(RequestSchema, bytes) as unknown as { key: string; op: string; delta: Uint8Array; consistency: number; amount: bigint; target: string };
  return { key: m.key, op: m.op, delta: m.delta, consistency: m.consistency, amount: Number(m.amount), target: m.target };
}

export function decodeResponse(bytes: Uint8Array): Response {
  const m = fromBinary(ResponseSchema, bytes) as unknown as Response;
  return { key: m.key, value: m.value, text: m.text };
}

function responseAny(key: string, value: bigint, text = ""): Any {
  const message = create(ResponseSchema) as unknown as Record<string, unknown>;
  message.key = key;
  message.value = value;
  message.text = text;
  return { $typeName: "google.protobuf.Any", typeUrl: RESPONSE_TYPE_URL, value: toBinary(ResponseSchema, message as MessageShape<DescMessage>) };
}

function requestAny(r: Request): Any {
  return { $typeName: "google.protobuf.Any", typeUrl: REQUEST_TYPE_URL, value: encodeRequest(r) };
}

export function entitySpec(passivationMs?: number): EntitySpec {
  return create(EntitySpecSchema, {
    proto: DESCRIPTORS,
    entities: [
      {
        entityType: "cloudstate.crdt.Crdt",
        serviceName: SERVICE,
        persistenceId: PERSISTENCE_ID,
        passivationStrategy: passivationMs ? { strategy: { case: "timeout", value: { timeout: BigInt(passivationMs) } } } : undefined,
      },
    ],
    serviceInfo: { serviceName: "raw-crdt", supportLibraryName: "none (raw protocol)", protocolMajorVersion: 0, protocolMinorVersion: 2 },
  });
}

/** What one entity stream saw. */
export interface StreamLog {
  readonly entityId: string;
  /** The init's delta (undefined: the entity had no state). */
  readonly init: CrdtDelta | undefined;
  /** Deltas pushed by the proxy after init (other replicas' changes). */
  readonly deltas: CrdtDelta[];
  readonly cancellations: bigint[];
  deleted: boolean;
  ended: boolean;
}

export interface RawCrdtUserFunction {
  readonly port: number;
  readonly reportedErrors: string[];
  readonly discoveries: ProxyInfo[];
  readonly streams: StreamLog[];
  streamsOf(entityId: string): StreamLog[];
  close(): Promise<void>;
}

const ser = <D extends DescMessage>(d: D) => (m: MessageShape<D>) => Buffer.from(toBinary(d, m));
const des = <D extends DescMessage>(d: D) => (b: Buffer) => fromBinary(d, b);

export async function startRawCrdtUserFunction(options: { passivationMs?: number } = {}): Promise<RawCrdtUserFunction> {
  const reportedErrors: string[] = [];
  const discoveries: ProxyInfo[] = [];
  const streams: StreamLog[] = [];
  const server = new grpc.Server();
  const timers = new Set<NodeJS.Timeout>();
  const later = (ms: number, f: () => void) => {
    const t = setTimeout(() => {
      timers.delete(t);
      f();
    }, ms);
    timers.add(t);
  };

  server.addService(
    {
      discover: { path: "/cloudstate.EntityDiscovery/discover", requestStream: false, responseStream: false, requestSerialize: ser(ProxyInfoSchema), requestDeserialize: des(ProxyInfoSchema), responseSerialize: ser(EntitySpecSchema), responseDeserialize: des(EntitySpecSchema) },
      reportError: { path: "/cloudstate.EntityDiscovery/reportError", requestStream: false, responseStream: false, requestSerialize: ser(UserFunctionErrorSchema), requestDeserialize: des(UserFunctionErrorSchema), responseSerialize: ser(EmptySchema), responseDeserialize: des(EmptySchema) },
    },
    {
      discover: (call: grpc.ServerUnaryCall<ProxyInfo, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        discoveries.push(call.request);
        cb(null, entitySpec(options.passivationMs));
      },
      reportError: (call: grpc.ServerUnaryCall<{ message: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        reportedErrors.push(call.request.message);
        cb(null, create(EmptySchema));
      },
    },
  );

  server.addService(
    {
      handle: { path: "/cloudstate.crdt.Crdt/handle", requestStream: true, responseStream: true, requestSerialize: ser(CrdtStreamInSchema), requestDeserialize: des(CrdtStreamInSchema), responseSerialize: ser(CrdtStreamOutSchema), responseDeserialize: des(CrdtStreamOutSchema) },
    },
    {
      handle: (call: grpc.ServerDuplexStream<CrdtStreamIn, CrdtStreamOut>) => {
        let log: StreamLog | undefined;
        /** The function's view of a counter entity. */
        let value = 0n;
        const follow = (delta: CrdtDelta | undefined) => {
          if (delta?.delta.case === "gcounter") value += delta.delta.value.increment;
          if (delta?.delta.case === "pncounter") value += delta.delta.value.change;
        };
        const send = (m: MessageInitShape<typeof CrdtStreamOutSchema>["message"]) => {
          if (!log?.ended) call.write(create(CrdtStreamOutSchema, { message: m }));
        };
        const incrementDelta = (amount: number) => create(CrdtDeltaSchema, { delta: { case: "gcounter", value: { increment: BigInt(amount) } } });
        const incrementEffect = (target: string) => ({
          serviceName: SERVICE,
          commandName: "Do",
          payload: requestAny({ key: target, op: "inc", amount: 1 }),
        });

        const onCommand = (cmd: Command) => {
          const r = decodeRequest(cmd.payload!.value);
          const reply = (extra: Omit<MessageInitShape<typeof CrdtReplySchema>, "commandId" | "clientAction" | "$typeName"> = {}) =>
            send({ case: "reply", value: { commandId: cmd.id, clientAction: { action: { case: "reply", value: { payload: responseAny(r.key, value) } } }, ...extra } });
          switch (r.op) {
            case "get":
              return reply();
            case "inc":
              value += BigInt(r.amount);
              return reply({ stateAction: { action: { case: "update", value: incrementDelta(r.amount) }, writeConsistency: r.consistency } });
            case "update": {
              const delta = fromBinary(CrdtDeltaSchema, r.delta);
              follow(delta);
              return reply({ stateAction: { action: { case: "update", value: delta }, writeConsistency: r.consistency } });
            }
            case "delete":
              return reply({ stateAction: { action: { case: "delete", value: {} } } });
            case "slow":
              return later(r.amount, () => reply());
            case "hang":
              return;
            case "fail":
            case "fail-restart":
              return send({
                case: "reply",
                value: {
                  commandId: cmd.id,
                  clientAction: { action: { case: "failure", value: { commandId: cmd.id, description: `failed ${r.key} on purpose`, restart: r.op === "fail-restart" } } },
                  // A failed reply's state action must not be applied.
                  stateAction: { action: { case: "update", value: incrementDelta(100) } },
                },
              });
            case "entity-failure":
              return send({ case: "failure", value: { commandId: cmd.id, description: `entity ${r.key} broke` } });
            case "close":
              if (log) log.ended = true;
              return call.end();
            case "effect":
              return reply({ sideEffects: [incrementEffect(r.target)] });
            case "streamed-reply":
              return reply({ streamed: true });
            case "wrong-id":
              return send({ case: "reply", value: { commandId: cmd.id + 1000n, clientAction: { action: { case: "reply", value: { payload: responseAny(r.key, value) } } } } });
            case "plain":
              return reply({ streamed: false });
            case "stream": {
              reply({ streamed: true });
              for (let i = 1; i <= r.amount; i++) {
                later(5 * i, () =>
                  send({
                    case: "streamedMessage",
                    value: { commandId: cmd.id, clientAction: { action: { case: "reply", value: { payload: responseAny(r.key, BigInt(i), `message ${i}`) } } }, endStream: i === r.amount },
                  }),
                );
              }
              return;
            }
            case "forever":
              return reply({ streamed: true });
            case "stray":
              reply({ streamed: true });
              send({ case: "streamedMessage", value: { commandId: 999_999n, clientAction: { action: { case: "reply", value: { payload: responseAny(r.key, 0n) } } } } });
              return send({ case: "streamedMessage", value: { commandId: cmd.id, endStream: true } });
            default:
              throw new Error(`unknown op ${r.op}`);
          }
        };

        // Targets of the cancellation side effects, by command id.
        const targets = new Map<bigint, string>();
        call.on("data", (msg: CrdtStreamIn) => {
          switch (msg.message.case) {
            case "init":
              log = { entityId: msg.message.value.entityId, init: msg.message.value.delta, deltas: [], cancellations: [], deleted: false, ended: false };
              streams.push(log);
              follow(msg.message.value.delta);
              return;
            case "delta":
              log!.deltas.push(msg.message.value);
              follow(msg.message.value);
              return;
            case "delete":
              log!.deleted = true;
              return;
            case "command": {
              const cmd = msg.message.value;
              targets.set(cmd.id, decodeRequest(cmd.payload!.value).target);
              return onCommand(cmd);
            }
            case "streamCancelled": {
              const id = msg.message.value.id;
              log!.cancellations.push(id);
              value += 1n;
              send({
                case: "streamCancelledResponse",
                value: {
                  commandId: id,
                  stateAction: { action: { case: "update", value: incrementDelta(1) } },
                  sideEffects: targets.get(id) ? [incrementEffect(targets.get(id)!)] : [],
                },
              });
              return;
            }
            default:
              return;
          }
        });
        call.on("end", () => {
          if (log) log.ended = true;
          call.end();
        });
        call.on("error", () => {
          if (log) log.ended = true;
        });
        call.on("cancelled", () => {
          if (log) log.ended = true;
        });
      },
    },
  );

  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return {
    port,
    reportedErrors,
    discoveries,
    streams,
    streamsOf: (entityId) => streams.filter((s) => s.entityId === entityId),
    close: () =>
      new Promise<void>((resolve) => {
        for (const t of timers) clearTimeout(t);
        server.tryShutdown(() => resolve());
        setTimeout(() => server.forceShutdown(), 1000).unref();
      }),
  };
}

/** A client of crdttest.CrdtTest through the proxy. */
export class CrdtTestClient {
  private readonly client: grpc.Client;

  constructor(port: number) {
    this.client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  }

  do(request: Request): Promise<Response> {
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(
        `/${SERVICE}/Do`,
        (b: Uint8Array) => Buffer.from(b),
        (b: Buffer) => decodeResponse(b),
        encodeRequest(request),
        (err, res) => (err ? reject(err) : resolve(res!)),
      );
    });
  }

  watch(request: Request): grpc.ClientReadableStream<Response> {
    return this.client.makeServerStreamRequest(`/${SERVICE}/Watch`, (b: Uint8Array) => Buffer.from(b), (b: Buffer) => decodeResponse(b), encodeRequest(request));
  }

  close(): void {
    this.client.close();
  }
}
