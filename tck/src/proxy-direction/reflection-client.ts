// A minimal gRPC server reflection client (grpc.reflection.v1 and v1alpha share their messages):
// asks for the list of services. The few fields it needs are read and written by number, so the
// suite needs no reflection .proto.
import * as grpc from "@grpc/grpc-js";
import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";

export type ReflectionVersion = "v1" | "v1alpha";

/** The services the server lists, or the gRPC error it answers with. */
export async function listServices(address: string, version: ReflectionVersion, timeoutMs = 3_000): Promise<string[]> {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  const identity = (b: Buffer) => b;
  try {
    return await new Promise<string[]>((resolve, reject) => {
      const call = client.makeBidiStreamRequest<Buffer, Buffer>(
        `/grpc.reflection.${version}.ServerReflection/ServerReflectionInfo`,
        identity,
        identity,
        new grpc.Metadata(),
        { deadline: Date.now() + timeoutMs },
      );
      call.on("data", (response: Buffer) => {
        try {
          resolve(servicesOf(response));
        } catch (e) {
          reject(e as Error);
        }
        call.cancel();
      });
      call.on("error", (e) => reject(e));
      // ServerReflectionRequest{list_services (7) = "*"}
      call.write(Buffer.from(new BinaryWriter().tag(7, WireType.LengthDelimited).string("*").finish()));
      call.end();
    });
  } finally {
    client.close();
  }
}

/** ServerReflectionResponse{list_services_response (6): ListServiceResponse{service (1): ServiceResponse{name (1)}}} or error_response (7). */
function servicesOf(bytes: Uint8Array): string[] {
  const reader = new BinaryReader(bytes);
  while (reader.pos < reader.len) {
    const [no, type] = reader.tag();
    if (no === 6) return fields(reader.bytes(), 1).map((service) => new TextDecoder().decode(fields(service, 1)[0] ?? new Uint8Array()));
    if (no === 7) {
      const error = fields(reader.bytes(), 2)[0];
      throw new Error(`reflection error response: ${error ? new TextDecoder().decode(error) : "(no message)"}`);
    }
    reader.skip(type, no);
  }
  throw new Error("the reflection response has neither a service list nor an error");
}

/** Every length-delimited value of field `no` in a message. */
function fields(bytes: Uint8Array, no: number): Uint8Array[] {
  const reader = new BinaryReader(bytes);
  const out: Uint8Array[] = [];
  while (reader.pos < reader.len) {
    const [n, type] = reader.tag();
    if (n === no && type === WireType.LengthDelimited) out.push(reader.bytes());
    else reader.skip(type, n);
  }
  return out;
}
