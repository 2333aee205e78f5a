import type { Document } from '../document/document.js'
import { encodeIntegratedState } from '../document/read-only.js'
import { StatePieces } from '../document/state-pieces.js'
import { writeSyncStep2, writeSyncUpdate } from '../../shared/messages.js'
import { sendPaced, type PacedReceiver } from '../transport/paced-send.js'

/**
 * A document whose stored size is at least this is sent to a new client in pieces (below it, in
 * one sync step 2 as always). The stock y-websocket client reconnects when no message arrives
 * for 30 s, and applies a message whole before it reads the next: one 100 MB step 2 can take
 * longer than that to arrive and apply, and the client then reconnects forever (y/hub #55).
 */
export const PIECEWISE_SYNC_BYTES = 4 * 1024 * 1024
/**
 * About how large each piece is: making one holds the event loop for a few milliseconds (a whole
 * 10 MB document takes about 300 ms to encode).
 */
export const SYNC_PIECE_BYTES = 256 * 1024

/**
 * Answers a client's sync step 1: the state it lacks. A small document goes in one sync step 2;
 * a large one (PIECEWISE_SYNC_BYTES) as sync updates of about SYNC_PIECE_BYTES each, in causal
 * order (state-pieces.ts), then a sync step 2 with the delete set, so the stock client marks
 * itself synced once it holds everything. One piece is made at a time, once the socket has sent
 * the previous one, with a turn of the event loop between pieces (paced-send.ts): other documents
 * keep flowing, and the server never holds more than a piece or two of the reply. Edits made
 * meanwhile reach the client as the relays every member receives.
 */
export async function sendState (doc: Document, receiver: PacedReceiver, stateVector: Uint8Array): Promise<void> {
  const whole = wholeState(doc, stateVector)
  if (whole !== null) {
    receiver.send(whole)
    return
  }
  const started = Date.now()
  const pieces = new StatePieces(doc.ydoc, stateVector, SYNC_PIECE_BYTES)
  let count = 0
  const frames = (function * () {
    for (let piece = pieces.next(); piece !== null; piece = pieces.next()) {
      count++
      yield writeSyncUpdate(piece)
    }
  })()
  if (!await sendPaced(receiver, frames, SYNC_PIECE_BYTES, { wanted: () => doc.status !== 'unloaded' })) return
  receiver.send(writeSyncStep2(pieces.last()))
  doc.logger.info({ pieces: count + 1, bytes: pieces.sentBytes, structs: pieces.sentStructs, ms: Date.now() - started }, 'large first sync sent in pieces')
}

/**
 * The sync step 2 answering `stateVector` when `doc` is small enough to go whole (sendState's
 * common case, which a caller can take without a target or a promise), else null.
 */
export function wholeState (doc: Document, stateVector: Uint8Array): Uint8Array | null {
  return doc.storedBytes < PIECEWISE_SYNC_BYTES ? writeSyncStep2(encodeIntegratedState(doc.ydoc, stateVector)) : null
}
