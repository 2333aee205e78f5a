import type { SyncSocket } from './sync-allowance.js'
import type { Session } from '../session/session.js'
import { CloseCode } from '../../shared/constants.js'

// which session a socket feeds is kept on the socket itself (SyncSocket.feeds), and its events
// reach it through SyncSocket.emit, not listeners: a closure per event per connection cost several
// hundred bytes of every idle connection's memory, a WeakMap entry and a binding object each
// another 70, and the table of listeners itself about 160 (none is made: SyncSocket._events)

/**
 * Feeds a ws socket's events to its session: binary frames (within the message budget), the
 * close, errors and pongs (see feedEvent). A handler that throws ends only that session, with
 * 1013; it never reaches the process.
 */
export function bindSocket (socket: SyncSocket, session: Session): void {
  socket.feeds = session
  socket.binaryType = 'nodebuffer'
}

/** Every event of a SyncSocket (its emit), for the session it feeds; listeners hear them as ever. */
export function feedEvent (socket: SyncSocket, event: string | symbol, args: unknown[]): void {
  switch (event) {
    case 'message': return onMessage(socket, args[0] as Buffer, args[1] as boolean)
    case 'close': return onClose(socket, args[0] as number)
    case 'error': return onError(socket, args[0] as Error)
    // a sign of life for the heartbeat (a grant's progress too: SyncSocket.startSync)
    case 'pong': return socket.feeds?.touch()
  }
}

function onMessage (socket: SyncSocket, data: Buffer, isBinary: boolean): void {
  const session = socket.feeds
  if (session === undefined) return
  const budget = socket.limits?.budget
  guarded(session, () => {
    if (budget !== undefined && !budget.take(socket)) {
      session.logger.warn({ messagesPerSecond: budget.ratePerSecond, burst: budget.capacity }, 'rate limit exceeded')
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

function onClose (socket: SyncSocket, code: number): void {
  const session = socket.feeds
  if (session === undefined) return
  socket.feeds = undefined
  guarded(session, () => session.socketClosed(code))
}

function onError (socket: SyncSocket, err: Error): void {
  socket.feeds?.logger.debug({ err: err.message }, 'socket error')
}

/** The socket's peer stopped reading, and its socket was terminated (SyncSocket's bound). */
export function stoppedReading (bufferedBytes: number, socket: SyncSocket): void {
  const session = socket.feeds
  session?.logger.warn({ bufferedBytes }, 'client stopped reading; terminated')
  session?.end('error', CloseCode.TRY_AGAIN_LATER)
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
