// gRPC health checking (grpc.health.v1.Health, PROTOCOL.md §7): the same readiness as GET /ready,
// for the server as a whole ("") and for each of the user's services.
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  HealthCheckRequestSchema,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as ServingStatus,
  type HealthCheckRequest,
  type HealthCheckResponse,
} from "@cloudstate-ts/protocol";
import { Code } from "../errors.js";

export const HEALTH_SERVICE = "grpc.health.v1.Health";

const response = (status: ServingStatus): HealthCheckResponse => create(HealthCheckResponseSchema, { status });

type Watcher = grpc.ServerWritableStream<HealthCheckRequest, HealthCheckResponse>;

export class Health {
  private readonly services: ReadonlySet<string>;
  private readonly watchers = new Set<Watcher>();
  private stopped = false;

  /** `isReady`: the proxy's readiness (true once it serves, false once it stops). */
  constructor(services: Iterable<string>, private readonly isReady: () => boolean) {
    this.services = new Set(services);
  }

  /** The status of "" (the server) or of a service; undefined for a service it does not serve. */
  status(service: string): ServingStatus | undefined {
    if (service !== "" && !this.services.has(service)) return undefined;
    return !this.stopped && this.isReady() ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
  }

  /**
   * The proxy is stopping: every watcher is told NOT_SERVING and its stream ends (open watches
   * would otherwise hold the graceful shutdown until its grace period ends).
   */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    for (const call of this.watchers) {
      const status = this.status(call.request.service) ?? ServingStatus.SERVICE_UNKNOWN;
      call.write(response(status));
      call.end();
    }
    this.watchers.clear();
  }

  register(server: grpc.Server): void {
    const method = (name: string, responseStream: boolean) => ({
      path: `/${HEALTH_SERVICE}/${name}`,
      requestStream: false,
      responseStream,
      requestSerialize: (m: HealthCheckRequest) => Buffer.from(toBinary(HealthCheckRequestSchema, m)),
      requestDeserialize: (b: Buffer) => fromBinary(HealthCheckRequestSchema, b),
      responseSerialize: (m: HealthCheckResponse) => Buffer.from(toBinary(HealthCheckResponseSchema, m)),
      responseDeserialize: (b: Buffer) => fromBinary(HealthCheckResponseSchema, b),
      originalName: name.charAt(0).toLowerCase() + name.slice(1),
    });
    server.addService(
      { Check: method("Check", false), Watch: method("Watch", true) },
      {
        Check: (call: grpc.ServerUnaryCall<HealthCheckRequest, HealthCheckResponse>, callback: grpc.sendUnaryData<HealthCheckResponse>) => {
          const status = this.status(call.request.service);
          if (status === undefined) callback({ code: Code.NOT_FOUND, details: `unknown service ${call.request.service}` });
          else callback(null, response(status));
        },
        Watch: (call: Watcher) => {
          // An unknown service is SERVICE_UNKNOWN, not an error: it may appear later (gRPC's health spec).
          call.write(response(this.status(call.request.service) ?? ServingStatus.SERVICE_UNKNOWN));
          if (this.stopped) {
            call.end();
            return;
          }
          this.watchers.add(call);
          call.once("cancelled", () => this.watchers.delete(call));
          call.on("error", () => this.watchers.delete(call));
        },
      },
    );
  }
}
