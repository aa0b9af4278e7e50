// Turns the configured store spec (flag or env) into a Store. parseStoreSpec is separate so that
// configuration validation can reject a bad value before anything is opened.
import { resolve } from "node:path";
import { MemoryStore } from "./memory/memory-store.js";
import {
  describePostgres,
  parsePostgresUrl,
  postgresFromEnv,
  redactUrl,
  type PostgresConnection,
} from "./postgres/connection.js";
import { PostgresStore } from "./postgres/postgres-store.js";
import { SqliteStore } from "./sqlite/sqlite-store.js";
import type { Durability, Store } from "./store.js";

export type StoreSpec =
  | { readonly kind: "memory" }
  | { readonly kind: "sqlite"; readonly path: string }
  /** `description` is the connection without its password, for logs. */
  | { readonly kind: "postgres"; readonly connection: PostgresConnection; readonly description: string };

export interface StoreSpecOptions {
  /** Where `sqlite` alone puts its file (`<dataDir>/cloudstate.db`); relative to cwd. Default `.data`. */
  dataDir?: string;
  /** What relative paths are relative to. Default process.cwd(). */
  cwd?: string;
  /** Where `postgres` alone reads POSTGRES_SERVICE, POSTGRES_PORT, … from. Default process.env. */
  env?: NodeJS.ProcessEnv;
}

export interface OpenStoreOptions extends StoreSpecOptions {
  durability?: Durability;
}

export const DEFAULT_DATA_DIR = ".data";
export const DEFAULT_SQLITE_FILE = "cloudstate.db";

const ACCEPTED =
  'accepted: "memory", "sqlite" (the file <dataDir>/cloudstate.db), "sqlite:PATH" (a file path, relative to the working directory), ' +
  '"postgres://USER:PASSWORD@HOST:PORT/DATABASE" (or postgresql://…), "postgres" (the connection from POSTGRES_SERVICE, ' +
  "POSTGRES_PORT, POSTGRES_DATABASE, POSTGRES_USERNAME and POSTGRES_PASSWORD)";

/** Parses a store spec; throws an Error that names the bad value and the accepted forms. */
export function parseStoreSpec(spec: string, options: StoreSpecOptions = {}): StoreSpec {
  const value = spec.trim();
  const cwd = options.cwd ?? process.cwd();
  if (value === "memory") return { kind: "memory" };
  if (value === "sqlite") {
    return { kind: "sqlite", path: resolve(cwd, options.dataDir ?? DEFAULT_DATA_DIR, DEFAULT_SQLITE_FILE) };
  }
  if (value.startsWith("sqlite:")) {
    const path = value.slice("sqlite:".length);
    // "sqlite://…" is URL syntax we do not define; guessing what it means would put the file
    // somewhere unexpected (resolve("//x") is "/x").
    if (path === "" || path.startsWith("//") || path === ":memory:") {
      throw new Error(`invalid store "${value}": sqlite:PATH needs a file path, e.g. sqlite:./data/cloudstate.db; ${ACCEPTED}`);
    }
    return { kind: "sqlite", path: resolve(cwd, path) };
  }
  if (value === "postgres" || value === "postgresql") {
    const connection = postgresFromEnv(options.env ?? process.env);
    return { kind: "postgres", connection, description: describePostgres(connection) };
  }
  if (/^postgres(ql)?:\/\//i.test(value)) {
    // Its errors repeat the URL without the password.
    const connection = parsePostgresUrl(value);
    return { kind: "postgres", connection, description: describePostgres(connection) };
  }
  throw new Error(`invalid store "${redactUrl(value)}"; ${ACCEPTED}`);
}

export async function openStore(spec: string, options: OpenStoreOptions = {}): Promise<Store> {
  const parsed = parseStoreSpec(spec, options);
  switch (parsed.kind) {
    case "memory":
      return new MemoryStore();
    case "sqlite":
      return new SqliteStore(parsed.path, { durability: options.durability });
    case "postgres":
      return PostgresStore.open(parsed.connection, { durability: options.durability });
  }
}
