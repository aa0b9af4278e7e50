// Where the PostgreSQL store connects: a postgres:// URL, or the POSTGRES_* environment of the
// reference deployment (PROTOCOL.md §10). Passwords never appear in a description or an error,
// because both end up in logs.

/** A URL handed to pg as is (so sslmode and friends work), or the environment's fields. */
export type PostgresConnection =
  | { readonly url: string }
  | {
      readonly host: string;
      readonly port: number;
      readonly database: string;
      readonly user: string;
      readonly password?: string | undefined;
    };

export const POSTGRES_ENV = {
  host: "POSTGRES_SERVICE",
  port: "POSTGRES_PORT",
  database: "POSTGRES_DATABASE",
  user: "POSTGRES_USERNAME",
  password: "POSTGRES_PASSWORD",
} as const;

export const DEFAULT_POSTGRES_PORT = 5432;

/** Parses postgres://… or postgresql://…; throws an Error that does not repeat the password. */
export function parsePostgresUrl(value: string): PostgresConnection {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new Error(`invalid PostgreSQL URL "${redactUrl(value)}": expected postgres://USER:PASSWORD@HOST:PORT/DATABASE`);
  }
  if (url.protocol !== "postgres:" && url.protocol !== "postgresql:") {
    throw new Error(`invalid PostgreSQL URL "${redactUrl(value)}": the scheme must be postgres:// or postgresql://`);
  }
  if (url.hostname === "" && !url.searchParams.has("host")) {
    throw new Error(`invalid PostgreSQL URL "${redactUrl(value)}": it names no host, e.g. postgres://user:password@db:5432/cloudstate`);
  }
  try {
    for (const part of [url.username, url.password, url.pathname]) decodeURIComponent(part);
  } catch {
    throw new Error(`invalid PostgreSQL URL "${redactUrl(value)}": a %-escape in the user, password or database is malformed`);
  }
  return { url: value };
}

/** The connection `postgres` alone stands for: POSTGRES_SERVICE, POSTGRES_PORT, … from `env`. */
export function postgresFromEnv(env: NodeJS.ProcessEnv): PostgresConnection {
  const read = (name: string) => {
    const value = env[name]?.trim();
    return value === "" ? undefined : value;
  };
  const missing = [POSTGRES_ENV.host, POSTGRES_ENV.database, POSTGRES_ENV.user].filter((name) => read(name) === undefined);
  const portText = read(POSTGRES_ENV.port);
  const port = portText === undefined ? DEFAULT_POSTGRES_PORT : Number(portText);
  const problems = missing.length > 0 ? [`${missing.join(", ")} ${missing.length === 1 ? "is" : "are"} not set`] : [];
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    problems.push(`${POSTGRES_ENV.port} must be a port number, got "${portText}"`);
  }
  if (problems.length > 0) {
    throw new Error(
      `the store "postgres" connects with ${POSTGRES_ENV.host} (host), ${POSTGRES_ENV.port} (default ${DEFAULT_POSTGRES_PORT}), ` +
        `${POSTGRES_ENV.database}, ${POSTGRES_ENV.user} and ${POSTGRES_ENV.password}: ${problems.join("; ")}`,
    );
  }
  return {
    host: read(POSTGRES_ENV.host)!,
    port,
    database: read(POSTGRES_ENV.database)!,
    user: read(POSTGRES_ENV.user)!,
    // Not trimmed: a password may begin or end with a space.
    password: env[POSTGRES_ENV.password] || undefined,
  };
}

/** "postgres://user@host:port/database": what a log may say about a connection. */
export function describePostgres(connection: PostgresConnection): string {
  if ("url" in connection) {
    const url = new URL(connection.url);
    const user = decodeURIComponent(url.username);
    const host = url.hostname || url.searchParams.get("host") || "";
    const database = decodeURIComponent(url.pathname.replace(/^\//, "")) || user;
    return `postgres://${user ? `${user}@` : ""}${host}:${url.port || DEFAULT_POSTGRES_PORT}/${database}`;
  }
  return `postgres://${connection.user}@${connection.host}:${connection.port}/${connection.database}`;
}

// "postgres://user:secret@host/db" → "postgres://***@host/db"; also hides a password= parameter.
export function redactUrl(value: string): string {
  return value.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@]*@/i, "$1***@").replace(/([?&]password=)[^&]*/i, "$1***");
}
