/**
 * `tandem/client`: the browser and Node client of a Tandem server.
 * @packageDocumentation
 */
export { TandemClient, DEFAULT_CLIENT_OPTIONS, type TandemClientOptions, type TandemClientEvents, type ClientStatus, type WebSocketClass, type TokenFunction } from './tandem-client.js'
export { Lock, type AcquireOptions, type LockEvent, type LocksView, type GuardedType } from './locks.js'
export type { PresenceEvent, PresenceView } from './presence.js'
export { LockDeniedError } from '../shared/lock-denied-error.js'
export { LockedError } from '../shared/locked-error.js'
export { typeResource, isTypeResource, type SharedType } from '../shared/type-resource.js'
export { TandemError, isTandemError, type ErrorCode } from '../shared/errors.js'
export type { LockInfo, PresenceEntry, PresenceStatus, LeaveReason, LockReleaseReason } from '../shared/tandem.js'
