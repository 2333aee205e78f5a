import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'

/**
 * One entry of a y-protocols awareness update. `state` is kept as the JSON text it came in, so
 * that relaying it costs no parse and no stringify; `"null"` means the client removed its state.
 *
 * Byte layout (y-protocols/awareness.js):
 *   varUint count, then count × (varUint clientID, varUint clock, varString json)
 */
export interface AwarenessEntry {
  clientId: number
  clock: number
  state: string
}

/** Encodes awareness entries as a y-protocols awareness update. */
export function writeAwarenessUpdate (entries: readonly AwarenessEntry[]): Uint8Array {
  const encoder = encoding.createEncoder()
  encoding.writeVarUint(encoder, entries.length)
  for (const entry of entries) {
    encoding.writeVarUint(encoder, entry.clientId)
    encoding.writeVarUint(encoder, entry.clock)
    encoding.writeVarString(encoder, entry.state)
  }
  return encoding.toUint8Array(encoder)
}

/**
 * Decodes a y-protocols awareness update. Throws on truncated bytes, trailing bytes or a state
 * that is not JSON (a stock client would throw on it too).
 */
export function readAwarenessUpdate (update: Uint8Array): AwarenessEntry[] {
  const decoder = decoding.createDecoder(update)
  const count = decoding.readVarUint(decoder)
  // every entry takes at least three bytes: a cheap guard against absurd counts
  if (count * 3 > update.length) throw new RangeError(`awareness update claims ${count} entries`)
  const entries: AwarenessEntry[] = []
  for (let i = 0; i < count; i++) {
    const clientId = decoding.readVarUint(decoder)
    const clock = decoding.readVarUint(decoder)
    const state = decoding.readVarString(decoder)
    JSON.parse(state)
    entries.push({ clientId, clock, state })
  }
  if (decoding.hasContent(decoder)) throw new RangeError('trailing bytes after awareness update')
  return entries
}
