import type { WebSocket } from 'ws'
import type { SyncSocket } from './sync-allowance.js'
import type { TokenBucket } from './limits.js'
import type { Session } from '../session/session.js'
import { CloseCode } from '../../shared/constants.js'

interface Binding {
  session: Session
  /** The connection's message budget; undefined when unlimited. */
  bucket: TokenBucket | undefined
}

// which session a socket feeds: one WeakMap entry per connection, where a closure per event per
// connection cost several hundred bytes of every idle connection's memory
const bindings = new WeakMap<WebSocket, Binding>()

/**
 * Feeds a ws socket's events to its session: binary frames (within the message budget), pongs,
 * the close and errors. A listener that throws ends only that session, with 1013; it never
 * reaches the process.
 */
export function bindSocket (socket: SyncSocket, session: Session, bucket: TokenBucket | undefined): void {
  bindings.set(socket, { session, bucket })
  socket.binaryType = 'nodebuffer'
  socket.on('message', onMessage)
  socket.on('pong', onPong)
  socket.on('close', onClose)
  socket.on('error', onError)
}

function onMessage (this: WebSocket, data: Buffer, isBinary: boolean): void {
  const binding = bindings.get(this)
  if (binding === undefined) return
  const { session, bucket } = binding
  guarded(session, () => {
    if (bucket !== undefined && !bucket.take()) {
      session.logger.warn({ messagesPerSecond: bucket.ratePerSecond, burst: bucket.capacity }, 'rate limit exceeded')
      session.close(CloseCode.TRY_AGAIN_LATER, 'error', 'TANDEM_ERR_RATE_LIMITED')
    } else if (isBinary && !(this as SyncSocket).admits(data)) {
      session.logger.warn({ bytes: data.byteLength }, 'frame larger than --max-message-size; closing with 1009')
      session.close(CloseCode.MESSAGE_TOO_BIG, 'error', 'TANDEM_ERR_MESSAGE_TOO_BIG')
    } else if (isBinary) {
      session.receive(data)
    } else {
      session.close(CloseCode.MALFORMED, 'error', 'TANDEM_ERR_MALFORMED_MESSAGE')
    }
  })
}

function onPong (this: WebSocket): void {
  bindings.get(this)?.session.touch()
}

function onClose (this: WebSocket, code: number): void {
  const binding = bindings.get(this)
  if (binding === undefined) return
  bindings.delete(this)
  guarded(binding.session, () => binding.session.socketClosed(code))
}

function onError (this: WebSocket, err: Error): void {
  bindings.get(this)?.session.logger.debug({ err: err.message }, 'socket error')
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
