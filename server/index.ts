/**
 * `tandem/server`: create and embed a Tandem server.
 * @packageDocumentation
 */
export { createServer, TandemServer, type ServerStatus } from './server.js'
export { DEFAULT_OPTIONS, type ServerOptions, type ResolvedOptions } from './config.js'
export type { Store, StoreEntry } from './store/store.js'
export { MemoryStore } from './store/memory-store.js'
export { SqliteStore } from './store/sqlite-store.js'
export type { Identity, Authenticate, AuthRequest, AuthenticateHook, HookIdentity } from './auth.js'
export type { WebSocketLike } from './socket.js'
export type { EndReason } from './session.js'
