import { OPEN, type WebSocketLike } from './socket.js'

/**
 * The bound on what a peer that stopped reading can make the server queue: when more than
 * `maxBufferedBytes` are already queued for it, the next frame terminates the connection instead
 * of being queued. A single frame is always queued on a buffer under the limit, so a large first
 * sync of a big document still goes through. (A function of the socket's sends, SyncSocket's,
 * not a wrapper object: every idle connection would keep one.)
 *
 * True when `socket` takes one more frame; false when it is not open, or was terminated here,
 * after which `stalled` is called with the bytes that were queued and `owner` (once: a
 * terminated socket is no longer open).
 */
export function admitsFrame<O> (socket: WebSocketLike, maxBufferedBytes: number, stalled: (bufferedBytes: number, owner: O) => void, owner: O): boolean {
  if (socket.readyState !== OPEN) return false
  const buffered = socket.bufferedAmount
  if (buffered <= maxBufferedBytes) return true
  socket.terminate()
  stalled(buffered, owner)
  return false
}
