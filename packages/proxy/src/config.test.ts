import assert from "node:assert/strict";
import { test } from "node:test";
import { ConfigError, resolveConfig } from "./config.js";

test("defaults match the protocol's: port 9000, user function 127.0.0.1:8080, SQLite store", () => {
  const c = resolveConfig({}, {});
  assert.equal(c.port, 9000);
  assert.equal(c.userFunctionHost, "127.0.0.1");
  assert.equal(c.userFunctionPort, 8080);
  assert.equal(c.store, "sqlite");
  assert.equal(c.durability, "fsync");
  assert.equal(c.passivationTimeoutMs, 30_000);
  assert.equal(c.checkProtocolVersion, true);
});

test("environment variables override defaults, flags override the environment", () => {
  const env = { HTTP_PORT: "9100", USER_FUNCTION_HOST: "uf", USER_FUNCTION_PORT: "8181", CLOUDSTATE_STORE: "memory", CLOUDSTATE_CHECK_PROTOCOL_VERSION: "false" };
  const fromEnv = resolveConfig({}, env);
  assert.equal(fromEnv.port, 9100);
  assert.equal(fromEnv.userFunctionHost, "uf");
  assert.equal(fromEnv.userFunctionPort, 8181);
  assert.equal(fromEnv.store, "memory");
  assert.equal(fromEnv.checkProtocolVersion, false);
  assert.equal(resolveConfig({ port: "9200" }, env).port, 9200);
});

test("caller defaults sit below the environment", () => {
  assert.equal(resolveConfig({}, { HTTP_HOST: "0.0.0.0" }, { host: "127.0.0.1" }).host, "0.0.0.0");
  assert.equal(resolveConfig({}, {}, { host: "127.0.0.1" }).host, "127.0.0.1");
});

test("bad values are refused with the setting's flag and environment names", () => {
  const bad: [Record<string, string>, RegExp][] = [
    [{ HTTP_PORT: "70000" }, /port \/ HTTP_PORT.*"70000"/],
    [{ HTTP_PORT: "abc" }, /port \/ HTTP_PORT/],
    [{ CLOUDSTATE_STORE: "mongo://x" }, /store \/ CLOUDSTATE_STORE: invalid store "mongo:\/\/x"/],
    [{ CLOUDSTATE_DURABILITY: "sometimes" }, /durability \/ CLOUDSTATE_DURABILITY/],
    [{ PASSIVATION_TIMEOUT_MS: "-1" }, /passivationTimeoutMs \/ PASSIVATION_TIMEOUT_MS/],
    [{ LOG_LEVEL: "loud" }, /logLevel \/ LOG_LEVEL/],
  ];
  for (const [env, pattern] of bad) {
    assert.throws(() => resolveConfig({}, env), (e: unknown) => e instanceof ConfigError && pattern.test(e.message), JSON.stringify(env));
  }
});

test("metrics port: 9090 by default, from METRICS_PORT or the flag, off as -1", () => {
  assert.equal(resolveConfig({}, {}).metricsPort, 9090);
  assert.equal(resolveConfig({}, { METRICS_PORT: "9464" }).metricsPort, 9464);
  assert.equal(resolveConfig({ metricsPort: "0" }, { METRICS_PORT: "9464" }).metricsPort, 0);
  assert.equal(resolveConfig({ metricsPort: "off" }, {}).metricsPort, -1);
  assert.equal(resolveConfig({}, { METRICS_PORT: "-1" }).metricsPort, -1);
  assert.throws(() => resolveConfig({ metricsPort: "70000" }, {}), /metricsPort \/ METRICS_PORT/);
  assert.throws(() => resolveConfig({ metricsPort: "nope" }, {}), /metricsPort \/ METRICS_PORT/);
});
