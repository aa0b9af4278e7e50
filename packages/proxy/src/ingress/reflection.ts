// gRPC server reflection (grpc.reflection.v1 and v1alpha, PROTOCOL.md §7), so tools such as grpcurl
// can list and call the user's services without their .proto files. Both versions have the same
// messages on the wire; one implementation serves both, (de)serializing with the v1 schemas.
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary, type DescFile, type FileRegistry, type MessageInitShape, type Registry } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { reflectionV1 } from "@cloudstate-ts/protocol";
import { Code } from "../errors.js";

type Request = reflectionV1.ServerReflectionRequest;
type Response = reflectionV1.ServerReflectionResponse;
type ResponseBody = MessageInitShape<typeof reflectionV1.ServerReflectionResponseSchema>["messageResponse"];

export const REFLECTION_SERVICES = ["grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"] as const;

export interface ReflectionOptions {
  /** The user's files (discovery's registry). Looked up first. */
  readonly registry: FileRegistry;
  /** The fully-qualified names listed by list_services, in order. */
  readonly services: readonly string[];
  /** Further files to describe (the proxy's own services: reflection, health). */
  readonly extraFiles?: readonly FileRegistry[];
}

/** Answers reflection requests; free of gRPC so it can be tested alone. */
export class Reflection {
  private readonly registries: readonly FileRegistry[];

  constructor(private readonly o: ReflectionOptions) {
    this.registries = [o.registry, ...(o.extraFiles ?? [])];
  }

  answer(request: Request): Response {
    return create(reflectionV1.ServerReflectionResponseSchema, {
      validHost: request.host,
      originalRequest: request,
      messageResponse: this.body(request),
    });
  }

  private body(request: Request): ResponseBody {
    const r = request.messageRequest;
    switch (r.case) {
      case "listServices":
        return { case: "listServicesResponse", value: { service: this.o.services.map((name) => ({ name })) } };
      case "fileByFilename": {
        const file = this.find((reg) => reg.getFile(r.value));
        return file ? filesOf(file) : notFound(`file not found: ${r.value}`);
      }
      case "fileContainingSymbol": {
        const file = this.fileOfSymbol(r.value);
        return file ? filesOf(file) : notFound(`symbol not found: ${r.value}`);
      }
      case "fileContainingExtension": {
        const { containingType, extensionNumber } = r.value;
        const file = this.find((reg) => {
          const extendee = reg.getMessage(containingType);
          return extendee && reg.getExtensionFor(extendee, extensionNumber)?.file;
        });
        return file ? filesOf(file) : notFound(`extension ${extensionNumber} of ${containingType} not found`);
      }
      case "allExtensionNumbersOfType": {
        const registry = this.registries.find((reg) => reg.getMessage(r.value) !== undefined);
        if (!registry) return notFound(`type not found: ${r.value}`);
        return {
          case: "allExtensionNumbersResponse",
          value: { baseTypeName: r.value, extensionNumber: extensionNumbersOf(registry, r.value) },
        };
      }
      default:
        return error(Code.INVALID_ARGUMENT, "the request sets none of the message_request fields");
    }
  }

  /** A service, method, message (nested too), enum or extension, by its fully-qualified name. */
  private fileOfSymbol(symbol: string): DescFile | undefined {
    const name = symbol.startsWith(".") ? symbol.slice(1) : symbol;
    return this.find((reg) => {
      const type = reg.get(name);
      if (type) return type.kind === "message" || type.kind === "enum" || type.kind === "extension" || type.kind === "service" ? type.file : undefined;
      // A method: <service>.<method>.
      const dot = name.lastIndexOf(".");
      const service = dot > 0 ? reg.getService(name.slice(0, dot)) : undefined;
      return service?.methods.some((m) => m.name === name.slice(dot + 1)) ? service.file : undefined;
    });
  }

  private find<T>(lookup: (reg: FileRegistry) => T | undefined): T | undefined {
    for (const reg of this.registries) {
      const found = lookup(reg);
      if (found) return found;
    }
    return undefined;
  }
}

/** The file first, then each of its transitive imports once. */
function filesOf(file: DescFile): ResponseBody {
  const seen = new Set<string>();
  const out: Uint8Array[] = [];
  const visit = (f: DescFile) => {
    if (seen.has(f.proto.name)) return;
    seen.add(f.proto.name);
    out.push(toBinary(FileDescriptorProtoSchema, f.proto));
    f.dependencies.forEach(visit);
  };
  visit(file);
  return { case: "fileDescriptorResponse", value: { fileDescriptorProto: out } };
}

function extensionNumbersOf(registry: Registry, typeName: string): number[] {
  const numbers: number[] = [];
  for (const type of registry) {
    if (type.kind === "extension" && type.extendee.typeName === typeName) numbers.push(type.number);
  }
  return numbers.sort((a, b) => a - b);
}

const error = (code: Code, message: string): ResponseBody => ({ case: "errorResponse", value: { errorCode: code, errorMessage: message } });
const notFound = (message: string) => error(Code.NOT_FOUND, message);

/** Registers grpc.reflection.v1 and v1alpha ServerReflection on the server. */
export function addReflection(server: grpc.Server, reflection: Reflection): void {
  const serialize = (m: Response) => Buffer.from(toBinary(reflectionV1.ServerReflectionResponseSchema, m));
  const deserialize = (b: Buffer) => fromBinary(reflectionV1.ServerReflectionRequestSchema, b);
  const handler = (call: grpc.ServerDuplexStream<Request, Response>) => {
    call.on("data", (request: Request) => {
      if (!call.cancelled) call.write(reflection.answer(request));
    });
    call.on("end", () => call.end());
    call.on("error", () => undefined);
  };
  for (const service of REFLECTION_SERVICES) {
    server.addService(
      {
        ServerReflectionInfo: {
          path: `/${service}/ServerReflectionInfo`,
          requestStream: true,
          responseStream: true,
          requestSerialize: (m: Request) => Buffer.from(toBinary(reflectionV1.ServerReflectionRequestSchema, m)),
          requestDeserialize: deserialize,
          responseSerialize: serialize,
          responseDeserialize: (b: Buffer) => fromBinary(reflectionV1.ServerReflectionResponseSchema, b),
          originalName: "serverReflectionInfo",
        },
      },
      { ServerReflectionInfo: handler },
    );
  }
}
