// `cloudstate proxy`: runs until SIGTERM/SIGINT, then shuts down gracefully and exits 0.
import { createLogger, resolveConfig, startProxy, type RunningProxy } from "@cloudstate-ts/proxy";
import { configInput, type ProxyFlags } from "./flags.js";

export async function runProxy(flags: ProxyFlags): Promise<void> {
  let config;
  try {
    config = resolveConfig(configInput(flags));
  } catch (e) {
    fail((e as Error).message);
  }
  const log = createLogger(config.logLevel);
  const aborter = new AbortController();
  let proxy: RunningProxy | undefined;
  onSignals(async (signal) => {
    log.info({ signal }, "shutting down");
    aborter.abort(new Error(`stopped by ${signal}`));
    await proxy?.stop();
    process.exit(0);
  });
  try {
    proxy = await startProxy(config, { log, signal: aborter.signal });
  } catch (e) {
    if (aborter.signal.aborted) return;
    fail((e as Error).message);
  }
  for (const line of proxy.summary()) process.stderr.write(`${line}\n`);
}

export function fail(message: string): never {
  process.stderr.write(`cloudstate: ${message}\n`);
  process.exit(1);
}

/** Runs the handler once on the first SIGTERM/SIGINT; a second signal exits at once. */
export function onSignals(handler: (signal: NodeJS.Signals) => Promise<void>): void {
  let stopping = false;
  const on = (signal: NodeJS.Signals) => {
    if (stopping) process.exit(1);
    stopping = true;
    handler(signal).catch((e: unknown) => {
      process.stderr.write(`cloudstate: shutdown failed: ${(e as Error).message}\n`);
      process.exit(1);
    });
  };
  process.on("SIGTERM", on);
  process.on("SIGINT", on);
}
