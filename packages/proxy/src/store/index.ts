// The store's public names: the contract, the implementations and how to open one from config.
export {
  SequenceConflictError,
  StoreUnavailableError,
  VersionConflictError,
  type Journal,
  type CommitListener,
  type CommittedBatch,
  type ConsumerOffsets,
  type ConsumerPosition,
  type DeadLetter,
  type DeadLetterInput,
  type DeadLetters,
  type EventLogEntry,
  type JournalAppend,
  type KeyValueStore,
  type RecoveredJournal,
  type Store,
  type StoreStats,
  type StoredEvent,
  type StoredPayload,
  type StoredSnapshot,
  type TopicInfo,
  type TopicLog,
  type TopicMessage,
  type TopicPublish,
  type ValueWrite,
  type VersionedValue,
} from "./store.js";
export { MemoryStore } from "./memory/memory-store.js";
export { SqliteStore, type Durability, type SqliteSettings, type SqliteStoreOptions } from "./sqlite/sqlite-store.js";
export { PostgresStore, type PostgresSettings, type PostgresStoreOptions } from "./postgres/postgres-store.js";
export type { PostgresConnection } from "./postgres/connection.js";
export {
  openStore,
  parseStoreSpec,
  type OpenStoreOptions,
  type StoreSpec,
  type StoreSpecOptions,
} from "./open-store.js";
