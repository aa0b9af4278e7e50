// The console's settings: off unless asked for, on/off from flags or env, and no token-less console
// on a non-loopback interface.
import assert from "node:assert/strict";
import { test } from "node:test";
import { ConfigError, resolveConfig } from "../config.js";

test("the console is off by default and turned on by the flag, the environment or dev's defaults", () => {
  assert.equal(resolveConfig({}, {}).console, false);
  assert.equal(resolveConfig({ host: "127.0.0.1", console: "on" } as never, {}).console, true);
  assert.equal(resolveConfig({ host: "127.0.0.1" }, { CLOUDSTATE_CONSOLE: "on" }).console, true);
  assert.equal(resolveConfig({ console: "off" } as never, { CLOUDSTATE_CONSOLE: "on" }).console, false);
  assert.equal(resolveConfig({}, {}, { host: "127.0.0.1", console: true }).console, true);
  assert.throws(() => resolveConfig({ console: "maybe" } as never, {}), /console \/ CLOUDSTATE_CONSOLE/);
});

test("a console without a token refuses a non-loopback interface; a token allows it", () => {
  assert.throws(() => resolveConfig({ console: true }, {}), (e: unknown) => e instanceof ConfigError && /--console-token/.test(e.message));
  const c = resolveConfig({ console: true }, { CLOUDSTATE_CONSOLE_TOKEN: "s3cret" });
  assert.equal(c.consoleToken, "s3cret");
  assert.equal(resolveConfig({ console: true, host: "::1" }, {}).console, true);
});
