/**
 * `tandem/server`: create and embed a Tandem server.
 * @packageDocumentation
 */
export { createServer, TandemServer, type ServerStatus } from './server.js'
export { DEFAULT_OPTIONS, type ServerOptions, type ResolvedOptions } from './config.js'
export type { Store, StoreEntry, Tombstone } from './store/store.js'
export type { DocumentHandle } from './document-handle.js'
export { documentJson } from './content-json.js'
export { MemoryStore } from './store/memory-store.js'
export { SqliteStore } from './store/sqlite-store.js'
export { PostgresStore, type PostgresStoreOptions } from './store/postgres-store.js'
export type { Bus, BusHandlers, BusMessage, BusStatus } from './bus/bus.js'
export { LocalHub, LocalBus } from './bus/local-bus.js'
export { RedisBus, type RedisBusOptions } from './bus/redis-bus.js'
export type { Identity, Authenticate, AuthRequest, AuthenticateHook, HookIdentity } from './auth.js'
export type { WebSocketLike } from './socket.js'
export type { EndReason } from './session.js'
export { MemoryLockTable, type LockTable, type LockChange, type LockOwner, type AcquireOptions } from './locks.js'
export { PresenceBoard, type PresenceChange, type PresenceIdentity } from './presence.js'
export type { Collaboration } from './collaboration.js'
export { RedisLockTable, type RedisLockTableOptions } from './locks-redis.js'
