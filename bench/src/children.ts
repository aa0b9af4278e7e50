// Child processes, ports and CPU accounting shared by the benchmarks (main.ts, eventing.ts):
// children on free loopback ports, SIGTERM then SIGKILL, temp dirs removed on Ctrl-C, CPU seconds
// from /proc.
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import * as http from "node:http";
import * as net from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const CLI = join(ROOT, "packages/cli/bin/cloudstate.js");
export const HOST = "127.0.0.1";

export const progress = (message: string): void => {
  process.stderr.write(`[bench] ${message}\n`);
};

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export const round2 = (x: number): number => Math.round(x * 100) / 100;

const live = new Set<Child>();
export const tempDirs = new Set<string>();

/** A node child process (cwd: the repository root) whose last lines of output are kept for errors. */
export class Child {
  readonly proc: ChildProcess;
  readonly exited: Promise<number | string>;
  private readonly tail: string[] = [];
  private exitInfo: number | string | undefined;

  constructor(
    readonly name: string,
    args: string[],
    env: NodeJS.ProcessEnv,
    verbose: boolean,
  ) {
    this.proc = spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    live.add(this);
    const collect = (chunk: Buffer) => {
      const text = chunk.toString("utf8");
      if (verbose) process.stderr.write(text.replace(/^(?=.)/gm, `[${name}] `));
      this.tail.push(...text.split("\n").filter((l) => l !== ""));
      if (this.tail.length > 40) this.tail.splice(0, this.tail.length - 40);
    };
    this.proc.stdout!.on("data", collect);
    this.proc.stderr!.on("data", collect);
    this.exited = new Promise((resolve) => {
      this.proc.once("exit", (code, signal) => {
        this.exitInfo = signal ?? code ?? "unknown";
        live.delete(this);
        resolve(this.exitInfo);
      });
      this.proc.once("error", (err) => {
        this.tail.push(`spawn error: ${err.message}`);
        this.exitInfo = "spawn-error";
        live.delete(this);
        resolve(this.exitInfo);
      });
    });
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  get hasExited(): boolean {
    return this.exitInfo !== undefined;
  }

  /** The last lines the child printed, for error messages. */
  output(): string {
    return this.tail.map((l) => `    ${l}`).join("\n");
  }

  /** SIGTERM, then SIGKILL if it has not exited within graceMs. */
  async stop(graceMs = 15_000): Promise<void> {
    if (this.hasExited) return;
    this.proc.kill("SIGTERM");
    const timer = setTimeout(() => {
      if (!this.hasExited) {
        progress(`${this.name} did not exit within ${graceMs} ms of SIGTERM: SIGKILL`);
        this.proc.kill("SIGKILL");
      }
    }, graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

/** Stops the children in reverse order of start: the proxy first (it drains and flushes the store), then the user function. */
export async function stopAll(children: readonly Child[]): Promise<void> {
  for (const c of [...children].reverse()) await c.stop();
}

/** If the bench itself is interrupted, its children and temp dirs go too. */
export function killChildrenOnSignal(): void {
  const onSignal = (signal: NodeJS.Signals) => {
    progress(`${signal}: stopping ${live.size} child process(es)`);
    for (const c of live) c.proc.kill("SIGKILL");
    for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
    process.exit(130);
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, HOST, () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Polls until check() is true; fails when the child exits or the time is up. */
export async function waitFor(what: string, child: Child, check: () => Promise<boolean>, timeoutMs: number, everyMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.hasExited) throw new Error(`${child.name} exited (${String(await child.exited)}) before ${what}:\n${child.output()}`);
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms:\n${child.output()}`);
    await sleep(everyMs);
  }
}

export function tcpOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, HOST);
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/** GET http://127.0.0.1:port/path: status and body (keep-alive off: one connection per call). */
export function httpGet(port: number, path: string, timeoutMs = 5_000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: HOST, port, path, timeout: timeoutMs, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.once("end", () => resolve({ status: res.statusCode ?? 0, body }));
      res.once("error", reject);
    });
    req.once("timeout", () => req.destroy(new Error(`GET ${path}: timeout`)));
    req.once("error", reject);
  });
}

export async function httpReady(port: number): Promise<boolean> {
  try {
    return (await httpGet(port, "/ready", 1_000)).status === 200;
  } catch {
    return false;
  }
}

// ---- CPU accounting ----------------------------------------------------------------------------

const CLOCK_TICKS = 100; // USER_HZ: 100 on Linux/x86 and arm64

/** CPU seconds (user + system) a process has used so far, from /proc; undefined elsewhere. */
export function procCpuSeconds(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return undefined;
  }
}

/** CPU seconds so far of this process ("bench") and of each child, by name. */
export function cpuSnapshot(children: readonly Child[]): Record<string, number | undefined> {
  const out: Record<string, number | undefined> = { bench: procCpuSeconds(process.pid) };
  for (const c of children) out[c.name] = procCpuSeconds(c.pid);
  return out;
}

/** CPU seconds each process used between two snapshots. */
export function cpuDelta(before: Record<string, number | undefined>, after: Record<string, number | undefined>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, a] of Object.entries(after)) {
    const b = before[name];
    if (a !== undefined && b !== undefined) out[name] = round2(a - b);
  }
  return out;
}

/** Busy, iowait and steal CPU seconds of the whole machine so far (all cores), from /proc/stat. */
export function machineCpu(): { busy: number; iowait: number; steal: number } | undefined {
  try {
    const f = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
    const [user, nice, system, , iowait, , , steal] = f as [number, number, number, number, number, number, number, number];
    return { busy: (user + nice + system) / CLOCK_TICKS, iowait: iowait / CLOCK_TICKS, steal: steal / CLOCK_TICKS };
  } catch {
    return undefined;
  }
}

/** Number options, checked; a bad value goes to `usage` (which stops the bench with its help). */
export function optionParsers(usage: (message: string) => never) {
  return {
    int(option: string, value: string): number {
      const n = Number(value);
      if (!Number.isSafeInteger(n) || n < 1) usage(`--${option} must be a positive integer, got "${value}"`);
      return n;
    },
    num(option: string, value: string, above: number): number {
      const n = Number(value);
      if (!Number.isFinite(n) || n <= above) usage(`--${option} must be a number > ${above}, got "${value}"`);
      return n;
    },
  };
}
