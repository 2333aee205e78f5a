import { MESSAGE_SYNC, MESSAGE_AWARENESS, MESSAGE_AUTH, MESSAGE_QUERY_AWARENESS, MESSAGE_TANDEM, SYNC_STEP1, SYNC_STEP2, SYNC_UPDATE } from './constants.js'

/** Kinds of frame on the wire, as metrics label them: a fixed, bounded set, indexed by `frameKind`. */
export const FRAME_KINDS = ['sync_step1', 'sync_step2', 'sync_update', 'awareness', 'query_awareness', 'auth', 'tandem', 'keepalive', 'unknown'] as const
/** One of FRAME_KINDS. */
export type FrameKind = typeof FRAME_KINDS[number]

const UNKNOWN = 8
const KEEPALIVE = 7

/**
 * The index in FRAME_KINDS of a y-websocket frame, from its first bytes (no decoding, no
 * allocation: this runs for every message). The keepalive frame is an empty awareness update
 * (type 1, then length 1, count 0).
 */
export function frameKind (frame: Uint8Array): number {
  switch (frame[0]) {
    case MESSAGE_SYNC: {
      const sub = frame[1]
      return sub === SYNC_STEP1 ? 0 : sub === SYNC_STEP2 ? 1 : sub === SYNC_UPDATE ? 2 : UNKNOWN
    }
    case MESSAGE_AWARENESS: return frame.length === 3 && frame[1] === 1 && frame[2] === 0 ? KEEPALIVE : 3
    case MESSAGE_QUERY_AWARENESS: return 4
    case MESSAGE_AUTH: return 5
    case MESSAGE_TANDEM: return 6
    default: return UNKNOWN
  }
}
