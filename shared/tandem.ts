// Longer than most files here (about 370 lines), on purpose: every Tandem message's encoder sits
// next to its decoder, with the byte layout, in one place (as y-protocols keeps sync.js).
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import { LEAVE_REASONS, LOCK_RELEASE_REASONS, type LeaveReason, type LockReleaseReason } from './reasons.js'

export { LEAVE_REASONS, LOCK_RELEASE_REASONS, type LeaveReason, type LockReleaseReason }

/**
 * Tandem's own messages, carried in frames of type MESSAGE_TANDEM (100) and sent only to clients
 * that opted in with `tandem=1`. Each starts with a varUint sub-type; PROTOCOL.md gives every
 * layout with examples. Strings are lib0 varStrings (varUint byte length, UTF-8), integers lib0
 * varUints, times milliseconds since the Unix epoch, booleans one varUint (0 or 1).
 *
 *   0  ack             S→C  varUint count
 *   1  refused         S→C  varUint count, varString code
 *   2  welcome         S→C  varString sessionId, varString secret, varUint resumed,
 *                           varString userId, varString name, varString color, varString access
 *   3  presence        S→C  varUint n, n × PresenceEntry
 *   4  presence-event  S→C  varUint event (0 joined, 1 updated, 2 left), PresenceEntry,
 *                           varString reason ('' unless left)
 *   5  set-status      C→S  varString status ('active' or 'away')
 *   6  leave           C→S  (nothing)
 *   7  lock-acquire    C→S  varUint id, varString resource, varUint ttlMs (0: server default),
 *                           varUint waitMs (0: do not wait)
 *   8  lock-release    C→S  varUint id, varString resource
 *   9  lock-reply      S→C  varUint id, varString code ('' on success), varUint hasLock, [LockInfo]
 *  10  locks           S→C  varUint n, n × LockInfo
 *  11  lock-event      S→C  varUint event (0 acquired, 1 released), LockInfo, varString reason
 *  12  token-expiring  S→C  varUint expiresAt (the session ends then unless refreshed)
 *  13  refresh         C→S  varString token (a new token of the same user)
 *  14  refreshed       S→C  varUint expiresAt (0: none), varString access, varString name,
 *                           varString color
 *
 *   PresenceEntry   varString userId, varString name, varString color, varString status,
 *                   varUint connections, varUint joinedAt, varUint lastActiveAt
 *   LockInfo        varString resource, varUint token, varString sessionId, varString userId,
 *                   varString name, varString color, varUint acquiredAt, varUint expiresAt
 */
export type TandemMessage =
  | { type: 'ack', count: number }
  | { type: 'refused', count: number, code: string }
  | { type: 'welcome', sessionId: string, secret: string, resumed: boolean, userId: string, name: string, color: string, access: Access }
  | { type: 'presence', users: PresenceEntry[] }
  | { type: 'presence-event', event: 'joined' | 'updated', user: PresenceEntry }
  | { type: 'presence-event', event: 'left', user: PresenceEntry, reason: LeaveReason }
  | { type: 'set-status', status: SettableStatus }
  | { type: 'leave' }
  | { type: 'lock-acquire', id: number, resource: string, ttlMs: number, waitMs: number }
  | { type: 'lock-release', id: number, resource: string }
  | { type: 'lock-reply', id: number, code: string, lock: LockInfo | null }
  | { type: 'locks', locks: LockInfo[] }
  | { type: 'lock-event', event: 'acquired', lock: LockInfo }
  | { type: 'lock-event', event: 'released', lock: LockInfo, reason: LockReleaseReason }
  | { type: 'token-expiring', expiresAt: number }
  | { type: 'refresh', token: string }
  | { type: 'refreshed', expiresAt: number, access: Access, name: string, color: string }
  | { type: 'locked', holder: LockInfo }

/** The Tandem message types a client may send; anything else from a client is malformed. */
export const CLIENT_MESSAGE_TYPES: ReadonlySet<TandemMessage['type']> = new Set(['set-status', 'leave', 'lock-acquire', 'lock-release', 'refresh'])

/** Access a session has to its document. */
export type Access = 'read' | 'write'

/** Presence status of a user in a document. */
export type PresenceStatus = 'active' | 'idle' | 'away' | 'reconnecting'
/** The statuses a client may set itself; `idle` and `reconnecting` are the server's to decide. */
export type SettableStatus = 'active' | 'away'

/** One user in a document: several connections (tabs) of one user are one entry. */
export interface PresenceEntry {
  userId: string
  name: string
  color: string
  status: PresenceStatus
  /** Connections of this user to the document, including ones within the reconnect grace. */
  connections: number
  joinedAt: number
  lastActiveAt: number
}

/** An edit lock as everyone sees it. */
export interface LockInfo {
  resource: string
  /** Fencing token: grows with every grant of this resource, across restarts. */
  token: number
  /** The holding session (stable across resumes). */
  sessionId: string
  userId: string
  name: string
  color: string
  acquiredAt: number
  /** When the lease ends unless renewed; the server renews it while the session lives. */
  expiresAt: number
}

export const PRESENCE_STATUSES: readonly PresenceStatus[] = ['active', 'idle', 'away', 'reconnecting']
/** Longest token a client may send in a `refresh` message (bytes of its UTF-8). */
export const MAX_REFRESH_TOKEN_LENGTH = 16_384

const ACK = 0
const REFUSED = 1
const WELCOME = 2
const PRESENCE = 3
const PRESENCE_EVENT = 4
const SET_STATUS = 5
const LEAVE = 6
const LOCK_ACQUIRE = 7
const LOCK_RELEASE = 8
const LOCK_REPLY = 9
const LOCKS = 10
const LOCK_EVENT = 11
const TOKEN_EXPIRING = 12
const REFRESH = 13
const REFRESHED = 14
const LOCKED = 15

const PRESENCE_EVENTS = ['joined', 'updated', 'left'] as const
const LOCK_EVENTS = ['acquired', 'released'] as const

/** Writes a Tandem sub-message (without the frame's message type). */
export function writeTandemMessage (encoder: encoding.Encoder, message: TandemMessage): void {
  switch (message.type) {
    case 'ack':
      encoding.writeVarUint(encoder, ACK)
      encoding.writeVarUint(encoder, message.count)
      break
    case 'refused':
      encoding.writeVarUint(encoder, REFUSED)
      encoding.writeVarUint(encoder, message.count)
      encoding.writeVarString(encoder, message.code)
      break
    case 'welcome':
      encoding.writeVarUint(encoder, WELCOME)
      encoding.writeVarString(encoder, message.sessionId)
      encoding.writeVarString(encoder, message.secret)
      encoding.writeVarUint(encoder, message.resumed ? 1 : 0)
      encoding.writeVarString(encoder, message.userId)
      encoding.writeVarString(encoder, message.name)
      encoding.writeVarString(encoder, message.color)
      encoding.writeVarString(encoder, message.access)
      break
    case 'presence':
      encoding.writeVarUint(encoder, PRESENCE)
      encoding.writeVarUint(encoder, message.users.length)
      for (const user of message.users) writePresenceEntry(encoder, user)
      break
    case 'presence-event':
      encoding.writeVarUint(encoder, PRESENCE_EVENT)
      encoding.writeVarUint(encoder, PRESENCE_EVENTS.indexOf(message.event))
      writePresenceEntry(encoder, message.user)
      encoding.writeVarString(encoder, message.event === 'left' ? message.reason : '')
      break
    case 'set-status':
      encoding.writeVarUint(encoder, SET_STATUS)
      encoding.writeVarString(encoder, message.status)
      break
    case 'leave':
      encoding.writeVarUint(encoder, LEAVE)
      break
    case 'lock-acquire':
      encoding.writeVarUint(encoder, LOCK_ACQUIRE)
      encoding.writeVarUint(encoder, message.id)
      encoding.writeVarString(encoder, message.resource)
      encoding.writeVarUint(encoder, message.ttlMs)
      encoding.writeVarUint(encoder, message.waitMs)
      break
    case 'lock-release':
      encoding.writeVarUint(encoder, LOCK_RELEASE)
      encoding.writeVarUint(encoder, message.id)
      encoding.writeVarString(encoder, message.resource)
      break
    case 'lock-reply':
      encoding.writeVarUint(encoder, LOCK_REPLY)
      encoding.writeVarUint(encoder, message.id)
      encoding.writeVarString(encoder, message.code)
      encoding.writeVarUint(encoder, message.lock === null ? 0 : 1)
      if (message.lock !== null) writeLockInfo(encoder, message.lock)
      break
    case 'locks':
      encoding.writeVarUint(encoder, LOCKS)
      encoding.writeVarUint(encoder, message.locks.length)
      for (const lock of message.locks) writeLockInfo(encoder, lock)
      break
    case 'lock-event':
      encoding.writeVarUint(encoder, LOCK_EVENT)
      encoding.writeVarUint(encoder, LOCK_EVENTS.indexOf(message.event))
      writeLockInfo(encoder, message.lock)
      encoding.writeVarString(encoder, message.event === 'released' ? message.reason : '')
      break
    case 'token-expiring':
      encoding.writeVarUint(encoder, TOKEN_EXPIRING)
      encoding.writeVarUint(encoder, message.expiresAt)
      break
    case 'refresh':
      encoding.writeVarUint(encoder, REFRESH)
      encoding.writeVarString(encoder, message.token)
      break
    case 'refreshed':
      encoding.writeVarUint(encoder, REFRESHED)
      encoding.writeVarUint(encoder, message.expiresAt)
      encoding.writeVarString(encoder, message.access)
      encoding.writeVarString(encoder, message.name)
      encoding.writeVarString(encoder, message.color)
      break
    case 'locked':
      encoding.writeVarUint(encoder, LOCKED)
      writeLockInfo(encoder, message.holder)
      break
  }
}

/**
 * Reads a Tandem sub-message. Throws RangeError on an unknown sub-type or enum value and on
 * truncated bytes (readFrame turns both into TANDEM_ERR_MALFORMED_MESSAGE).
 */
export function readTandemMessage (decoder: decoding.Decoder): TandemMessage {
  const type = decoding.readVarUint(decoder)
  switch (type) {
    case ACK:
      return { type: 'ack', count: decoding.readVarUint(decoder) }
    case REFUSED:
      return { type: 'refused', count: decoding.readVarUint(decoder), code: decoding.readVarString(decoder) }
    case WELCOME:
      return {
        type: 'welcome',
        sessionId: decoding.readVarString(decoder),
        secret: decoding.readVarString(decoder),
        resumed: readBoolean(decoder),
        userId: decoding.readVarString(decoder),
        name: decoding.readVarString(decoder),
        color: decoding.readVarString(decoder),
        access: oneOf(decoding.readVarString(decoder), ['read', 'write'] as const, 'access')
      }
    case PRESENCE:
      return { type: 'presence', users: readList(decoder, readPresenceEntry) }
    case PRESENCE_EVENT: {
      const event = indexed(decoding.readVarUint(decoder), PRESENCE_EVENTS, 'presence event')
      const user = readPresenceEntry(decoder)
      const reason = decoding.readVarString(decoder)
      if (event === 'left') return { type: 'presence-event', event, user, reason: oneOf(reason, LEAVE_REASONS, 'leave reason') }
      if (reason !== '') throw new RangeError(`presence ${event} with a reason`)
      return { type: 'presence-event', event, user }
    }
    case SET_STATUS:
      return { type: 'set-status', status: oneOf(decoding.readVarString(decoder), ['active', 'away'] as const, 'status') }
    case LEAVE:
      return { type: 'leave' }
    case LOCK_ACQUIRE:
      return {
        type: 'lock-acquire',
        id: decoding.readVarUint(decoder),
        resource: decoding.readVarString(decoder),
        ttlMs: decoding.readVarUint(decoder),
        waitMs: decoding.readVarUint(decoder)
      }
    case LOCK_RELEASE:
      return { type: 'lock-release', id: decoding.readVarUint(decoder), resource: decoding.readVarString(decoder) }
    case LOCK_REPLY: {
      const id = decoding.readVarUint(decoder)
      const code = decoding.readVarString(decoder)
      const lock = readBoolean(decoder) ? readLockInfo(decoder) : null
      return { type: 'lock-reply', id, code, lock }
    }
    case LOCKS:
      return { type: 'locks', locks: readList(decoder, readLockInfo) }
    case LOCK_EVENT: {
      const event = indexed(decoding.readVarUint(decoder), LOCK_EVENTS, 'lock event')
      const lock = readLockInfo(decoder)
      const reason = decoding.readVarString(decoder)
      if (event === 'released') return { type: 'lock-event', event, lock, reason: oneOf(reason, LOCK_RELEASE_REASONS, 'release reason') }
      if (reason !== '') throw new RangeError('lock acquired with a reason')
      return { type: 'lock-event', event, lock }
    }
    case TOKEN_EXPIRING:
      return { type: 'token-expiring', expiresAt: decoding.readVarUint(decoder) }
    case REFRESH: {
      // the length is checked before the bytes are decoded: a huge claim costs nothing
      const length = decoding.peekVarUint(decoder)
      if (length > MAX_REFRESH_TOKEN_LENGTH) throw new RangeError(`refresh token of ${length} bytes (at most ${MAX_REFRESH_TOKEN_LENGTH})`)
      return { type: 'refresh', token: decoding.readVarString(decoder) }
    }
    case REFRESHED:
      return {
        type: 'refreshed',
        expiresAt: decoding.readVarUint(decoder),
        access: oneOf(decoding.readVarString(decoder), ['read', 'write'] as const, 'access'),
        name: decoding.readVarString(decoder),
        color: decoding.readVarString(decoder)
      }
    case LOCKED:
      return { type: 'locked', holder: readLockInfo(decoder) }
    default:
      throw new RangeError(`unknown tandem message ${type}`)
  }
}

/** Writes a PresenceEntry (layout above). */
export function writePresenceEntry (encoder: encoding.Encoder, entry: PresenceEntry): void {
  encoding.writeVarString(encoder, entry.userId)
  encoding.writeVarString(encoder, entry.name)
  encoding.writeVarString(encoder, entry.color)
  encoding.writeVarString(encoder, entry.status)
  encoding.writeVarUint(encoder, entry.connections)
  encoding.writeVarUint(encoder, entry.joinedAt)
  encoding.writeVarUint(encoder, entry.lastActiveAt)
}

/** Reads a PresenceEntry; throws RangeError on an unknown status. */
export function readPresenceEntry (decoder: decoding.Decoder): PresenceEntry {
  return {
    userId: decoding.readVarString(decoder),
    name: decoding.readVarString(decoder),
    color: decoding.readVarString(decoder),
    status: oneOf(decoding.readVarString(decoder), PRESENCE_STATUSES, 'presence status'),
    connections: decoding.readVarUint(decoder),
    joinedAt: decoding.readVarUint(decoder),
    lastActiveAt: decoding.readVarUint(decoder)
  }
}

/** Writes a LockInfo (layout above). */
export function writeLockInfo (encoder: encoding.Encoder, lock: LockInfo): void {
  encoding.writeVarString(encoder, lock.resource)
  encoding.writeVarUint(encoder, lock.token)
  encoding.writeVarString(encoder, lock.sessionId)
  encoding.writeVarString(encoder, lock.userId)
  encoding.writeVarString(encoder, lock.name)
  encoding.writeVarString(encoder, lock.color)
  encoding.writeVarUint(encoder, lock.acquiredAt)
  encoding.writeVarUint(encoder, lock.expiresAt)
}

/** Reads a LockInfo. */
export function readLockInfo (decoder: decoding.Decoder): LockInfo {
  return {
    resource: decoding.readVarString(decoder),
    token: decoding.readVarUint(decoder),
    sessionId: decoding.readVarString(decoder),
    userId: decoding.readVarString(decoder),
    name: decoding.readVarString(decoder),
    color: decoding.readVarString(decoder),
    acquiredAt: decoding.readVarUint(decoder),
    expiresAt: decoding.readVarUint(decoder)
  }
}

function readList<T> (decoder: decoding.Decoder, read: (decoder: decoding.Decoder) => T): T[] {
  const n = decoding.readVarUint(decoder)
  // every item takes well over one byte: a cheap guard against absurd counts
  if (n > decoder.arr.length - decoder.pos) throw new RangeError(`list claims ${n} items`)
  const items: T[] = []
  for (let i = 0; i < n; i++) items.push(read(decoder))
  return items
}

function readBoolean (decoder: decoding.Decoder): boolean {
  const value = decoding.readVarUint(decoder)
  if (value > 1) throw new RangeError(`boolean ${value}`)
  return value === 1
}

function oneOf<T extends string> (value: string, allowed: readonly T[], what: string): T {
  if (!(allowed as readonly string[]).includes(value)) throw new RangeError(`unknown ${what} ${JSON.stringify(value)}`)
  return value as T
}

function indexed<T> (index: number, values: readonly T[], what: string): T {
  const value = values[index]
  if (value === undefined) throw new RangeError(`unknown ${what} ${index}`)
  return value
}
