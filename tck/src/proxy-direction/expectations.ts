// Assertions for what a client sees: gRPC errors, and effects that happen some time after a reply.
import * as grpc from "@grpc/grpc-js";

/** Asserts that the call fails with `code` and a message containing `text`; `what` names the behaviour. */
export async function rejectsWith(call: Promise<unknown>, code: grpc.status, text: string, what: string): Promise<void> {
  let error: grpc.ServiceError;
  try {
    await call;
  } catch (e) {
    error = e as grpc.ServiceError;
    if (error.code !== code) {
      throw new Error(`${what}: expected status ${grpc.status[code]}, got ${grpc.status[error.code] ?? error.code}: ${error.details ?? error.message}`);
    }
    if (!error.details.includes(text)) throw new Error(`${what}: expected the message to contain "${text}", got "${error.details}"`);
    return;
  }
  throw new Error(`${what}: expected status ${grpc.status[code]} "${text}", but the call succeeded`);
}

/** Retries `check` (which throws while its condition does not hold) until it passes or `timeoutMs` is over. */
export async function eventually(what: string, check: () => unknown | Promise<unknown>, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await check();
      return;
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`${what} (still not after ${timeoutMs} ms): ${(e as Error).message}`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
