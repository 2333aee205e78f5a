/**
 * `tandem/server`: create and embed a Tandem server.
 * @packageDocumentation
 */
export { createServer, TandemServer, type ServerStatus } from './server.js'
export { DEFAULT_OPTIONS, type ServerOptions, type ResolvedOptions } from './config/config.js'
export type { Store, StoreEntry, Tombstone } from './store/store.js'
export type { DocumentHandle } from './document/handle.js'
export { documentJson } from './document/content-json.js'
export { MemoryStore } from './store/memory-store.js'
export { SqliteStore } from './store/sqlite-store.js'
export { PostgresStore, type PostgresStoreOptions } from './store/postgres-store.js'
export type { Bus, BusHandlers, BusMessage, BusStatus } from './cluster/bus.js'
export { LocalHub, LocalBus } from './cluster/local-bus.js'
export { RedisBus, type RedisBusOptions } from './cluster/redis-bus.js'
export type { Identity, Authenticate, AuthRequest, AuthenticateHook, HookIdentity } from './auth/auth.js'
export type { WebSocketLike } from './transport/socket.js'
export type { EndReason } from './session/session.js'
export { MemoryLockTable, type LockTable, type LockChange, type LockOwner, type AcquireOptions } from './locks/table.js'
export { PresenceBoard, type PresenceChange, type PresenceIdentity } from './presence/board.js'
export type { Collaboration } from './session/collaboration.js'
export { RedisLockTable, type RedisLockTableOptions } from './locks/redis-table.js'
