// One error type for the proxy: every failure that reaches a client carries a gRPC status code and a
// message that says what went wrong (and, where it helps, what to change).
import { status } from "@grpc/grpc-js";

export { status as Code };

export class ProxyError extends Error {
  constructor(
    readonly code: status,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "ProxyError";
  }

  /** The status code's name, e.g. "INVALID_ARGUMENT", for logs and HTTP error bodies. */
  get codeName(): string {
    return status[this.code] ?? String(this.code);
  }

  static from(error: unknown): ProxyError {
    if (error instanceof ProxyError) return error;
    const message = error instanceof Error ? error.message : String(error);
    return new ProxyError(status.INTERNAL, message, { cause: error });
  }
}
