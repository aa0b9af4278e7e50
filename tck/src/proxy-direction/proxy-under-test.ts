// The proxy under test in direction (b), in front of the model user function (ours, in-process, so
// that the action model's probe sees what the actions receive).
// - By default: our proxy, in-process on a free port (memory store, or the store asked for).
// - With TCK_PROXY=host:port: the proxy running there. The model is served on TCK_MODEL_HOST
//   (default 127.0.0.1) : TCK_MODEL_PORT (default 8080), where that proxy must look for its user
//   function; tests that need to restart or inspect the proxy are skipped.
import { randomUUID } from "node:crypto";
import { serve, type Logger, type UserFunctionServer } from "@cloudstate-ts/sdk";
import { resolveConfig, startProxy, type RunningProxy } from "../../../packages/proxy/src/index.js";
import { ActionTwo } from "../gen/cloudstate/tck/model/action_pb.js";
import { ModelProbe, modelEntities } from "../model/index.js";
import { ModelClient } from "./model-client.js";

export const EXTERNAL_PROXY = process.env["TCK_PROXY"] || undefined;
/** Why a test that needs our own proxy is skipped (false: it runs). */
export const NEEDS_OUR_PROXY: string | false = EXTERNAL_PROXY ? "needs the suite's own proxy (TCK_PROXY is set)" : false;

export interface ProxyUnderTest {
  /** The proxy's host:port (gRPC and HTTP). */
  readonly address: string;
  /** A client of the proxy (a new one after restart()). */
  readonly client: ModelClient;
  readonly probe: ModelProbe;
  /** Our proxy, when the suite started it. */
  readonly ours: RunningProxy | undefined;
  /** A unique entity id for this run (stores may outlive it: an external proxy's, a SQLite file). */
  id(name: string): string;
  /** Stops our proxy and starts it again on the same store (our proxy only). */
  restart(): Promise<void>;
  close(): Promise<void>;
}

const quiet: Logger = { info: () => undefined, warn: () => undefined, error: () => undefined };

export async function startProxyUnderTest(options: { store?: string } = {}): Promise<ProxyUnderTest> {
  const probe = new ModelProbe();
  const run = randomUUID().slice(0, 8);
  const id = (name: string) => `${name}-${run}`;

  if (EXTERNAL_PROXY) {
    const host = process.env["TCK_MODEL_HOST"] || "127.0.0.1";
    const port = Number(process.env["TCK_MODEL_PORT"] || 8080);
    const uf = await serve({ entities: modelEntities(probe), host, port, logger: quiet });
    const client = new ModelClient(EXTERNAL_PROXY);
    await untilServing(client);
    return {
      address: EXTERNAL_PROXY,
      client,
      probe,
      ours: undefined,
      id,
      restart: () => Promise.reject(new Error("cannot restart an external proxy")),
      async close() {
        client.close();
        await uf.close();
      },
    };
  }

  const uf: UserFunctionServer = await serve({ entities: modelEntities(probe), host: "127.0.0.1", port: 0, logger: quiet });
  const config = resolveConfig(
    { host: "127.0.0.1", port: 0, store: options.store ?? "memory", userFunctionHost: "127.0.0.1", userFunctionPort: uf.port, logLevel: "silent", shutdownGraceMs: 1_000, metricsPort: "off" },
    {},
  );
  const start = () => startProxy(config, { discoveryBackoffMs: { min: 50, max: 200 } });
  let proxy = await start();
  let client = new ModelClient(`127.0.0.1:${proxy.port}`);
  return {
    get address() {
      return `127.0.0.1:${proxy.port}`;
    },
    get client() {
      return client;
    },
    probe,
    get ours() {
      return proxy;
    },
    id,
    async restart() {
      client.close();
      await proxy.stop();
      proxy = await start();
      client = new ModelClient(`127.0.0.1:${proxy.port}`);
    },
    async close() {
      client.close();
      await proxy.stop();
      await uf.close();
    },
  };
}

/** Waits until the external proxy serves the model (it may still be discovering it). */
async function untilServing(client: ModelClient, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await client.unary(ActionTwo.method.call, { id: "ready?" }, { deadlineMs: 1_000 });
      return;
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`the proxy at ${EXTERNAL_PROXY} did not serve the model within ${timeoutMs} ms: ${(e as Error).message}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}
