import type { WebSocket } from 'ws'
import type { SyncSocket } from './sync-allowance.js'
import type { TokenBucket } from './limits.js'
import type { Session } from '../session/session.js'
import { CloseCode } from '../../shared/constants.js'

// which session a socket feeds is kept on the socket itself (SyncSocket.feeds), read by listeners
// shared by every socket: a closure per event per connection cost several hundred bytes of every
// idle connection's memory, and a WeakMap entry and a binding object each another 70

/**
 * Feeds a ws socket's events to its session: binary frames (within the message budget), the
 * close and errors; its pongs go to the session through SyncSocket.emit. A listener that throws ends only that session, with 1013; it never
 * reaches the process.
 */
export function bindSocket (socket: SyncSocket, session: Session, bucket: TokenBucket | undefined): void {
  socket.feeds = session
  socket.budget = bucket
  socket.binaryType = 'nodebuffer'
  socket.on('message', onMessage)
  socket.on('close', onClose)
  socket.on('error', onError)
}

// `this` is the socket: a SyncSocket, the WebSocket class of Tandem's ws server
function onMessage (this: WebSocket, data: Buffer, isBinary: boolean): void {
  const socket = this as SyncSocket
  const session = socket.feeds
  if (session === undefined) return
  const bucket = socket.budget
  guarded(session, () => {
    if (bucket !== undefined && !bucket.take()) {
      session.logger.warn({ messagesPerSecond: bucket.ratePerSecond, burst: bucket.capacity }, 'rate limit exceeded')
      session.close(CloseCode.TRY_AGAIN_LATER, 'error', 'TANDEM_ERR_RATE_LIMITED')
    } else if (isBinary && !socket.admits(data)) {
      session.logger.warn({ bytes: data.byteLength }, 'frame larger than --max-message-size; closing with 1009')
      session.close(CloseCode.MESSAGE_TOO_BIG, 'error', 'TANDEM_ERR_MESSAGE_TOO_BIG')
    } else if (isBinary) {
      session.receive(data)
    } else {
      session.close(CloseCode.MALFORMED, 'error', 'TANDEM_ERR_MALFORMED_MESSAGE')
    }
  })
}

function onClose (this: WebSocket, code: number): void {
  const socket = this as SyncSocket
  const session = socket.feeds
  if (session === undefined) return
  socket.feeds = undefined
  socket.budget = undefined
  guarded(session, () => session.socketClosed(code))
}

function onError (this: WebSocket, err: Error): void {
  (this as SyncSocket).feeds?.logger.debug({ err: err.message }, 'socket error')
}

function guarded (session: Session, run: () => void): void {
  try {
    run()
  } catch (err) {
    session.logger.error({ err }, 'unexpected error handling a socket event')
    try {
      session.close(CloseCode.TRY_AGAIN_LATER, 'error', 'internal error')
    } catch (closeErr) {
      session.logger.error({ err: closeErr }, 'could not close the session')
    }
  }
}
