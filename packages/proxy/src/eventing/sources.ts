// Where consumed messages come from. A consumer only sees MessageSource: an event log (the journal
// of one persistence id) or a topic of a Broker. The default broker keeps topics as durable logs in
// the proxy's store; a broker adapter (NATS JetStream, Kafka, …) implements Broker instead, and
// neither the consumers nor the entities change.
import type { ConsumerOffsets, Store, TopicInfo, TopicMessage, TopicPublish } from "../store/store.js";
import { anyOfData, ContentTypes, type AnyPayload, type CloudEventAttributes } from "./cloudevents.js";

export interface SourceMessage extends CloudEventAttributes {
  /** Position in the source: increasing, what the consumer commits. */
  readonly offset: number;
  /** Messages with the same key are delivered one at a time, in offset order (the entity, for event logs). */
  readonly key: string;
  /** The data as the Any a subscriber method gets. */
  readonly payload: AnyPayload;
  /** The data as stored (kept in dead letters). */
  readonly data: Uint8Array;
}

export interface MessageSource {
  /** "topic:<name>" or "event-log:<persistence id>". */
  readonly id: string;
  /** Messages with offset > afterOffset, in offset order, at most `limit`. */
  read(afterOffset: number, limit: number): Promise<SourceMessage[]>;
  /** The highest offset so far (0 when empty): the consumer's lag is head − committed. */
  head(): Promise<number>;
  /** Calls `wake` when new messages may be there (best effort: consumers poll as well). */
  watch(wake: () => void): () => void;
}

/**
 * Topics as a broker keeps them: plain messages in, plain messages out. What consumers need on top
 * (keys, the payload conventions) is topicSource's, so an adapter implements storage only.
 */
export interface Broker {
  readonly description: string;
  /** Appends the messages durably; resolves with their offsets. Idempotent per (topic, source, id). */
  publish(messages: readonly TopicPublish[]): Promise<number[]>;
  /** Messages of the topic with offset > afterOffset, in offset order, at most `limit`. */
  read(topic: string, afterOffset: number, limit: number): Promise<TopicMessage[]>;
  /** Calls `wake` when any topic may have new messages (best effort: readers poll as well). */
  watch(wake: () => void): () => void;
  /** Every topic with its message count and head (highest offset given). */
  topics(): Promise<TopicInfo[]>;
  /** Where consumer groups of this broker's topics keep their positions and leases. */
  readonly offsets: ConsumerOffsets;
  /** Applies retention: drops messages published before `before` (ms since the epoch). */
  trim(before: number): Promise<number>;
}

/** A topic of a broker as consumers see it: keyed by subject, its data as the Any of §8's conventions. */
export function topicSource(broker: Broker, name: string): MessageSource {
  return {
    id: `topic:${name}`,
    read: async (afterOffset, limit) =>
      (await broker.read(name, afterOffset, limit)).map((m) => ({
        offset: m.offset,
        id: m.id,
        source: m.source,
        type: m.type,
        subject: m.subject,
        contentType: m.contentType,
        time: m.time,
        key: m.subject,
        payload: anyOfData(m.type, m.contentType, m.data),
        data: m.data,
      })),
    head: async () => (await broker.topics()).find((t) => t.topic === name)?.head ?? 0,
    watch: (wake) => broker.watch(wake),
  };
}

/** The default broker: topics as logs in the proxy's own store (SQLite, PostgreSQL or memory). */
export class StoreBroker implements Broker {
  readonly description: string;
  readonly offsets: ConsumerOffsets;

  constructor(private readonly store: Store) {
    this.description = `store (${store.description})`;
    this.offsets = store.offsets;
  }

  publish(messages: readonly TopicPublish[]): Promise<number[]> {
    return this.store.topics.publish(messages);
  }

  read(topic: string, afterOffset: number, limit: number): Promise<TopicMessage[]> {
    return this.store.topics.read(topic, afterOffset, limit);
  }

  watch(wake: () => void): () => void {
    return watchStore(this.store, wake);
  }

  topics(): Promise<TopicInfo[]> {
    return this.store.topics.topics();
  }

  trim(before: number): Promise<number> {
    return this.store.topics.trim(before);
  }
}

/**
 * The event log of a persistence id: every event of its entities in commit order. ce-id is the
 * offset, ce-source the persistence id, ce-subject the entity id (PROTOCOL.md §8).
 */
export function eventLogSource(store: Store, persistenceId: string): MessageSource {
  return {
    id: `event-log:${persistenceId}`,
    read: async (afterOffset, limit) =>
      (await store.journal.eventLog(persistenceId, afterOffset, limit)).map((e) => ({
        offset: e.offset,
        id: String(e.offset),
        source: persistenceId,
        type: e.typeUrl.slice(e.typeUrl.lastIndexOf("/") + 1),
        subject: e.entityId,
        contentType: ContentTypes.protobuf,
        time: e.timestamp,
        key: e.entityId,
        payload: { typeUrl: e.typeUrl, value: e.bytes },
        data: e.bytes,
      })),
    head: () => store.journal.eventLogHead(persistenceId),
    watch: (wake) => watchStore(store, wake),
  };
}

/**
 * Wakes on this process's commits (onCommit) and on other processes' writes to a shared store
 * (onExternalWrite: PostgreSQL); the remover removes both.
 */
function watchStore(store: Store, wake: () => void): () => void {
  const removeCommit = store.onCommit(() => wake());
  const removeExternal = store.onExternalWrite(wake);
  return () => {
    removeCommit();
    removeExternal();
  };
}
