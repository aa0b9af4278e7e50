// Commander's parsed flags → the proxy's configuration input (validation happens in resolveConfig).
import type { ProxyConfigInput } from "@cloudstate-ts/proxy";

export interface ProxyFlags {
  port?: string;
  host?: string;
  store?: string;
  dataDir?: string;
  durability?: string;
  passivationTimeout?: string;
  commandTimeout?: string;
  maxMessageSize?: string;
  shutdownGrace?: string;
  protocolVersionCheck?: boolean;
  logLevel?: string;
  userFunction?: string;
  corsOrigins?: string;
  metricsPort?: string;
  console?: string;
  consoleToken?: string;
  topicRetention?: string;
  eventingMaxAttempts?: string;
  eventingToken?: string;
}

export function configInput(flags: ProxyFlags): ProxyConfigInput {
  const input: Record<string, unknown> = {
    port: flags.port,
    host: flags.host,
    store: flags.store,
    dataDir: flags.dataDir,
    durability: flags.durability,
    passivationTimeoutMs: flags.passivationTimeout,
    commandTimeoutMs: flags.commandTimeout,
    maxMessageBytes: flags.maxMessageSize,
    shutdownGraceMs: flags.shutdownGrace,
    // commander sets this to true unless --no-protocol-version-check is given; only the flag overrides env.
    checkProtocolVersion: flags.protocolVersionCheck === false ? false : undefined,
    logLevel: flags.logLevel,
    corsOrigins: flags.corsOrigins,
    metricsPort: flags.metricsPort,
    console: flags.console,
    consoleToken: flags.consoleToken,
    topicRetentionMs: flags.topicRetention,
    eventingMaxAttempts: flags.eventingMaxAttempts,
    eventingToken: flags.eventingToken,
  };
  if (flags.userFunction !== undefined) {
    const m = /^(.*):(\d+)$/.exec(flags.userFunction);
    if (!m || m[1] === "") {
      throw new Error(`invalid --user-function "${flags.userFunction}": expected HOST:PORT, e.g. 127.0.0.1:8080`);
    }
    input.userFunctionHost = m[1]!.replace(/^\[(.*)\]$/, "$1");
    input.userFunctionPort = m[2];
  }
  return input as ProxyConfigInput;
}
