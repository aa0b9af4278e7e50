// The proxy's public entry point.
export { startProxy, PROXY_NAME, PROXY_VERSION, SUPPORTED_KINDS, type RunningProxy, type StartOptions } from "./proxy.js";
export { resolveConfig, proxyConfigSchema, configEnv, ConfigError, type ProxyConfig, type ProxyConfigInput } from "./config.js";
export { DiscoveryError, EntityTypes } from "./discovery/service-model.js";
export { ProxyError, Code } from "./errors.js";
export { createLogger, silentLogger, type Logger } from "./telemetry/logger.js";
export type { Broker, MessageSource, SourceMessage } from "./eventing/sources.js";
export type { ConsumerOffsets, ConsumerPosition, TopicInfo, TopicMessage, TopicPublish } from "./store/store.js";
