// The proxy's view of a user function after discovery: each served service with its state model,
// persistence id, passivation and, per method, the wire facts the hot path needs (paths, type URLs,
// key fields). Built once from the EntitySpec and validated as PROTOCOL.md §4 asks.
import { fromBinary, getOption, hasOption, type DescMessage, type DescMethod, type DescService, type FileRegistry } from "@bufbuild/protobuf";
import { createFileRegistry } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema, type FileDescriptorSet } from "@bufbuild/protobuf/wkt";
import type { EntitySpec } from "@cloudstate-ts/protocol";
import { eventing as eventingOption, type Eventing } from "@cloudstate-ts/protocol";
import { keyFieldsOf, type KeyField } from "./entity-key.js";

/** The state models of PROTOCOL.md §1, by their `entity_type` string. */
export const EntityTypes = {
  eventSourced: "cloudstate.eventsourced.EventSourced",
  value: "cloudstate.valueentity.ValueEntity",
  crdt: "cloudstate.crdt.Crdt",
  action: "cloudstate.action.ActionProtocol",
} as const;

export type EntityKind = keyof typeof EntityTypes;

export interface MethodModel {
  /** The method's name as in the proto (e.g. "AddItem"): the `name` of protocol commands. */
  readonly name: string;
  readonly desc: DescMethod;
  /** The gRPC path, e.g. "/com.example.shoppingcart.ShoppingCart/AddItem". */
  readonly path: string;
  readonly inputTypeUrl: string;
  readonly outputTypeUrl: string;
  readonly keyFields: readonly KeyField[];
  readonly clientStreaming: boolean;
  readonly serverStreaming: boolean;
  /** The input is google.protobuf.Any: an eventing message arrives as is, whatever its type. */
  readonly inputIsAny: boolean;
  /** The output is google.protobuf.Any: a reply of any type is accepted (and published as is). */
  readonly outputIsAny: boolean;
  /** The method's `(cloudstate.eventing)` option (PROTOCOL.md §3, §8), when it has one. */
  readonly eventing: MethodEventing | undefined;
}

/** Where a method's input comes from and where its replies go. */
export interface MethodEventing {
  readonly in:
    | { readonly kind: "topic" | "eventLog"; readonly name: string; /** "" = the service's name */ readonly consumerGroup: string }
    | undefined;
  readonly out: { readonly topic: string } | undefined;
}

const ANY = "google.protobuf.Any";

/** Whether a reply of this type URL fits the method: its output type, or anything when it returns Any. */
export function replyTypeFits(method: MethodModel, typeUrl: string): boolean {
  return typeUrl === method.outputTypeUrl || method.outputIsAny;
}

/** Topic names: what CloudEvents sources, URLs and broker subjects all accept. */
export const TOPIC_NAME = /^[A-Za-z0-9][A-Za-z0-9._~-]{0,199}$/;

export interface ServiceModel {
  readonly name: string;
  readonly desc: DescService;
  readonly kind: EntityKind;
  readonly entityType: string;
  readonly persistenceId: string;
  /** Idle time before an entity is passivated. */
  readonly passivationTimeoutMs: number;
  readonly methods: ReadonlyMap<string, MethodModel>;
}

export interface UserFunctionModel {
  readonly registry: FileRegistry;
  readonly services: ReadonlyMap<string, ServiceModel>;
  readonly serviceInfo: {
    readonly serviceName: string;
    readonly serviceVersion: string;
    readonly serviceRuntime: string;
    readonly supportLibraryName: string;
    readonly supportLibraryVersion: string;
  };
}

/** A spec the proxy refuses to serve; the message is one readable line that says what to change. */
export class DiscoveryError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DiscoveryError";
  }
}

export interface ModelOptions {
  readonly supportedKinds: readonly EntityKind[];
  readonly defaultPassivationTimeoutMs: number;
  /** PROTOCOL.md §4.2: the protocol version must be 0.2 unless this check is switched off. */
  readonly checkProtocolVersion: boolean;
}

export const typeUrlOf = (message: DescMessage): string => `type.googleapis.com/${message.typeName}`;

export function buildModel(spec: EntitySpec, options: ModelOptions): UserFunctionModel {
  const info = spec.serviceInfo;
  if (options.checkProtocolVersion) {
    const major = info?.protocolMajorVersion ?? 0;
    const minor = info?.protocolMinorVersion ?? 0;
    if (major !== 0 || minor !== 2) {
      throw new DiscoveryError(
        `the user function speaks Cloudstate protocol ${major}.${minor}; this proxy speaks 0.2 (upgrade the support library, or start the proxy with --no-protocol-version-check)`,
      );
    }
  }
  const registry = registryFrom(spec.proto);
  if (spec.entities.length === 0) {
    throw new DiscoveryError("the user function declares no entities: register at least one service with the support library");
  }
  const kindByType = new Map<string, EntityKind>(Object.entries(EntityTypes).map(([k, v]) => [v, k as EntityKind]));
  const services = new Map<string, ServiceModel>();
  for (const entity of spec.entities) {
    const kind = kindByType.get(entity.entityType);
    if (kind === undefined) {
      throw new DiscoveryError(
        `service ${entity.serviceName} has unknown entity type "${entity.entityType}" (known: ${Object.values(EntityTypes).join(", ")})`,
      );
    }
    if (!options.supportedKinds.includes(kind)) {
      throw new DiscoveryError(
        `service ${entity.serviceName} is a ${entity.entityType} entity, which this proxy does not support yet (supported: ${options.supportedKinds.map((k) => EntityTypes[k]).join(", ")})`,
      );
    }
    const desc = registry.getService(entity.serviceName);
    if (!desc) {
      throw new DiscoveryError(
        `service ${entity.serviceName} is not in the user function's descriptor set: check the service's full name (package.Service) and that its .proto file is included`,
      );
    }
    if (services.has(desc.typeName)) {
      throw new DiscoveryError(`service ${desc.typeName} is declared twice`);
    }
    const timeout = entity.passivationStrategy?.strategy.case === "timeout"
      ? Number(entity.passivationStrategy.strategy.value.timeout)
      : 0;
    services.set(desc.typeName, {
      name: desc.typeName,
      desc,
      kind,
      entityType: entity.entityType,
      // The reference SDKs default the persistence id to the service's simple name.
      persistenceId: entity.persistenceId || desc.name,
      passivationTimeoutMs: timeout > 0 ? timeout : options.defaultPassivationTimeoutMs,
      methods: methodsOf(desc, kind),
    });
  }
  return {
    registry,
    services,
    serviceInfo: {
      serviceName: info?.serviceName ?? "",
      serviceVersion: info?.serviceVersion ?? "",
      serviceRuntime: info?.serviceRuntime ?? "",
      supportLibraryName: info?.supportLibraryName ?? "",
      supportLibraryVersion: info?.supportLibraryVersion ?? "",
    },
  };
}

function registryFrom(proto: Uint8Array): FileRegistry {
  let set;
  try {
    set = fromBinary(FileDescriptorSetSchema, proto);
  } catch (e) {
    throw new DiscoveryError(`the user function's descriptor set (EntitySpec.proto) is not a valid FileDescriptorSet: ${(e as Error).message}`);
  }
  // Name a missing import before protobuf-es fails on it, so the message says what to add.
  const names = new Set(set.file.map((f) => f.name));
  for (const file of set.file) {
    for (const dep of file.dependency) {
      if (!names.has(dep)) {
        throw new DiscoveryError(`the descriptor set is missing ${dep}, imported by ${file.name}: include every imported file (with its imports) in EntitySpec.proto`);
      }
    }
  }
  // protoc and buf always fill json_name; SDKs that build descriptors themselves may not, and
  // protobuf-es would then use "" as the JSON name (breaking HTTP/JSON).
  for (const file of set.file) fillJsonNames(file.messageType);
  try {
    return createFileRegistry(set);
  } catch (e) {
    throw new DiscoveryError(`the user function's descriptor set is inconsistent: ${(e as Error).message}`);
  }
}

function fillJsonNames(messages: FileDescriptorSet["file"][number]["messageType"]): void {
  for (const message of messages) {
    for (const field of message.field) {
      if (!field.jsonName) field.jsonName = field.name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
    }
    fillJsonNames(message.nestedType);
  }
}

function methodsOf(service: DescService, kind: EntityKind): Map<string, MethodModel> {
  const methods = new Map<string, MethodModel>();
  for (const m of service.methods) {
    const clientStreaming = m.methodKind === "client_streaming" || m.methodKind === "bidi_streaming";
    const serverStreaming = m.methodKind === "server_streaming" || m.methodKind === "bidi_streaming";
    const where = `${service.typeName}.${m.name}`;
    let keyFields: KeyField[];
    try {
      keyFields = kind === "action" ? [] : keyFieldsOf(m.input);
    } catch (e) {
      throw new DiscoveryError((e as Error).message);
    }
    if (kind === "eventSourced" || kind === "value") {
      if (clientStreaming || serverStreaming) {
        throw new DiscoveryError(`${where} is a streaming method; ${kind === "value" ? "value" : "event-sourced"} entities only take unary methods`);
      }
    }
    if (kind === "crdt" && clientStreaming) {
      throw new DiscoveryError(`${where} is client-streaming; CRDT entities take unary and server-streaming methods only`);
    }
    const eventing = hasOption(m, eventingOption) ? eventingOf(getOption(m, eventingOption), where, m) : undefined;
    // An entity's subscriber method taking Any addresses the entity by the event's subject instead.
    const keyedBySubject = m.input.typeName === ANY && eventing?.in !== undefined;
    if (kind !== "action" && keyFields.length === 0 && !keyedBySubject) {
      throw new DiscoveryError(
        `${where}: its input ${m.input.typeName} has no entity key field; mark the field that identifies the entity with [(cloudstate.entity_key) = true]`,
      );
    }
    methods.set(m.name, {
      name: m.name,
      desc: m,
      path: `/${service.typeName}/${m.name}`,
      inputTypeUrl: typeUrlOf(m.input),
      outputTypeUrl: typeUrlOf(m.output),
      keyFields,
      clientStreaming,
      serverStreaming,
      inputIsAny: m.input.typeName === ANY,
      outputIsAny: m.output.typeName === ANY,
      eventing,
    });
  }
  return methods;
}

/** A method's eventing option, checked on its own (PROTOCOL.md §8); cross-service rules are in eventing/. */
function eventingOf(option: Eventing, where: string, m: DescMethod): MethodEventing {
  const source = option.in?.source;
  const out = option.out?.destination;
  if (option.in !== undefined && source?.case === undefined) {
    throw new DiscoveryError(`${where}: its eventing.in names no source; set eventing.in.topic or eventing.in.event_log`);
  }
  if ((source !== undefined || out?.case !== undefined) && m.methodKind !== "unary") {
    throw new DiscoveryError(`${where} is ${m.methodKind.replace("_", "-")}; only unary methods consume or publish events (eventing option)`);
  }
  for (const [what, topic] of [["eventing.in.topic", source?.case === "topic" ? source.value : undefined], ["eventing.out.topic", out?.value]] as const) {
    if (topic !== undefined && !TOPIC_NAME.test(topic)) {
      throw new DiscoveryError(`${where}: ${what} "${topic}" is not a valid topic name (letters, digits, ".", "_", "~", "-"; at most 200; starting with a letter or digit)`);
    }
  }
  if (source?.case === "eventLog" && source.value === "") {
    throw new DiscoveryError(`${where}: its eventing.in.event_log is empty; name the persistence id of an event-sourced entity`);
  }
  if (source?.case === "topic" && out?.case === "topic" && source.value === out.value) {
    throw new DiscoveryError(`${where} consumes and publishes the same topic "${out.value}" (eventing.in.topic = eventing.out.topic): it would consume its own output forever`);
  }
  return {
    in: source?.case === undefined ? undefined : { kind: source.case, name: source.value, consumerGroup: option.in?.consumerGroup ?? "" },
    out: out?.case === "topic" ? { topic: out.value } : undefined,
  };
}
