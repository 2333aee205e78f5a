import { FRAME_KINDS, frameKind } from '../shared/frame-kind.js'
import { readFrame, writeSyncStep2, writeSyncUpdate } from '../shared/messages.js'
import { splitUpdate } from './split-update.js'

/** What a sync frame adds to its update: two type bytes and a varUint length, with room to spare. */
const FRAMING_BYTES = 16

/**
 * A frame as the frames to send in its place: a sync frame (step 2 or update) over `maxBytes`
 * becomes several frames of the same sync type, each at most `maxBytes` where splitUpdate can
 * cut it, applied by the server one by one in order (PROTOCOL.md "Large first syncs and chunked
 * sync"). Any other frame, one small enough, or one that does not decode, is itself.
 */
export function chunkSyncFrame (bytes: Uint8Array, maxBytes: number): Uint8Array[] {
  if (bytes.byteLength <= maxBytes) return [bytes]
  const kind = FRAME_KINDS[frameKind(bytes)]
  if (kind !== 'sync_step2' && kind !== 'sync_update') return [bytes]
  let parts: Uint8Array[]
  try {
    const frame = readFrame(bytes)
    if (frame.type !== 'sync-step2' && frame.type !== 'sync-update') return [bytes]
    parts = splitUpdate(frame.update, maxBytes - FRAMING_BYTES)
  } catch {
    return [bytes] // the server answers a malformed frame; splitting it would not help
  }
  if (parts.length === 1) return [bytes]
  const write = kind === 'sync_step2' ? writeSyncStep2 : writeSyncUpdate
  return parts.map(part => write(part))
}
