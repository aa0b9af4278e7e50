// The proxy's configuration: every value from a flag or an environment variable, validated with a
// clear error that names the setting. Flags win over the environment; the environment over defaults.
import { z } from "zod";
import { parseStoreSpec } from "./store/open-store.js";

const port = z.coerce.number().int().min(0).max(65535);
const positiveInt = z.coerce.number().int().positive();

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
});

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
