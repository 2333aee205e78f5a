import { CloseCode } from '../shared/constants.js'
import { ERRORS, TandemError, type ErrorCode } from '../shared/errors.js'
import type { WebSocketClass } from './options.js'
import { chunkSyncFrame } from './chunked-sync.js'

/** What the tracking socket class reports to its client. */
export interface SocketHooks {
  /** A frame goes out on `socket`, as `frames` frames (more than 1: a chunked sync frame). */
  sent (socket: object, bytes: Uint8Array, frames: number): void
  /** Sync frames larger than this go out in parts (chunkSyncFrame). */
  syncChunkBytes: number
  /** True while the client closes on purpose: a close without a code is then a normal leave. */
  departing (): boolean
}

/**
 * Wraps a WebSocket class (the browser's, or `ws` in Node) for the y-websocket provider, so
 * that every frame sent is seen (for `unsyncedChanges`), a large sync frame goes out in parts
 * within syncChunkBytes, and a close on purpose says 1000.
 */
export function trackingSocketClass (Base: WebSocketClass, hooks: SocketHooks): WebSocketClass {
  return class TrackingWebSocket extends Base {
    override send (data: Parameters<WebSocket['send']>[0]): void {
      const bytes = data instanceof Uint8Array ? data : data instanceof ArrayBuffer ? new Uint8Array(data) : null
      const frames = bytes === null ? [] : chunkSyncFrame(bytes, hooks.syncChunkBytes)
      if (bytes !== null) hooks.sent(this, bytes, frames.length)
      if (frames.length <= 1) super.send(data)
      else for (const frame of frames) super.send(frame as Uint8Array<ArrayBuffer>)
    }

    override close (code?: number, reason?: string): void {
      // the provider closes without a code; only a departure on purpose is a normal leave
      if (code === undefined && hooks.departing()) super.close(CloseCode.NORMAL, 'leave')
      else super.close(code, reason)
    }
  } as WebSocketClass
}

/** Resolves when the socket closed, or after `timeoutMs` at the latest. */
export function socketClosed (socket: WebSocket, timeoutMs: number): Promise<void> {
  return new Promise(resolve => {
    const timer = setTimeout(resolve, timeoutMs)
    socket.addEventListener('close', () => {
      clearTimeout(timer)
      resolve()
    })
  })
}

/**
 * The error of a final close (4400-4499, the provider stops): the code the server gave as the
 * close reason, else unauthenticated (4401) or forbidden.
 */
export function closeError (event: { code: number, reason: string }): TandemError {
  const code = Object.hasOwn(ERRORS, event.reason) ? event.reason as ErrorCode
    : event.code === CloseCode.UNAUTHENTICATED ? 'TANDEM_ERR_UNAUTHENTICATED' : 'TANDEM_ERR_FORBIDDEN'
  return new TandemError(code, `the server closed the connection with ${event.code}`)
}
