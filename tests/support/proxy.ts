// Starts a proxy in-process for a test, on 127.0.0.1 and a free port; metrics off unless asked for
// (`metricsPort: 0` serves them on a free port of 127.0.0.1).
import { resolveConfig, startProxy, type ProxyConfigInput, type RunningProxy, type StartOptions } from "../../packages/proxy/src/index.js";

export async function startTestProxy(userFunctionPort: number, overrides: ProxyConfigInput = {}, options: StartOptions = {}): Promise<RunningProxy> {
  const config = resolveConfig(
    { host: "127.0.0.1", port: 0, store: "memory", userFunctionHost: "127.0.0.1", userFunctionPort, logLevel: "silent", metricsPort: "off", ...overrides },
    {},
  );
  return startProxy(config, { discoveryBackoffMs: { min: 50, max: 200 }, ...options });
}
