import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import type { BusMessage } from './bus.js'
import { LEAVE_REASONS, readPresenceEntry, writePresenceEntry, type LeaveReason } from '../../shared/tandem.js'
import type { ClientOwner } from '../document/client-owners.js'

/** Bumped whenever the layout changes: nodes of different versions then ignore each other. */
const VERSION = 2
/** Appended only: a type's index is its byte on the wire. */
const TYPES = ['update', 'awareness', 'sync', 'sync-reply', 'awareness-snapshot', 'presence', 'presence-snapshot', 'revoke', 'recheck', 'deleted', 'resumed',
  'relay'] as const
const REVOCATION_KINDS = ['user', 'session', 'jti'] as const

/**
 * Encodes a bus message. Byte layout:
 *   varUint version, varUint type (index in TYPES), varString from, varString doc,
 *   varUint sentAt (ms since the epoch, for the bus lag metric), then
 *   update:     varUint8Array update, [owners]
 *   awareness | awareness-snapshot: varUint8Array update
 *   sync:       varString to, varUint8Array stateVector
 *   sync-reply: varString to, varUint8Array update, [owners]
 *   presence:   varString userId, varUint hasEntry, [PresenceEntry], varString reason ('' unless gone)
 *   presence-snapshot: varUint n, n × PresenceEntry
 *   revoke:     varUint kind (0 user, 1 session, 2 jti), varString value, varUint revokedAt,
 *               varUint expiresAt
 *   recheck:    (nothing)
 *   deleted:    (nothing)
 *   resumed:    varString to, varString sessionId
 *   relay:      varUint seq, varUint hasUpdate, [varUint8Array update, [owners]]
 * (PresenceEntry as in shared/tandem.ts; owners: varUint n ≥ 1, n × (varUint client, varString
 * user), written only when there are some: an update without owners has the layout it always had.)
 */
export function encodeBusMessage (message: BusMessage, sentAt = Date.now()): Uint8Array {
  const encoder = encoding.createEncoder()
  encoding.writeVarUint(encoder, VERSION)
  encoding.writeVarUint(encoder, TYPES.indexOf(message.type))
  encoding.writeVarString(encoder, message.from)
  encoding.writeVarString(encoder, message.doc)
  encoding.writeVarUint(encoder, sentAt)
  switch (message.type) {
    case 'sync':
      encoding.writeVarString(encoder, message.to)
      encoding.writeVarUint8Array(encoder, message.stateVector)
      break
    case 'sync-reply':
      encoding.writeVarString(encoder, message.to)
      encoding.writeVarUint8Array(encoder, message.update)
      writeOwners(encoder, message.owners)
      break
    case 'update':
      encoding.writeVarUint8Array(encoder, message.update)
      writeOwners(encoder, message.owners)
      break
    case 'presence':
      encoding.writeVarString(encoder, message.userId)
      encoding.writeVarUint(encoder, message.entry === null ? 0 : 1)
      if (message.entry !== null) writePresenceEntry(encoder, message.entry)
      encoding.writeVarString(encoder, message.reason)
      break
    case 'presence-snapshot':
      encoding.writeVarUint(encoder, message.entries.length)
      for (const entry of message.entries) writePresenceEntry(encoder, entry)
      break
    case 'revoke':
      encoding.writeVarUint(encoder, REVOCATION_KINDS.indexOf(message.revocation.kind))
      encoding.writeVarString(encoder, message.revocation.value)
      encoding.writeVarUint(encoder, message.revocation.revokedAt)
      encoding.writeVarUint(encoder, message.revocation.expiresAt)
      break
    case 'recheck':
    case 'deleted':
      break
    case 'resumed':
      encoding.writeVarString(encoder, message.to)
      encoding.writeVarString(encoder, message.sessionId)
      break
    case 'relay':
      encoding.writeVarUint(encoder, message.seq)
      encoding.writeVarUint(encoder, message.update === null ? 0 : 1)
      if (message.update !== null) {
        encoding.writeVarUint8Array(encoder, message.update)
        writeOwners(encoder, message.owners)
      }
      break
    default:
      encoding.writeVarUint8Array(encoder, message.update)
  }
  return encoding.toUint8Array(encoder)
}

/** Decodes a bus message; throws RangeError on bad bytes or another version. */
export function decodeBusMessage (bytes: Uint8Array): BusMessage {
  return decodeBusEnvelope(bytes).message
}

/** Decodes a bus message and the time its sender encoded it. */
export function decodeBusEnvelope (bytes: Uint8Array): { message: BusMessage, sentAt: number } {
  const decoder = decoding.createDecoder(bytes)
  const version = decoding.readVarUint(decoder)
  if (version !== VERSION) throw new RangeError(`bus message version ${version}, expected ${VERSION}`)
  const type = TYPES[decoding.readVarUint(decoder)]
  const from = decoding.readVarString(decoder)
  const doc = decoding.readVarString(decoder)
  const sentAt = decoding.readVarUint(decoder)
  let message: BusMessage
  switch (type) {
    case 'sync':
      message = { type, from, doc, to: decoding.readVarString(decoder), stateVector: decoding.readVarUint8Array(decoder) }
      break
    case 'sync-reply': {
      const to = decoding.readVarString(decoder)
      const update = decoding.readVarUint8Array(decoder)
      const owners = readOwners(decoder, bytes.length)
      message = owners.length === 0 ? { type, from, doc, to, update } : { type, from, doc, to, update, owners }
      break
    }
    case 'update': {
      const update = decoding.readVarUint8Array(decoder)
      const owners = readOwners(decoder, bytes.length)
      message = owners.length === 0 ? { type, from, doc, update } : { type, from, doc, update, owners }
      break
    }
    case 'awareness':
    case 'awareness-snapshot':
      message = { type, from, doc, update: decoding.readVarUint8Array(decoder) }
      break
    case 'presence': {
      const userId = decoding.readVarString(decoder)
      const hasEntry = decoding.readVarUint(decoder)
      if (hasEntry > 1) throw new RangeError('bad presence flag')
      const entry = hasEntry === 1 ? readPresenceEntry(decoder) : null
      const reason = decoding.readVarString(decoder)
      if (reason !== '' && !LEAVE_REASONS.includes(reason as LeaveReason)) throw new RangeError(`unknown leave reason ${reason}`)
      message = { type, from, doc, userId, entry, reason: reason as LeaveReason | '' }
      break
    }
    case 'presence-snapshot': {
      const count = decoding.readVarUint(decoder)
      // each entry takes at least 7 bytes: a count beyond what is left is a lie
      if (count > bytes.length) throw new RangeError('presence snapshot count exceeds the message')
      const entries = []
      for (let i = 0; i < count; i++) entries.push(readPresenceEntry(decoder))
      message = { type, from, doc, entries }
      break
    }
    case 'revoke': {
      const kind = REVOCATION_KINDS[decoding.readVarUint(decoder)]
      if (kind === undefined) throw new RangeError('unknown revocation kind')
      const value = decoding.readVarString(decoder)
      const revokedAt = decoding.readVarUint(decoder)
      message = { type, from, doc, revocation: { kind, value, revokedAt, expiresAt: decoding.readVarUint(decoder) } }
      break
    }
    case 'recheck':
    case 'deleted':
      message = { type, from, doc }
      break
    case 'resumed': {
      const to = decoding.readVarString(decoder)
      message = { type, from, doc, to, sessionId: decoding.readVarString(decoder) }
      break
    }
    case 'relay': {
      const seq = decoding.readVarUint(decoder)
      const hasUpdate = decoding.readVarUint(decoder)
      if (hasUpdate > 1) throw new RangeError('bad relay flag')
      if (hasUpdate === 0) {
        message = { type, from, doc, seq, update: null }
        break
      }
      const update = decoding.readVarUint8Array(decoder)
      const owners = readOwners(decoder, bytes.length)
      message = owners.length === 0 ? { type, from, doc, seq, update } : { type, from, doc, seq, update, owners }
      break
    }
    default:
      throw new RangeError('unknown bus message type')
  }
  if (decoding.hasContent(decoder)) throw new RangeError('trailing bytes after bus message')
  return { message, sentAt }
}

/** Writes client id owners, if any: varUint n, then n × (varUint client, varString user). */
function writeOwners (encoder: encoding.Encoder, owners: readonly ClientOwner[] = []): void {
  if (owners.length === 0) return
  encoding.writeVarUint(encoder, owners.length)
  for (const { client, user } of owners) {
    encoding.writeVarUint(encoder, client)
    encoding.writeVarString(encoder, user)
  }
}

/** Reads what writeOwners wrote (nothing: none); `size` bounds the count (an owner takes 2 bytes or more). */
function readOwners (decoder: decoding.Decoder, size: number): ClientOwner[] {
  if (!decoding.hasContent(decoder)) return []
  const count = decoding.readVarUint(decoder)
  // an empty list is never written: a 0 here is a stray byte
  if (count === 0) throw new RangeError('trailing bytes after bus message')
  if (count > size) throw new RangeError('owner count exceeds the message')
  const owners: ClientOwner[] = []
  for (let i = 0; i < count; i++) owners.push({ client: decoding.readVarUint(decoder), user: decoding.readVarString(decoder) })
  return owners
}
