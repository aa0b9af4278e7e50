// Child processes for crash tests: the proxy as `cloudstate proxy` and the raw cart user function as
// `node --import tsx tests/fixtures/raw-cart-user-function.ts`, each on 127.0.0.1 and a free port, so
// a test can SIGTERM or `kill -9` them. Every process started here is tracked: stopAll() kills what is
// still running and removes the temporary directories made with tempDir(); call it in `after`.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import * as http from "node:http";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const CLI = join(ROOT, "packages/cli/bin/cloudstate.js");
const RAW_USER_FUNCTION = join(ROOT, "tests/fixtures/raw-cart-user-function.ts");

/** Output kept per stream, so that a chatty process cannot grow the test's memory without bound. */
const MAX_OUTPUT = 64 * 1024;

export interface TrackedProcess {
  /** The port it serves on (0 for a process that does not serve). */
  readonly port: number;
  /** A proxy's metrics port, when it reported one. */
  readonly metricsPort?: number | undefined;
  readonly pid: number;
  /** Sends a signal if the process is still running (default SIGKILL). */
  kill(signal?: NodeJS.Signals): void;
  /** Resolves once the process has exited: its exit code, or null when a signal ended it. */
  readonly exited: Promise<number | null>;
  /** The signal that ended it, once it has exited that way. */
  signal(): NodeJS.Signals | null;
  running(): boolean;
  stdout(): string;
  stderr(): string;
}

const live = new Set<ChildProcess>();
const dirs = new Set<string>();

// A test process that dies without running its `after` hooks must not leave children behind.
process.once("exit", () => {
  for (const child of live) child.kill("SIGKILL");
});

/** A fresh temporary directory, removed by stopAll(). */
export function tempDir(prefix = "cloudstate-test-"): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  dirs.add(dir);
  return dir;
}

/** Settings the proxy reads from the environment: children must not inherit them from the test run. */
const CONFIG_ENV = /^(HTTP_HOST|HTTP_PORT|USER_FUNCTION_HOST|USER_FUNCTION_PORT|CLOUDSTATE_.*|PASSIVATION_TIMEOUT_MS|COMMAND_TIMEOUT_MS|MAX_MESSAGE_BYTES|SHUTDOWN_GRACE_MS|LOG_LEVEL|PORT|SNAPSHOT_EVERY|MISBEHAVE|REPLY_DELAY_MS|NODE_TEST_CONTEXT)$/;

function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!CONFIG_ENV.test(k)) env[k] = v;
  return { ...env, ...extra };
}

/** Spawns a node process from the repository root and tracks it. */
export function spawnNode(args: readonly string[], options: { env?: Record<string, string>; port?: number } = {}): TrackedProcess {
  const child = spawn(process.execPath, args, { cwd: ROOT, env: childEnv(options.env ?? {}), stdio: ["ignore", "pipe", "pipe"] });
  live.add(child);
  let out = "";
  let err = "";
  const keep = (acc: string, chunk: Buffer) => (acc + chunk.toString()).slice(-MAX_OUTPUT);
  child.stdout!.on("data", (chunk: Buffer) => (out = keep(out, chunk)));
  child.stderr!.on("data", (chunk: Buffer) => (err = keep(err, chunk)));
  const exited = new Promise<number | null>((resolve) => {
    child.once("exit", (code) => {
      live.delete(child);
      resolve(code);
    });
    child.once("error", (e) => {
      err += `\n(spawn failed: ${e.message})`;
      live.delete(child);
      resolve(null);
    });
  });
  const running = () => child.exitCode === null && child.signalCode === null && live.has(child);
  return {
    port: options.port ?? 0,
    pid: child.pid ?? -1,
    kill: (signal: NodeJS.Signals = "SIGKILL") => {
      if (running()) child.kill(signal);
    },
    exited,
    signal: () => child.signalCode,
    running,
    stdout: () => out,
    stderr: () => err,
  };
}

export interface PollOptions {
  readonly timeoutMs?: number;
  readonly intervalMs?: number;
}

/** Polls `check` until it returns true; rejects after the timeout with `what()` in the message. */
export async function pollUntil(check: () => boolean | Promise<boolean>, what: () => string, options: PollOptions = {}): Promise<void> {
  const deadline = Date.now() + (options.timeoutMs ?? 10_000);
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${options.timeoutMs ?? 10_000} ms waiting for ${what()}`);
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 25));
  }
}

/** GET http://127.0.0.1:port/path → status code, or undefined when nothing answers. */
export function httpStatus(port: number, path: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    const req = http.get({ host: "127.0.0.1", port, path, timeout: 1000, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(undefined));
  });
}

/** Whether something accepts TCP connections on 127.0.0.1:port. */
export function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    socket.setTimeout(1000);
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("timeout", () => {
      socket.destroy();
      resolve(false);
    });
    socket.once("error", () => resolve(false));
  });
}

/** Waits for `ready`; if the process exits first or the timeout passes, kills it and rejects with its stderr. */
async function waitUntilReady(proc: TrackedProcess, name: string, ready: () => Promise<boolean>, timeoutMs: number): Promise<TrackedProcess> {
  let exitCode: number | null | undefined;
  void proc.exited.then((code) => (exitCode = code === null ? null : code));
  try {
    await pollUntil(
      async () => {
        if (!proc.running()) {
          throw new Error(`${name} exited before it was ready (code ${String(exitCode)}, signal ${String(proc.signal())}); stderr:\n${proc.stderr()}`);
        }
        return ready();
      },
      () => `${name} to get ready on port ${proc.port}; stderr:\n${proc.stderr()}\nstdout:\n${proc.stdout()}`,
      { timeoutMs, intervalMs: 50 },
    );
  } catch (e) {
    proc.kill("SIGKILL");
    throw e;
  }
  return proc;
}

export interface ProxyProcessOptions {
  /** The user function's port on 127.0.0.1. */
  readonly ufPort: number;
  /** The SQLite file (`--store sqlite:PATH`). Give this or `store`. */
  readonly storePath?: string;
  /** Any store spec (`--store SPEC`), e.g. `postgres://user:pass@127.0.0.1:5432/db`; wins over storePath. */
  readonly store?: string;
  /** The proxy's port; by default the proxy binds a free one itself and reports it. */
  readonly port?: number;
  /** More `cloudstate proxy` flags, e.g. ["--shutdown-grace", "2000"]. `--log-level warn` unless given. */
  readonly extraArgs?: readonly string[];
  readonly readyTimeoutMs?: number;
  /** Environment settings (e.g. CLOUDSTATE_EVENTING_MAX_IN_FLIGHT). */
  readonly env?: Record<string, string>;
}

/** Spawns `cloudstate proxy` without waiting for it (for a start that is expected to fail). */
export function spawnProxyProcess(options: ProxyProcessOptions): TrackedProcess {
  const port = options.port ?? 0;
  const extra = options.extraArgs ?? [];
  if (options.store === undefined && options.storePath === undefined) throw new Error("spawnProxyProcess: give store or storePath");
  const args = [
    CLI,
    "proxy",
    "--host",
    "127.0.0.1",
    "--port",
    String(port),
    "--user-function",
    `127.0.0.1:${options.ufPort}`,
    "--store",
    options.store ?? `sqlite:${options.storePath}`,
    ...(extra.includes("--log-level") ? [] : ["--log-level", "warn"]),
    // Not the default 9090: test files run side by side.
    ...(extra.includes("--metrics-port") ? [] : ["--metrics-port", "0"]),
    ...extra,
  ];
  return spawnNode(args, { port, env: options.env });
}

/**
 * Starts `cloudstate proxy` and resolves once it is ready: GET /ready answers 200 on the given
 * port, or (without one) once it reports the port it bound, with its metrics port. Letting the
 * proxy bind port 0 itself avoids the race of a port picked free here and taken by another
 * process (parallel test files) before the proxy binds it.
 */
export async function startProxyProcess(options: ProxyProcessOptions): Promise<TrackedProcess> {
  const proc = spawnProxyProcess(options);
  const name = `proxy (pid ${proc.pid})`;
  const timeoutMs = options.readyTimeoutMs ?? 30_000;
  if (options.port !== undefined) {
    return waitUntilReady(proc, name, async () => (await httpStatus(proc.port, "/ready")) === 200, timeoutMs);
  }
  // The summary: its first line has the port; its last the metrics port, unless metrics are off.
  const extra = options.extraArgs ?? [];
  const metricsFlag = extra.indexOf("--metrics-port");
  const metricsOff = metricsFlag >= 0 && /^(off|-1)$/i.test(extra[metricsFlag + 1] ?? "");
  const ready = /cloudstate proxy ready on [^\s]+:(\d+) /;
  const metrics = /metrics: http:\/\/[^\s]+:(\d+)\/metrics/;
  await waitUntilReady(proc, name, () => Promise.resolve(ready.test(proc.stderr()) && (metricsOff || metrics.test(proc.stderr()))), timeoutMs);
  const metricsPort = metrics.exec(proc.stderr())?.[1];
  return { ...proc, port: Number(ready.exec(proc.stderr())![1]), metricsPort: metricsPort === undefined ? undefined : Number(metricsPort) };
}

export interface UserFunctionProcessOptions {
  /** A free port by default; give the old one to restart a user function where the proxy expects it. */
  readonly port?: number;
  /** SNAPSHOT_EVERY, MISBEHAVE, REPLY_DELAY_MS. */
  readonly env?: Record<string, string>;
  readonly readyTimeoutMs?: number;
}

/**
 * Starts the raw cart user function as a process: on the given port (a restart where the proxy
 * expects it) once that port accepts connections, or on one it binds itself and reports.
 */
export async function startRawUserFunctionProcess(options: UserFunctionProcessOptions = {}): Promise<TrackedProcess> {
  const { port } = options;
  const proc = spawnNode(["--import", "tsx", RAW_USER_FUNCTION], { port: port ?? 0, env: { ...options.env, PORT: String(port ?? 0) } });
  const name = `user function (pid ${proc.pid})`;
  const timeoutMs = options.readyTimeoutMs ?? 30_000;
  if (port !== undefined) return waitUntilReady(proc, name, () => accepts(port), timeoutMs);
  const listening = /raw cart user function on [^\s]+:(\d+)/;
  await waitUntilReady(proc, name, () => Promise.resolve(listening.test(proc.stdout())), timeoutMs);
  return { ...proc, port: Number(listening.exec(proc.stdout())![1]) };
}

/**
 * Starts an example's user function (`examples/<name>/src/main.ts`, our SDK) as a process: on the
 * given port, or on one it binds itself (PORT=0) and reports ("user function listening on …").
 */
export async function startExampleUserFunctionProcess(name: string, options: UserFunctionProcessOptions = {}): Promise<TrackedProcess> {
  const proc = spawnNode(["--import", "tsx", join(ROOT, "examples", name, "src/main.ts")], {
    port: options.port ?? 0,
    env: { ...options.env, PORT: String(options.port ?? 0), HOST: "127.0.0.1" },
  });
  const listening = /user function listening on [^\s]+:(\d+)/;
  await waitUntilReady(proc, `${name} user function (pid ${proc.pid})`, () => Promise.resolve(listening.test(proc.stderr())), options.readyTimeoutMs ?? 30_000);
  return { ...proc, port: Number(listening.exec(proc.stderr())![1]) };
}

/** Kills (SIGKILL) every tracked process still running, waits for them, and removes tempDir()s. */
export async function stopAll(): Promise<void> {
  const waits: Promise<unknown>[] = [];
  for (const child of [...live]) {
    waits.push(new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve(null) : child.once("exit", resolve))));
    child.kill("SIGKILL");
  }
  await Promise.all(waits);
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  dirs.clear();
}
