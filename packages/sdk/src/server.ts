// serve(): the user function's gRPC server — discovery plus one protocol service per entity type.
import { create } from "@bufbuild/protobuf";
import { EmptySchema } from "@bufbuild/protobuf/wkt";
import {
  EntityDiscovery,
  EntitySpecSchema,
  type EntitySpec,
  type ProxyInfo,
  type UserFunctionError,
} from "@cloudstate-ts/protocol";
import * as grpc from "@grpc/grpc-js";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { serializedFileDescriptorSet } from "./descriptors.js";
import type { Entity, EntityProtocol } from "./entity.js";
import { serviceDefinition } from "./grpc.js";
import { stderrLogger, type Logger } from "./logger.js";
import { Streams } from "./streams.js";

export interface ServeOptions {
  /** The entity types to serve (at least one). */
  entities: readonly Entity[];
  /** Default: env PORT, else 8080. 0 picks a free port (see `server.port`). */
  port?: number;
  /** Default: env HOST, else 127.0.0.1 (the proxy runs beside the user function). */
  host?: string;
  /** Reported at discovery; default: the name in the package.json nearest the main script. */
  serviceName?: string;
  /** Reported at discovery; default: the version in that package.json. */
  serviceVersion?: string;
  /** Close gracefully, then exit, on SIGTERM/SIGINT. Default false (a library should not own the process). */
  handleSignals?: boolean;
  /** Default: lines on stderr. */
  logger?: Logger;
}

export interface UserFunctionServer {
  readonly host: string;
  readonly port: number;
  /** Ends the protocol streams (after their command in progress) and stops the server. */
  close(): Promise<void>;
}

const PROTOCOL_MAJOR = 0;
const PROTOCOL_MINOR = 2;
const SHUTDOWN_GRACE_MS = 5_000;
const sdkPackage = readPackage(fileURLToPath(new URL("../package.json", import.meta.url))) ?? {};

export async function serve(options: ServeOptions): Promise<UserFunctionServer> {
  const logger = options.logger ?? stderrLogger;
  const { entities } = options;
  if (entities.length === 0) throw new TypeError("serve() needs at least one entity");
  const names = new Set<string>();
  for (const entity of entities) {
    if (names.has(entity.service.typeName)) throw new TypeError(`two entities serve ${entity.service.typeName}`);
    names.add(entity.service.typeName);
  }

  const host = options.host ?? process.env["HOST"] ?? "127.0.0.1";
  const port = options.port ?? portFromEnv();
  // Built once: a missing file or an unencodable descriptor shows up at start, not at discovery.
  const spec = entitySpec(entities, options);
  const streams = new Streams(logger);

  const server = new grpc.Server();
  server.addService(serviceDefinition(EntityDiscovery), discoveryHandlers(spec, entities, logger));
  const protocols = new Map<EntityProtocol, Entity[]>();
  for (const entity of entities) {
    const list = protocols.get(entity.protocol) ?? [];
    list.push(entity);
    protocols.set(entity.protocol, list);
  }
  for (const [protocol, list] of protocols) {
    server.addService(serviceDefinition(protocol.service), protocol.handlers(list, { logger, streams }));
  }

  const bound = await new Promise<number>((resolvePort, reject) => {
    const address = host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (error, actual) =>
      error ? reject(new Error(`cannot listen on ${address}: ${error.message}`)) : resolvePort(actual),
    );
  });
  const served = entities.map((e) => `${e.service.typeName} (${e.entityType.split(".").pop()})`).join(", ");
  logger.info(`user function listening on ${host}:${bound}, serving ${served}`);

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      removeSignalHandlers();
      // Streams end after their command in progress, and tryShutdown waits for the calls to finish;
      // a handler that never settles or a client that never lets go is cut after a grace period.
      let timer: NodeJS.Timeout | undefined;
      const grace = new Promise<void>((done) => (timer = setTimeout(done, SHUTDOWN_GRACE_MS)));
      await Promise.race([streams.shutdown(), grace]);
      await Promise.race([new Promise<void>((done) => server.tryShutdown(() => done())), grace]);
      clearTimeout(timer);
      server.forceShutdown(); // a no-op when tryShutdown finished
    })();
    return closing;
  };

  const onSignal = (signal: NodeJS.Signals): void => {
    logger.info(`${signal}: shutting down`);
    close().then(
      () => process.exit(0),
      (e: unknown) => {
        logger.error(`shutdown failed: ${String(e)}`);
        process.exit(1);
      },
    );
  };
  const removeSignalHandlers = (): void => {
    process.off("SIGTERM", onSignal);
    process.off("SIGINT", onSignal);
  };
  if (options.handleSignals) {
    process.once("SIGTERM", onSignal);
    process.once("SIGINT", onSignal);
  }

  return { host, port: bound, close };
}

function discoveryHandlers(spec: EntitySpec, entities: readonly Entity[], logger: Logger): grpc.UntypedServiceImplementation {
  return {
    discover(call: grpc.ServerUnaryCall<ProxyInfo, EntitySpec>, callback: grpc.sendUnaryData<EntitySpec>) {
      const info = call.request;
      logger.info(
        `discovered by ${info.proxyName || "a proxy"} ${info.proxyVersion} (protocol ${info.protocolMajorVersion}.${info.protocolMinorVersion})`,
      );
      if (info.protocolMajorVersion !== PROTOCOL_MAJOR) {
        logger.warn(`the proxy speaks protocol ${info.protocolMajorVersion}.${info.protocolMinorVersion}; this SDK speaks ${PROTOCOL_MAJOR}.${PROTOCOL_MINOR}`);
      }
      for (const entity of entities) {
        if (info.supportedEntityTypes.length > 0 && !info.supportedEntityTypes.includes(entity.entityType)) {
          logger.warn(`the proxy does not support ${entity.entityType}, needed by ${entity.service.typeName}`);
        }
      }
      callback(null, spec);
    },
    reportError(call: grpc.ServerUnaryCall<UserFunctionError, unknown>, callback: grpc.sendUnaryData<unknown>) {
      // The proxy found this user function's spec unusable and will not serve it: say so loudly.
      logger.error(`the proxy rejected this user function:\n    ${call.request.message.replaceAll("\n", "\n    ")}`);
      callback(null, create(EmptySchema));
    },
  };
}

function entitySpec(entities: readonly Entity[], options: ServeOptions): EntitySpec {
  const app = options.serviceName === undefined || options.serviceVersion === undefined ? appPackage() : undefined;
  return create(EntitySpecSchema, {
    proto: serializedFileDescriptorSet(entities.flatMap((e) => e.files)),
    entities: entities.map((e) => ({
      entityType: e.entityType,
      serviceName: e.service.typeName,
      persistenceId: e.persistenceId,
      passivationStrategy:
        e.passivationTimeoutMs === undefined
          ? undefined
          : { strategy: { case: "timeout" as const, value: { timeout: BigInt(e.passivationTimeoutMs) } } },
    })),
    serviceInfo: {
      serviceName: options.serviceName ?? app?.name ?? "unnamed-user-function",
      serviceVersion: options.serviceVersion ?? app?.version ?? "0.0.0",
      serviceRuntime: `node ${process.version}`,
      supportLibraryName: sdkPackage.name ?? "@cloudstate-ts/sdk",
      supportLibraryVersion: sdkPackage.version ?? "0.0.0",
      protocolMajorVersion: PROTOCOL_MAJOR,
      protocolMinorVersion: PROTOCOL_MINOR,
    },
  });
}

function portFromEnv(): number {
  const raw = process.env["PORT"];
  if (raw === undefined || raw === "") return 8080;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new TypeError(`PORT must be a port number, got "${raw}"`);
  return port;
}

interface PackageInfo {
  name?: string;
  version?: string;
}

/** The package.json nearest the main script (the user's app), else npm's view of the running package. */
function appPackage(): PackageInfo | undefined {
  const main = process.argv[1];
  if (main) {
    for (let dir = dirname(resolve(main)); ; dir = dirname(dir)) {
      const file = join(dir, "package.json");
      if (existsSync(file)) return readPackage(file);
      if (dirname(dir) === dir) break;
    }
  }
  const name = process.env["npm_package_name"];
  return name ? { name, version: process.env["npm_package_version"] } : undefined;
}

function readPackage(file: string): PackageInfo | undefined {
  try {
    return JSON.parse(readFileSync(file, "utf8")) as PackageInfo;
  } catch {
    return undefined;
  }
}
