import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'

/**
 * Tandem's own messages, carried in frames of type MESSAGE_TANDEM and sent only to clients that
 * opted in. Each starts with a varUint sub-type; PROTOCOL.md gives every layout.
 *
 *   ack      varUint 0, varUint count      the server stored `count` more sync frames of this session
 *   refused  varUint 1, varUint count,     the server refused `count` more sync frames of this
 *            varString code                session (code: TANDEM_ERR_READ_ONLY); none was applied
 */
export type TandemMessage =
  | { type: 'ack', count: number }
  | { type: 'refused', count: number, code: string }

const TANDEM_ACK = 0
const TANDEM_REFUSED = 1

/** Writes a Tandem sub-message (without the frame's message type). */
export function writeTandemMessage (encoder: encoding.Encoder, message: TandemMessage): void {
  switch (message.type) {
    case 'ack':
      encoding.writeVarUint(encoder, TANDEM_ACK)
      encoding.writeVarUint(encoder, message.count)
      break
    case 'refused':
      encoding.writeVarUint(encoder, TANDEM_REFUSED)
      encoding.writeVarUint(encoder, message.count)
      encoding.writeVarString(encoder, message.code)
      break
  }
}

/** Reads a Tandem sub-message; throws on an unknown sub-type. */
export function readTandemMessage (decoder: decoding.Decoder): TandemMessage {
  const type = decoding.readVarUint(decoder)
  switch (type) {
    case TANDEM_ACK:
      return { type: 'ack', count: decoding.readVarUint(decoder) }
    case TANDEM_REFUSED: {
      const count = decoding.readVarUint(decoder)
      return { type: 'refused', count, code: decoding.readVarString(decoder) }
    }
    default:
      throw new RangeError(`unknown tandem message ${type}`)
  }
}
