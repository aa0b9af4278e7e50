// `cloudstate proxy …` runs the proxy; `cloudstate dev DIR` runs a user function with a proxy beside it.
import { Command, Option } from "commander";
import { runDev } from "./dev.js";
import { runProxy } from "./proxy-command.js";

const program = new Command()
  .name("cloudstate")
  .description("Stateful serverless: run the Cloudstate proxy, or a user function with a proxy in dev mode")
  .showHelpAfterError();

/** Flags shared by `proxy` and `dev`; each also has an environment variable (see docs/configuration.md). */
function proxyFlags(cmd: Command): Command {
  return cmd
    .addOption(new Option("--port <port>", "port of the ingress (gRPC, HTTP) [env HTTP_PORT, default 9000]"))
    .addOption(new Option("--host <host>", "interface the ingress binds to [env HTTP_HOST, default 0.0.0.0; dev: 127.0.0.1]"))
    .addOption(new Option("--store <spec>", "memory | sqlite | sqlite:PATH [env CLOUDSTATE_STORE, default sqlite]"))
    .addOption(new Option("--data-dir <dir>", "directory of the default SQLite database [env CLOUDSTATE_DATA_DIR, default .data]"))
    .addOption(new Option("--durability <mode>", "fsync | relaxed [env CLOUDSTATE_DURABILITY, default fsync]"))
    .addOption(new Option("--passivation-timeout <ms>", "idle time before an entity is passivated [env PASSIVATION_TIMEOUT_MS, default 30000]"))
    .addOption(new Option("--command-timeout <ms>", "time the user function has to answer a command [env COMMAND_TIMEOUT_MS, default 30000]"))
    .addOption(new Option("--max-message-size <bytes>", "largest request or reply [env MAX_MESSAGE_BYTES, default 4194304]"))
    .addOption(new Option("--shutdown-grace <ms>", "time to finish in-flight work on SIGTERM [env SHUTDOWN_GRACE_MS, default 10000]"))
    .addOption(new Option("--no-protocol-version-check", "accept user functions that do not declare protocol 0.2"))
    .addOption(new Option("--log-level <level>", "fatal | error | warn | info | debug | trace | silent [env LOG_LEVEL, default info]"))
    .addOption(new Option("--cors-origins <list>", "comma-separated origins browsers may call from (gRPC-web, Connect, HTTP/JSON); * for any [env CORS_ORIGINS, default none]"))
    .addOption(new Option("--metrics-port <port>", "port of GET /metrics (Prometheus) on the ingress's host; 0 = a free port, off (or -1) = none [env METRICS_PORT, default 9090]"))
    .addOption(new Option("--console <mode>", "on | off: the web console under /console [env CLOUDSTATE_CONSOLE, default off; dev: on]"))
    .addOption(new Option("--console-token <token>", "bearer token the console's API requires [env CLOUDSTATE_CONSOLE_TOKEN]"))
    .addOption(new Option("--topic-retention <ms>", "how long topic messages are kept; 0 = forever [env CLOUDSTATE_TOPIC_RETENTION_MS, default 604800000 = 7 days]"))
    .addOption(new Option("--eventing-max-attempts <n>", "delivery attempts before a message becomes a dead letter [env CLOUDSTATE_EVENTING_MAX_ATTEMPTS, default 5]"))
    .addOption(new Option("--eventing-token <token>", "bearer token the /eventing HTTP endpoints require [env CLOUDSTATE_EVENTING_TOKEN]"));
}

proxyFlags(
  program
    .command("proxy")
    .description("run the proxy in front of a user function")
    .addOption(new Option("--user-function <host:port>", "the user function's address [env USER_FUNCTION_HOST / USER_FUNCTION_PORT, default 127.0.0.1:8080]")),
).action(runProxy);

proxyFlags(
  program
    .command("dev")
    .description("run a user function (a package directory) with a proxy on the SQLite store, and print where to call it")
    .argument("[dir]", "the user function's package directory", "."),
).action(runDev);

await program.parseAsync();
