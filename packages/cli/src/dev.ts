// `cloudstate dev DIR`: starts the user function in DIR (its package.json "main", run through tsx)
// on a free loopback port, and a proxy in front of it on the SQLite store in DIR/.data.
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { join, resolve } from "node:path";
import { createLogger, resolveConfig, startProxy, type RunningProxy } from "@cloudstate-ts/proxy";
import { configInput, type ProxyFlags } from "./flags.js";
import { fail, onSignals } from "./proxy-command.js";

export async function runDev(dir: string, flags: ProxyFlags): Promise<void> {
  const root = resolve(dir);
  const main = entryPoint(root);
  const ufPort = await freePort();
  let config;
  try {
    config = resolveConfig(
      { ...configInput(flags), userFunctionHost: "127.0.0.1", userFunctionPort: ufPort },
      process.env,
      // Dev mode must not fail because 9090 is taken: metrics go to a free port (the summary prints it).
      { host: "127.0.0.1", dataDir: join(root, ".data"), logLevel: "warn", console: true, metricsPort: 0 },
    );
  } catch (e) {
    fail((e as Error).message);
  }
  const log = createLogger(config.logLevel, process.stderr);
  const aborter = new AbortController();
  let proxy: RunningProxy | undefined;
  const child = startUserFunction(main, root, ufPort);
  child.once("exit", (code, signal) => {
    if (aborter.signal.aborted) return;
    aborter.abort(new Error("user function exited"));
    process.stderr.write(`cloudstate dev: the user function exited (${signal ?? `code ${code}`})\n`);
    void (proxy?.stop() ?? Promise.resolve()).finally(() => process.exit(1));
  });
  onSignals(async () => {
    aborter.abort(new Error("stopped"));
    await proxy?.stop();
    child.kill("SIGTERM");
    process.exit(0);
  });
  try {
    proxy = await startProxy(config, { log, signal: aborter.signal, discoveryBackoffMs: { min: 200, max: 2000 } });
  } catch (e) {
    if (aborter.signal.aborted) return;
    child.kill("SIGTERM");
    fail((e as Error).message);
  }
  for (const line of proxy.summary()) process.stdout.write(`${line}\n`);
  process.stdout.write(`  user function: ${main} (pid ${child.pid}, port ${ufPort}); Ctrl-C stops both\n`);
}

function entryPoint(root: string): string {
  let pkg: { main?: string };
  try {
    pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { main?: string };
  } catch (e) {
    fail(`${root} is not a user function package: cannot read its package.json (${(e as Error).message})`);
  }
  return join(root, pkg.main ?? "src/main.ts");
}

function startUserFunction(main: string, cwd: string, port: number): ChildProcess {
  const tsx = import.meta.resolve("tsx");
  return spawn(process.execPath, ["--import", tsx, main], {
    cwd,
    env: { ...process.env, PORT: String(port), HOST: "127.0.0.1" },
    stdio: ["ignore", "inherit", "inherit"],
  });
}

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolvePort(port));
    });
  });
}
