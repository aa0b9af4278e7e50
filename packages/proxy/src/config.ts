// The proxy's configuration: every value from a flag or an environment variable, validated with a
// clear error that names the setting. Flags win over the environment; the environment over defaults.
import { z } from "zod";
import { parseStoreSpec } from "./store/open-store.js";

const port = z.coerce.number().int().min(0).max(65535);
const positiveInt = z.coerce.number().int().positive();
/** A port, `0` for a free one, or `off` / `-1` for none (parsed to -1). */
const portOrOff = z.preprocess(
  (v) => (typeof v === "string" && /^(off|-1)$/i.test(v.trim()) ? -1 : v),
  z.coerce.number({ error: "expected a port, 0 for a free one, or off" }).int().min(-1).max(65535),
);
/** on | off (also true/false, 1/0, yes/no) from a flag or the environment, or a boolean. */
const onOff = z.preprocess(
  (v) => (typeof v === "string" ? (/^(on|true|1|yes)$/i.test(v) ? true : /^(off|false|0|no)$/i.test(v) ? false : v) : v),
  z.boolean({ error: "expected on or off" }),
);

export const proxyConfigSchema = z.object({
  /** Interface the ingress binds to. */
  host: z.string().min(1).default("0.0.0.0"),
  port: port.default(9000),
  userFunctionHost: z.string().min(1).default("127.0.0.1"),
  userFunctionPort: port.default(8080),
  /** memory | sqlite | sqlite:PATH | postgres://USER:PASSWORD@HOST:PORT/DB | postgres (from POSTGRES_SERVICE, …) */
  store: z.string().default("sqlite").superRefine((spec, ctx) => {
    try {
      parseStoreSpec(spec);
    } catch (e) {
      ctx.addIssue({ code: "custom", message: (e as Error).message });
    }
  }),
  /** Where the default SQLite database lives. */
  dataDir: z.string().min(1).default(".data"),
  /** fsync: a reply leaves only after its writes reach the disk; relaxed: after they reach the OS. */
  durability: z.enum(["fsync", "relaxed"]).default("fsync"),
  passivationTimeoutMs: positiveInt.default(30_000),
  commandTimeoutMs: positiveInt.default(30_000),
  maxMessageBytes: positiveInt.default(4 * 1024 * 1024),
  shutdownGraceMs: positiveInt.default(10_000),
  checkProtocolVersion: z.boolean().default(true),
  logLevel: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  /** Origins browsers may call from (CORS), comma-separated or a list; `*` for any; empty: no CORS. */
  corsOrigins: z
    .union([z.string(), z.array(z.string())])
    .default([])
    .transform((v) => (typeof v === "string" ? v.split(",") : v).map((o) => o.trim()).filter((o) => o !== "")),
  /** Port of GET /metrics (Prometheus), on the ingress's interface; -1 (`off`) serves none. */
  metricsPort: portOrOff.default(9090),
  /** The web console under /console (on | off; dev mode turns it on). */
  console: onOff.default(false),
  /** When set, every /console/api request needs `Authorization: Bearer <token>`. */
  consoleToken: z.string().min(1).optional(),
  /** Delivery attempts of an eventing message before it becomes a dead letter. */
  eventingMaxAttempts: positiveInt.default(5),
  /** Backoff between delivery attempts: doubles from min to max. */
  eventingBackoffMinMs: positiveInt.default(200),
  eventingBackoffMaxMs: positiveInt.default(10_000),
  /** Messages of one consumer being delivered at once (one per key: an event log's entity). */
  eventingMaxInFlight: positiveInt.default(64),
  /** How often consumers commit their offsets (the work a crash can repeat). */
  eventingCommitIntervalMs: positiveInt.default(200),
  /** How often idle consumers look for messages written by other proxies. */
  eventingPollIntervalMs: positiveInt.default(1_000),
  /** The lease of a consumer on its (source, group); another proxy takes over after it expires. */
  eventingLeaseMs: positiveInt.default(15_000),
  /** Topic messages are deleted after this long; 0 keeps them forever. Default 7 days. */
  topicRetentionMs: z.coerce.number().int().min(0).default(7 * 24 * 3600 * 1000),
  /** When set, the /eventing HTTP endpoints need `Authorization: Bearer <token>`. */
  eventingToken: z.string().min(1).optional(),
}).superRefine((c, ctx) => {
  if (c.console && c.consoleToken === undefined && !isLoopbackHost(c.host)) {
    ctx.addIssue({
      code: "custom",
      path: ["console"],
      message: `the web console is on without a token while the ingress binds to ${c.host}: set a token with --console-token / CLOUDSTATE_CONSOLE_TOKEN, bind to loopback (--host 127.0.0.1), or turn the console off (--console off)`,
    });
  }
  if (c.eventingBackoffMinMs > c.eventingBackoffMaxMs) {
    ctx.addIssue({
      code: "custom",
      path: ["eventingBackoffMinMs"],
      message: `the minimum backoff (${c.eventingBackoffMinMs} ms) is above the maximum (${c.eventingBackoffMaxMs} ms)`,
    });
  }
});

/** Loopback interfaces: a console without a token is only allowed on these. */
export function isLoopbackHost(host: string): boolean {
  return host === "localhost" || host === "::1" || host.startsWith("127.");
}

export type ProxyConfig = z.infer<typeof proxyConfigSchema>;
export type ProxyConfigInput = z.input<typeof proxyConfigSchema>;

/** Environment variables for each setting (PROTOCOL.md names where it has one). */
export const configEnv: Record<keyof ProxyConfig, string> = {
  host: "HTTP_HOST",
  port: "HTTP_PORT",
  userFunctionHost: "USER_FUNCTION_HOST",
  userFunctionPort: "USER_FUNCTION_PORT",
  store: "CLOUDSTATE_STORE",
  dataDir: "CLOUDSTATE_DATA_DIR",
  durability: "CLOUDSTATE_DURABILITY",
  passivationTimeoutMs: "PASSIVATION_TIMEOUT_MS",
  commandTimeoutMs: "COMMAND_TIMEOUT_MS",
  maxMessageBytes: "MAX_MESSAGE_BYTES",
  shutdownGraceMs: "SHUTDOWN_GRACE_MS",
  checkProtocolVersion: "CLOUDSTATE_CHECK_PROTOCOL_VERSION",
  logLevel: "LOG_LEVEL",
  corsOrigins: "CORS_ORIGINS",
  metricsPort: "METRICS_PORT",
  console: "CLOUDSTATE_CONSOLE",
  consoleToken: "CLOUDSTATE_CONSOLE_TOKEN",
  eventingMaxAttempts: "CLOUDSTATE_EVENTING_MAX_ATTEMPTS",
  eventingBackoffMinMs: "CLOUDSTATE_EVENTING_BACKOFF_MIN_MS",
  eventingBackoffMaxMs: "CLOUDSTATE_EVENTING_BACKOFF_MAX_MS",
  eventingMaxInFlight: "CLOUDSTATE_EVENTING_MAX_IN_FLIGHT",
  eventingCommitIntervalMs: "CLOUDSTATE_EVENTING_COMMIT_INTERVAL_MS",
  eventingPollIntervalMs: "CLOUDSTATE_EVENTING_POLL_INTERVAL_MS",
  eventingLeaseMs: "CLOUDSTATE_EVENTING_LEASE_MS",
  topicRetentionMs: "CLOUDSTATE_TOPIC_RETENTION_MS",
  eventingToken: "CLOUDSTATE_EVENTING_TOKEN",
};

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/**
 * Merges flags over env over defaults and validates; throws ConfigError naming each bad setting.
 * `defaults` replaces built-in defaults (dev mode binds to loopback, for example).
 */
export function resolveConfig(
  flags: ProxyConfigInput,
  env: NodeJS.ProcessEnv = process.env,
  defaults: ProxyConfigInput = {},
): ProxyConfig {
  const input: Record<string, unknown> = { ...defaults };
  for (const [key, name] of Object.entries(configEnv)) {
    const value = env[name];
    if (value !== undefined && value !== "") {
      input[key] = key === "checkProtocolVersion" ? !/^(false|0|no|off)$/i.test(value) : value;
    }
  }
  for (const [key, value] of Object.entries(flags)) if (value !== undefined) input[key] = value;
  const parsed = proxyConfigSchema.safeParse(input);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => {
      const key = String(issue.path[0] ?? "");
      const env = configEnv[key as keyof ProxyConfig];
      const got = input[key] === undefined ? "" : ` (got ${JSON.stringify(input[key])})`;
      return `${key}${env ? ` / ${env}` : ""}: ${issue.message}${got}`;
    });
    throw new ConfigError(`invalid configuration: ${lines.join("; ")}`);
  }
  return parsed.data;
}
