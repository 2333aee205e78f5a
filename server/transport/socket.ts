/**
 * What the core needs of a WebSocket. The `ws` WebSocket satisfies it as it is; the core never
 * sees the transport otherwise, so tests and other bindings can provide their own.
 */
export interface WebSocketLike {
  /** 0 connecting, 1 open, 2 closing, 3 closed (the WebSocket constants). */
  readonly readyState: number
  /** Bytes queued but not yet sent. */
  readonly bufferedAmount: number
  send (data: Uint8Array): void
  /**
   * Optional: sends a frame that the same broadcast sends to other sockets too. A binding may
   * frame it for the wire once for all of them; without this method `send(frame.data)` is used.
   */
  sendShared? (frame: SharedFrame): void
  close (code?: number, reason?: string): void
  /** Sends a ping frame; the peer's pong is reported to the session as activity. */
  ping (): void
  /** Drops the connection without a closing handshake. */
  terminate (): void
  /**
   * Optional: holds what is sent until `uncork`, then writes it at once (one system call for a
   * greeting of several frames). Calls nest; each `cork` needs its `uncork`.
   */
  cork? (): void
  uncork? (): void
}

/** WebSocket readyState of an open socket. */
export const OPEN = 1

/**
 * A frame one broadcast sends to many sockets. The core makes one per broadcast; a binding that
 * frames messages itself keeps the framed bytes here, made by the first socket that sends it and
 * written as they are by the others (see ws-frame.ts).
 */
export class SharedFrame {
  /** The binding's wire form of `data`; unset until a binding makes it. */
  wire: Buffer | undefined = undefined

  constructor (readonly data: Uint8Array) {}
}
