// The user function under test in direction (a): ours (the model served in-process on a free port),
// or, when TCK_USER_FUNCTION=host:port is set, another SDK's implementation of the model there.
import { serve, type Logger } from "@cloudstate-ts/sdk";
import { ProxyDriver } from "@cloudstate-ts/sdk/testing";
import { modelEntities } from "../model/index.js";

export interface UserFunctionUnderTest {
  /** host:port */
  readonly address: string;
  /** Speaks the protocol to the user function as the proxy would. */
  readonly driver: ProxyDriver;
  close(): Promise<void>;
}

const quiet: Logger = { info: () => undefined, warn: () => undefined, error: () => undefined };

export async function startUserFunction(): Promise<UserFunctionUnderTest> {
  const external = process.env["TCK_USER_FUNCTION"];
  if (external) {
    const driver = new ProxyDriver(external);
    return { address: external, driver, close: async () => driver.close() };
  }
  const server = await serve({ entities: modelEntities(), port: 0, host: "127.0.0.1", logger: quiet });
  const driver = new ProxyDriver(server.port);
  return {
    address: `${server.host}:${server.port}`,
    driver,
    async close() {
      driver.close();
      await server.close();
    },
  };
}
