// Turns the configured store spec (flag or env) into a Store. parseStoreSpec is separate so that
// configuration validation can reject a bad value before anything is opened.
import { resolve } from "node:path";
import { MemoryStore } from "./memory/memory-store.js";
import { SqliteStore, type Durability } from "./sqlite/sqlite-store.js";
import type { Store } from "./store.js";

export type StoreSpec = { readonly kind: "memory" } | { readonly kind: "sqlite"; readonly path: string };

export interface StoreSpecOptions {
  /** Where `sqlite` alone puts its file (`<dataDir>/cloudstate.db`); relative to cwd. Default `.data`. */
  dataDir?: string;
  /** What relative paths are relative to. Default process.cwd(). */
  cwd?: string;
}

export interface OpenStoreOptions extends StoreSpecOptions {
  durability?: Durability;
}

export const DEFAULT_DATA_DIR = ".data";
export const DEFAULT_SQLITE_FILE = "cloudstate.db";

const ACCEPTED =
  'accepted: "memory", "sqlite" (the file <dataDir>/cloudstate.db), "sqlite:PATH" (a file path, relative to the working directory)';

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
  if (/^postgres(ql)?:\/\//.test(value)) {
    // The URL is not repeated: it may carry a password.
    throw new Error(`the PostgreSQL store is not available yet; ${ACCEPTED}`);
  }
  throw new Error(`invalid store "${redactUserInfo(value)}"; ${ACCEPTED}`);
}

export async function openStore(spec: string, options: OpenStoreOptions = {}): Promise<Store> {
  const parsed = parseStoreSpec(spec, options);
  switch (parsed.kind) {
    case "memory":
      return new MemoryStore();
    case "sqlite":
      return new SqliteStore(parsed.path, { durability: options.durability });
  }
}

// "mysql://user:secret@host/db" → "mysql://***@host/db": error messages end up in logs.
function redactUserInfo(value: string): string {
  return value.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@]*@/i, "$1***@");
}
