// Discovery (PROTOCOL.md §4): ask the user function what it serves, retrying with backoff while it
// starts, then build and validate the model. A spec the proxy cannot serve is reported back to the
// user function and fails the start with one readable line.
import { create } from "@bufbuild/protobuf";
import { ProxyInfoSchema } from "@cloudstate-ts/protocol";
import { Code, ProxyError } from "../errors.js";
import type { Logger } from "../telemetry/logger.js";
import type { UserFunctionConnection } from "../user-function/connection.js";
import { buildModel, DiscoveryError, EntityTypes, type ModelOptions, type UserFunctionModel } from "./service-model.js";

export interface DiscoverOptions extends ModelOptions {
  readonly proxyName: string;
  readonly proxyVersion: string;
  readonly signal?: AbortSignal;
  /** Backoff bounds between attempts while the user function is not up (about 1 s → 10 s). */
  readonly minBackoffMs?: number;
  readonly maxBackoffMs?: number;
}

export async function discover(
  connection: UserFunctionConnection,
  options: DiscoverOptions,
  log: Logger,
): Promise<UserFunctionModel> {
  const info = create(ProxyInfoSchema, {
    protocolMajorVersion: 0,
    protocolMinorVersion: 2,
    proxyName: options.proxyName,
    proxyVersion: options.proxyVersion,
    supportedEntityTypes: options.supportedKinds.map((k) => EntityTypes[k]),
  });
  let backoff = options.minBackoffMs ?? 1000;
  const maxBackoff = options.maxBackoffMs ?? 10_000;
  for (let attempt = 1; ; attempt++) {
    options.signal?.throwIfAborted();
    let spec;
    try {
      spec = await connection.discover(info, 10_000);
    } catch (e) {
      const err = ProxyError.from(e);
      if (err.code !== Code.UNAVAILABLE && err.code !== Code.DEADLINE_EXCEEDED) {
        throw new DiscoveryError(`discovery call to the user function at ${connection.address} failed: ${err.codeName}: ${err.message}`);
      }
      // A user function that starts slowly is normal; only a long wait deserves a warning.
      const level = attempt <= 3 ? "info" : "warn";
      log[level]({ attempt, retryInMs: backoff }, `waiting for the user function at ${connection.address}`);
      await sleep(backoff, options.signal);
      backoff = Math.min(maxBackoff, backoff * 2);
      continue;
    }
    try {
      return buildModel(spec, options);
    } catch (e) {
      if (!(e instanceof DiscoveryError)) throw e;
      log.error({ err: e.message }, `discovery failed: ${e.message}`);
      await connection.reportError(e.message).catch((re: unknown) =>
        log.warn({ err: (re as Error).message }, "could not report the discovery error to the user function"),
      );
      throw e;
    }
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
