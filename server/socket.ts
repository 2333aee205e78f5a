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
  close (code?: number, reason?: string): void
  /** Sends a ping frame; the peer's pong is reported to the session as activity. */
  ping (): void
  /** Drops the connection without a closing handshake. */
  terminate (): void
}

/** WebSocket readyState of an open socket. */
export const OPEN = 1
