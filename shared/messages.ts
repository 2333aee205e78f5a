import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import {
  MESSAGE_SYNC, MESSAGE_AWARENESS, MESSAGE_AUTH, MESSAGE_QUERY_AWARENESS, MESSAGE_TANDEM,
  SYNC_STEP1, SYNC_STEP2, SYNC_UPDATE, AUTH_PERMISSION_DENIED
} from './constants.js'
import { TandemError } from './errors.js'
import { readTandemMessage, writeTandemMessage, type TandemMessage } from './tandem.js'

/**
 * The y-websocket frames, one message per frame. Byte layout (y-websocket, y-protocols/sync.js):
 *
 *   sync step 1      varUint 0, varUint 0, varUint8Array stateVector
 *   sync step 2      varUint 0, varUint 1, varUint8Array update
 *   sync update      varUint 0, varUint 2, varUint8Array update
 *   awareness        varUint 1, varUint8Array awarenessUpdate
 *   auth             varUint 2, varUint 0 (permission denied), varString reason
 *   query awareness  varUint 3
 *   tandem           varUint 100, Tandem sub-message (tandem.ts)
 */
export type Frame =
  | { type: 'sync-step1', stateVector: Uint8Array }
  | { type: 'sync-step2', update: Uint8Array }
  | { type: 'sync-update', update: Uint8Array }
  | { type: 'awareness', update: Uint8Array }
  | { type: 'auth-denied', reason: string }
  | { type: 'query-awareness' }
  | { type: 'tandem', message: TandemMessage }

/** Encodes sync step 1 with the sender's state vector. */
export function writeSyncStep1 (stateVector: Uint8Array): Uint8Array {
  return writeSync(SYNC_STEP1, stateVector)
}

/** Encodes sync step 2: the update the peer is missing. */
export function writeSyncStep2 (update: Uint8Array): Uint8Array {
  return writeSync(SYNC_STEP2, update)
}

/** Encodes one incremental document update. */
export function writeSyncUpdate (update: Uint8Array): Uint8Array {
  return writeSync(SYNC_UPDATE, update)
}

function writeSync (syncType: number, payload: Uint8Array): Uint8Array {
  const encoder = encoding.createEncoder()
  encoding.writeVarUint(encoder, MESSAGE_SYNC)
  encoding.writeVarUint(encoder, syncType)
  encoding.writeVarUint(encoder, payload.byteLength)
  // one allocation and one copy of the payload: lib0's encoder copies a large one twice
  const header = encoding.toUint8Array(encoder)
  const frame = new Uint8Array(header.byteLength + payload.byteLength)
  frame.set(header)
  frame.set(payload, header.byteLength)
  return frame
}

/** Encodes an awareness frame around an awareness update. */
export function writeAwareness (update: Uint8Array): Uint8Array {
  const encoder = encoding.createEncoder()
  encoding.writeVarUint(encoder, MESSAGE_AWARENESS)
  encoding.writeVarUint8Array(encoder, update)
  return encoding.toUint8Array(encoder)
}

/** Encodes a permission-denied auth frame (the stock client logs the reason). */
export function writeAuthDenied (reason: string): Uint8Array {
  const encoder = encoding.createEncoder()
  encoding.writeVarUint(encoder, MESSAGE_AUTH)
  encoding.writeVarUint(encoder, AUTH_PERMISSION_DENIED)
  encoding.writeVarString(encoder, reason)
  return encoding.toUint8Array(encoder)
}

/** Encodes a query-awareness frame. */
export function writeQueryAwareness (): Uint8Array {
  return Uint8Array.of(MESSAGE_QUERY_AWARENESS)
}

/** Encodes a Tandem frame around a Tandem sub-message. */
export function writeTandem (message: TandemMessage): Uint8Array {
  const encoder = encoding.createEncoder()
  encoding.writeVarUint(encoder, MESSAGE_TANDEM)
  writeTandemMessage(encoder, message)
  return encoding.toUint8Array(encoder)
}

/**
 * An awareness frame with no entries. The stock client applies it as a no-op, but it counts as
 * a received message for its 30 s watchdog, which ping frames do not.
 */
export const KEEPALIVE_FRAME: Uint8Array = writeAwareness(Uint8Array.of(0))

/**
 * Decodes one frame. Throws TANDEM_ERR_MALFORMED_MESSAGE for unknown types, truncated frames and
 * trailing bytes. Yjs payloads are not validated here (see the server's update validation).
 */
export function readFrame (data: Uint8Array): Frame {
  try {
    const decoder = decoding.createDecoder(data)
    const frame = readFrameBody(decoder)
    if (decoding.hasContent(decoder)) throw new RangeError('trailing bytes')
    return frame
  } catch (err) {
    if (err instanceof TandemError) throw err
    throw new TandemError('TANDEM_ERR_MALFORMED_MESSAGE', err instanceof Error ? err.message : String(err), { cause: err })
  }
}

function readFrameBody (decoder: decoding.Decoder): Frame {
  const type = decoding.readVarUint(decoder)
  switch (type) {
    case MESSAGE_SYNC: {
      const syncType = decoding.readVarUint(decoder)
      const payload = decoding.readVarUint8Array(decoder)
      switch (syncType) {
        case SYNC_STEP1: return { type: 'sync-step1', stateVector: payload }
        case SYNC_STEP2: return { type: 'sync-step2', update: payload }
        case SYNC_UPDATE: return { type: 'sync-update', update: payload }
        default: throw new RangeError(`unknown sync type ${syncType}`)
      }
    }
    case MESSAGE_AWARENESS:
      return { type: 'awareness', update: decoding.readVarUint8Array(decoder) }
    case MESSAGE_AUTH: {
      const authType = decoding.readVarUint(decoder)
      if (authType !== AUTH_PERMISSION_DENIED) throw new RangeError(`unknown auth type ${authType}`)
      return { type: 'auth-denied', reason: decoding.readVarString(decoder) }
    }
    case MESSAGE_QUERY_AWARENESS:
      return { type: 'query-awareness' }
    case MESSAGE_TANDEM:
      return { type: 'tandem', message: readTandemMessage(decoder) }
    default:
      throw new RangeError(`unknown message type ${type}`)
  }
}
