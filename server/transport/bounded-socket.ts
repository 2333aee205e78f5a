import type { SharedFrame, WebSocketLike } from './socket.js'
import { sendFramedOnce } from './ws-frame.js'

/**
 * A WebSocketLike that refuses to grow without bound: when more than `maxBufferedBytes` are
 * already queued for a peer that stopped reading, the next send terminates the connection
 * instead of queueing more. A single frame is always queued on a buffer under the limit, so a
 * large first sync of a big document still goes through.
 */
export class BoundedSocket<O = unknown> implements WebSocketLike {
  private overflowed = false
  /**
   * Whom `onOverflow` is about (the session on this socket), passed to it: one shared function
   * serves every connection, where a closure each would stay with every idle connection.
   */
  owner: O | undefined = undefined

  constructor (
    private readonly socket: WebSocketLike,
    private readonly maxBufferedBytes: number,
    /** Called once, after the socket was terminated, with the bytes that were queued and the owner. */
    private readonly onOverflow: (bufferedBytes: number, owner: O | undefined) => void
  ) {}

  get readyState (): number {
    return this.socket.readyState
  }

  get bufferedAmount (): number {
    return this.socket.bufferedAmount
  }

  send (data: Uint8Array): void {
    if (this.admits()) this.socket.send(data)
  }

  sendShared (frame: SharedFrame): void {
    if (this.admits()) sendFramedOnce(this.socket, frame)
  }

  /** False, and the socket terminated, once more than the limit is queued. */
  private admits (): boolean {
    if (this.overflowed) return false
    const buffered = this.socket.bufferedAmount
    if (buffered <= this.maxBufferedBytes) return true
    this.overflowed = true
    this.socket.terminate()
    this.onOverflow(buffered, this.owner)
    return false
  }

  close (code?: number, reason?: string): void {
    this.socket.close(code, reason)
  }

  ping (): void {
    this.socket.ping()
  }

  terminate (): void {
    this.socket.terminate()
  }

  cork (): void {
    this.socket.cork?.()
  }

  uncork (): void {
    this.socket.uncork?.()
  }
}
