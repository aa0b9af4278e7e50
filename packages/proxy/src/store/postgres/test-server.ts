// A real, throwaway PostgreSQL server for tests: initdb into a temporary directory, then the
// server on a free loopback port, with fsync on (durability is what the tests check). It uses the
// installed server binaries (Debian's postgresql package: /usr/lib/postgresql/<version>/bin, or
// POSTGRES_BIN_DIR); PostgreSQL refuses to run as root, so as root it runs as the `postgres` user.
//
// stop() and kill() leave the data directory and the port, so that restart() brings the same
// database back: fault tests stop it under load and check what the proxy does. destroy() removes
// everything; if the test process dies first, a small watchdog shell stops the server and removes
// the directory when the process's end of a pipe closes.
import { execFile, execFileSync, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

export interface TestPostgres {
  /** postgres://cloudstate:PASSWORD@127.0.0.1:PORT/postgres (a superuser). */
  readonly url: string;
  readonly port: number;
  /** Fast shutdown (SIGINT): sessions are ended, the server checkpoints and exits. Keeps the data. */
  stop(): Promise<void>;
  /** Immediate shutdown (SIGQUIT), like a crash: the next start replays the WAL. Keeps the data. */
  kill(): Promise<void>;
  /** Starts the server again on the same data directory and port (stopping it first if it runs). */
  restart(): Promise<void>;
  /**
   * Freezes every server process (SIGSTOP): connections stay open but nothing answers, like a
   * server behind a network partition. resume() lets it go on.
   */
  pause(): void;
  resume(): void;
  /** Stops the server and removes its directory. */
  destroy(): Promise<void>;
}

const USER = "cloudstate";
const READY_LINE = "database system is ready to accept connections";
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 30_000;
const run = promisify(execFile);

export async function startTestPostgres(): Promise<TestPostgres> {
  const bin = findBinaries();
  const owner = serverUser();
  const base = mkdtempSync(join(tmpdir(), "cloudstate-pg-"));
  const dataDir = join(base, "data");
  // Characters that must be escaped in a URL, so the tests go through URL decoding.
  const password = `s3cret/${randomBytes(8).toString("hex")}`;
  const asOwner = { cwd: base, uid: owner?.uid, gid: owner?.gid, env: { PATH: process.env.PATH ?? "/usr/bin:/bin", LC_ALL: "C" } };
  try {
    if (owner) chownSync(base, owner.uid, owner.gid);
    const pwfile = join(base, "pwfile");
    writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
    if (owner) chownSync(pwfile, owner.uid, owner.gid);
    // --no-sync: the freshly made files need no fsync; the running server keeps fsync on.
    await run(
      join(bin, "initdb"),
      ["-D", dataDir, "-U", USER, `--pwfile=${pwfile}`, "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"],
      asOwner,
    );
    rmSync(pwfile);
  } catch (error) {
    rmSync(base, { recursive: true, force: true });
    throw new Error(`initdb failed: ${(error as { stderr?: string }).stderr || (error as Error).message}`, { cause: error });
  }

  let server: ChildProcess | undefined;
  let port = 0;
  const watchdog = spawnWatchdog(base);

  const start = async (): Promise<void> => {
    const args = ["-D", dataDir, "-p", String(port), "-k", base, "-c", "listen_addresses=127.0.0.1"];
    args.push("-c", "fsync=on", "-c", "synchronous_commit=on", "-c", "max_connections=200");
    const child = spawn(join(bin, "postgres"), args, { ...asOwner, stdio: ["ignore", "ignore", "pipe"], detached: true });
    child.unref();
    let log = "";
    await new Promise<void>((resolve, reject) => {
      const timeout = setTimeout(() => fail(new Error(`PostgreSQL did not start within ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS);
      const onExit = (code: number | null, signal: string | null) => fail(new Error(`PostgreSQL exited (${code ?? signal}) while starting`));
      function fail(error: Error) {
        clearTimeout(timeout);
        child.off("exit", onExit);
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
        reject(new Error(`${error.message}:\n${log.slice(-4000)}`));
      }
      child.on("exit", onExit);
      child.on("error", fail);
      child.stderr!.setEncoding("utf8");
      child.stderr!.on("data", (chunk: string) => {
        log = (log + chunk).slice(-64_000);
        if (log.includes(READY_LINE)) {
          clearTimeout(timeout);
          child.off("exit", onExit);
          resolve();
        }
      });
    });
    (child.stderr as unknown as { unref?: () => void }).unref?.();
    server = child;
  };

  const shutdown = async (signal: "SIGINT" | "SIGQUIT"): Promise<void> => {
    const child = server;
    if (!child) return;
    server = undefined;
    if (child.exitCode !== null || child.signalCode !== null) return;
    signalServer(child, "SIGCONT"); // a paused server cannot act on the shutdown signal
    const exited = new Promise<void>((resolve) => {
      const timeout = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
      child.once("exit", () => {
        clearTimeout(timeout);
        resolve();
      });
    });
    child.kill(signal);
    await exited;
  };

  // The port is taken on the first start and kept, so restarts come back on the same URL. Another
  // process may grab a port between our probe and the server's bind: try a few.
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    try {
      await start();
      break;
    } catch (error) {
      if (attempt >= 3 || !/could not bind|could not create listen socket/i.test((error as Error).message)) {
        rmSync(base, { recursive: true, force: true });
        watchdog.kill("SIGKILL");
        throw error;
      }
    }
  }

  return {
    url: `postgres://${USER}:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`,
    port,
    stop: () => shutdown("SIGINT"),
    kill: () => shutdown("SIGQUIT"),
    restart: async () => {
      await shutdown("SIGINT");
      await start();
    },
    destroy: async () => {
      await shutdown("SIGINT");
      rmSync(base, { recursive: true, force: true });
      watchdog.kill("SIGKILL");
    },
    pause: () => {
      if (server) signalServer(server, "SIGSTOP");
    },
    resume: () => {
      if (server) signalServer(server, "SIGCONT");
    },
  };
}

// A shell that waits for EOF on its stdin, a pipe from this process: when this process exits,
// however it exits, the shell stops the server if it runs (its pid is the first line of
// postmaster.pid) and removes the directory. It lives as long as the directory does.
function spawnWatchdog(base: string): ChildProcess {
  const script =
    'read _; pid=$(head -n 1 "$1/data/postmaster.pid" 2>/dev/null); ' +
    'if [ -n "$pid" ]; then kill -QUIT "$pid" 2>/dev/null; while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done; fi; rm -rf "$1"';
  const watchdog = spawn("sh", ["-c", script, "watchdog", base], { stdio: ["pipe", "ignore", "ignore"], detached: true });
  watchdog.unref();
  (watchdog.stdin as unknown as { unref?: () => void }).unref?.();
  return watchdog;
}

// The postmaster and its children (each backend is in a session of its own, so a process group
// signal would miss them; found through /proc). A stopped postmaster forks no new ones.
function signalServer(child: ChildProcess, signal: NodeJS.Signals): void {
  const pids = [child.pid!];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // /proc/PID/stat: "pid (comm) state ppid …"; comm may contain spaces, so read after the ")".
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === child.pid) pids.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

function findBinaries(): string {
  const fromEnv = process.env.POSTGRES_BIN_DIR;
  const candidates = fromEnv
    ? [fromEnv]
    : existsSync("/usr/lib/postgresql")
      ? readdirSync("/usr/lib/postgresql")
          .filter((v) => /^\d+$/.test(v))
          .sort((a, b) => Number(b) - Number(a))
          .map((v) => `/usr/lib/postgresql/${v}/bin`)
      : [];
  const found = candidates.find((dir) => existsSync(join(dir, "postgres")) && existsSync(join(dir, "initdb")));
  if (!found) {
    throw new Error(
      "PostgreSQL server binaries not found (looked in " +
        (fromEnv ? `POSTGRES_BIN_DIR=${fromEnv}` : "/usr/lib/postgresql/<version>/bin") +
        "): install them with `apt-get install -y postgresql` (.ci/run does) or set POSTGRES_BIN_DIR",
    );
  }
  return found;
}

// PostgreSQL refuses to run as root: then it runs as `postgres` (the Debian package's user).
function serverUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  try {
    const id = (flag: string) => Number(execFileSync("id", [flag, "postgres"], { encoding: "utf8" }).trim());
    return { uid: id("-u"), gid: id("-g") };
  } catch {
    throw new Error("running as root, and PostgreSQL will not: create a `postgres` user (the postgresql package does)");
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.on("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      probe.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}
