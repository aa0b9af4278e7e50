// A raw-protocol action user function serving the Shapes API (./shapes.ts), for the HTTP end-to-end
// test. Each method answers something the test can check: the request echoed back, a list, a file,
// a stream; an id of "fail" fails the call; "fail-late" fails a stream after its first message.
// The reply carries `x-method` (the method that ran) and `x-echo` (the request's `x-test` header).
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, fromJson, toBinary, toJson, type DescMessage, type JsonObject, type MessageShape } from "@bufbuild/protobuf";
import { AnySchema, EmptySchema, type Any } from "@bufbuild/protobuf/wkt";
import {
  ActionCommandSchema,
  ActionResponseSchema,
  EntitySpecSchema,
  ProxyInfoSchema,
  UserFunctionErrorSchema,
  type ActionCommand,
  type ActionResponse,
  type Metadata,
} from "@cloudstate-ts/protocol";
import { PACKAGE, SERVICE, shapesDescriptorSet, shapesModel, type MethodSpec } from "./shapes.js";

export interface ShapesUserFunction {
  readonly port: number;
  readonly reportedErrors: string[];
  close(): Promise<void>;
}

const ser = <D extends DescMessage>(d: D) => (m: MessageShape<D>) => Buffer.from(toBinary(d, m));
const des = <D extends DescMessage>(d: D) => (b: Buffer) => fromBinary(d, b);

/** `methods` changes what discovery declares (e.g. a bad rule); the answers assume the default ones. */
export async function startShapesUserFunction(methods?: readonly MethodSpec[]): Promise<ShapesUserFunction> {
  const { registry } = shapesModel();
  const message = (name: string) => registry.getMessage(name.includes(".") ? name : `${PACKAGE}.${name}`)!;
  const Shape = message("Shape");
  const ShapeList = message("ShapeList");
  const HttpBody = message("google.api.HttpBody");
  const service = registry.getService(SERVICE)!;
  const reportedErrors: string[] = [];

  const pack = (desc: DescMessage, json: JsonObject): Any =>
    create(AnySchema, { typeUrl: `type.googleapis.com/${desc.typeName}`, value: toBinary(desc, fromJson(desc, json, { registry })) });
  const header = (md: Metadata | undefined, key: string) =>
    md?.entries.find((e) => e.key === key && e.value.case === "stringValue")?.value.value as string | undefined;
  const reply = (cmd: ActionCommand, metadata: Metadata | undefined, payload: Any): ActionResponse => {
    const echo = header(metadata, "x-test");
    const entries = [{ key: "x-method", value: { case: "stringValue" as const, value: cmd.name } }];
    if (echo !== undefined) entries.push({ key: "x-echo", value: { case: "stringValue", value: echo } });
    return create(ActionResponseSchema, { response: { case: "reply", value: { payload, metadata: { entries } } } });
  };
  const failure = (description: string): ActionResponse =>
    create(ActionResponseSchema, { response: { case: "failure", value: { description } } });

  const answer = (cmd: ActionCommand): ActionResponse => {
    const method = service.methods.find((m) => m.name === cmd.name)!;
    const input = toJson(method.input, fromBinary(method.input, cmd.payload!.value), { registry }) as JsonObject;
    if (input.id === "fail") return failure(`no shape called ${input.id}`);
    switch (cmd.name) {
      case "ListShapes":
      case "SearchShapes":
        return reply(cmd, cmd.metadata, pack(ShapeList, { shapes: [input, { ...input, id: `${String(input.id)}-2` }], next: "n" }));
      case "Download":
        return reply(cmd, cmd.metadata, pack(HttpBody, { contentType: "text/plain; charset=utf-8", data: Buffer.from(`file ${String(input.id)}`).toString("base64") }));
      case "Upload":
        return reply(cmd, cmd.metadata, pack(Shape, { id: input.contentType ?? "", tags: [Buffer.from(String(input.data ?? ""), "base64").toString()] }));
      case "Attach": {
        const file = (input.file ?? {}) as JsonObject;
        return reply(cmd, cmd.metadata, pack(Shape, { id: input.id ?? "", tags: [String(file.contentType), Buffer.from(String(file.data ?? ""), "base64").toString()] }));
      }
      default:
        return reply(cmd, cmd.metadata, pack(Shape, input));
    }
  };

  const server = new grpc.Server();
  server.addService(
    {
      discover: {
        path: "/cloudstate.EntityDiscovery/discover",
        requestStream: false,
        responseStream: false,
        requestSerialize: ser(ProxyInfoSchema),
        requestDeserialize: des(ProxyInfoSchema),
        responseSerialize: ser(EntitySpecSchema),
        responseDeserialize: des(EntitySpecSchema),
      },
      reportError: {
        path: "/cloudstate.EntityDiscovery/reportError",
        requestStream: false,
        responseStream: false,
        requestSerialize: ser(UserFunctionErrorSchema),
        requestDeserialize: des(UserFunctionErrorSchema),
        responseSerialize: ser(EmptySchema),
        responseDeserialize: des(EmptySchema),
      },
      handleUnary: {
        path: "/cloudstate.action.ActionProtocol/handleUnary",
        requestStream: false,
        responseStream: false,
        requestSerialize: ser(ActionCommandSchema),
        requestDeserialize: des(ActionCommandSchema),
        responseSerialize: ser(ActionResponseSchema),
        responseDeserialize: des(ActionResponseSchema),
      },
      handleStreamedOut: {
        path: "/cloudstate.action.ActionProtocol/handleStreamedOut",
        requestStream: false,
        responseStream: true,
        requestSerialize: ser(ActionCommandSchema),
        requestDeserialize: des(ActionCommandSchema),
        responseSerialize: ser(ActionResponseSchema),
        responseDeserialize: des(ActionResponseSchema),
      },
    },
    {
      discover: (_call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        cb(
          null,
          create(EntitySpecSchema, {
            proto: shapesDescriptorSet(methods),
            entities: [{ entityType: "cloudstate.action.ActionProtocol", serviceName: SERVICE }],
            serviceInfo: { serviceName: "shapes", supportLibraryName: "none (raw protocol)", protocolMajorVersion: 0, protocolMinorVersion: 2 },
          }),
        );
      },
      reportError: (call: grpc.ServerUnaryCall<{ message: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        reportedErrors.push(call.request.message);
        cb(null, create(EmptySchema));
      },
      handleUnary: (call: grpc.ServerUnaryCall<ActionCommand, ActionResponse>, cb: grpc.sendUnaryData<ActionResponse>) => {
        cb(null, answer(call.request));
      },
      handleStreamedOut: (call: grpc.ServerWritableStream<ActionCommand, ActionResponse>) => {
        const cmd = call.request;
        const input = toJson(Shape, fromBinary(Shape, cmd.payload!.value), { registry }) as JsonObject;
        if (input.id === "fail") {
          call.write(failure("cannot watch fail"));
          call.end();
          return;
        }
        for (let size = 1; size <= 3; size++) {
          call.write(reply(cmd, cmd.metadata, pack(Shape, { id: input.id ?? "", size })));
          if (input.id === "fail-late") {
            call.write(failure("lost sight of fail-late"));
            break;
          }
        }
        call.end();
      },
    },
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return {
    port,
    reportedErrors,
    close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())).then(() => server.forceShutdown()),
  };
}
