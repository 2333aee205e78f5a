import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import type { BusMessage } from './bus.js'

/** Bumped whenever the layout changes: nodes of different versions then ignore each other. */
const VERSION = 1
const TYPES = ['update', 'awareness', 'sync', 'sync-reply', 'awareness-snapshot'] as const

/**
 * Encodes a bus message. Byte layout:
 *   varUint version, varUint type (index in TYPES), varString from, varString doc, then
 *   update | awareness | awareness-snapshot: varUint8Array update
 *   sync:       varString to, varUint8Array stateVector
 *   sync-reply: varString to, varUint8Array update
 */
export function encodeBusMessage (message: BusMessage): Uint8Array {
  const encoder = encoding.createEncoder()
  encoding.writeVarUint(encoder, VERSION)
  encoding.writeVarUint(encoder, TYPES.indexOf(message.type))
  encoding.writeVarString(encoder, message.from)
  encoding.writeVarString(encoder, message.doc)
  switch (message.type) {
    case 'sync':
      encoding.writeVarString(encoder, message.to)
      encoding.writeVarUint8Array(encoder, message.stateVector)
      break
    case 'sync-reply':
      encoding.writeVarString(encoder, message.to)
      encoding.writeVarUint8Array(encoder, message.update)
      break
    default:
      encoding.writeVarUint8Array(encoder, message.update)
  }
  return encoding.toUint8Array(encoder)
}

/** Decodes a bus message; throws RangeError on bad bytes or another version. */
export function decodeBusMessage (bytes: Uint8Array): BusMessage {
  const decoder = decoding.createDecoder(bytes)
  const version = decoding.readVarUint(decoder)
  if (version !== VERSION) throw new RangeError(`bus message version ${version}, expected ${VERSION}`)
  const type = TYPES[decoding.readVarUint(decoder)]
  const from = decoding.readVarString(decoder)
  const doc = decoding.readVarString(decoder)
  let message: BusMessage
  switch (type) {
    case 'sync':
      message = { type, from, doc, to: decoding.readVarString(decoder), stateVector: decoding.readVarUint8Array(decoder) }
      break
    case 'sync-reply':
      message = { type, from, doc, to: decoding.readVarString(decoder), update: decoding.readVarUint8Array(decoder) }
      break
    case 'update':
    case 'awareness':
    case 'awareness-snapshot':
      message = { type, from, doc, update: decoding.readVarUint8Array(decoder) }
      break
    default:
      throw new RangeError('unknown bus message type')
  }
  if (decoding.hasContent(decoder)) throw new RangeError('trailing bytes after bus message')
  return message
}
