import * as ws from 'ws'
import type { SharedFrame, WebSocketLike } from './socket.js'

interface FrameOptions { fin: boolean, opcode: number, mask: boolean, readOnly: boolean, rsv1: boolean }

/** `ws`'s own framing: `Sender.frame` is public in `ws` (lib/sender.js) but absent from @types/ws. */
const { Sender } = ws as unknown as { Sender: { frame (data: Buffer, options: FrameOptions): Buffer[] } }

/**
 * What a pre-framed send needs of a `ws` WebSocket. Both fields are private to `ws`; engine.io
 * relies on the same two for socket.io's broadcasts (its `wsPreEncodedFrame`). When a later `ws`
 * lacks them, sends fall back to `send`, framed per socket as before.
 */
interface WsInternals {
  _sender?: { sendFrame?: (list: Buffer[], cb?: () => void) => void }
  _extensions?: Record<string, unknown>
}

const BINARY_FINAL: FrameOptions = { fin: true, opcode: 0x2, mask: false, readOnly: true, rsv1: false }

/**
 * Sends a broadcast frame framed once for every socket: `ws` would make a header for each socket
 * and write header and payload together (cork, two writes, uncork, writev); here the first socket
 * makes one buffer of both, and every socket writes that buffer. Server frames are never masked,
 * so the bytes are the same for every socket. Only a socket with no extension can take them as
 * they are: Tandem's server turns per-message deflate off, and anything else goes through `send`.
 * The caller has checked that the socket is open.
 */
export function sendFramedOnce (socket: WebSocketLike, frame: SharedFrame): void {
  const { _sender: sender, _extensions: extensions } = socket as WebSocketLike & WsInternals
  if (typeof sender?.sendFrame !== 'function' || extensions === undefined || hasAny(extensions)) {
    socket.send(frame.data)
    return
  }
  frame.wire ??= wireFrame(frame.data)
  sender.sendFrame([frame.wire])
}

/** `data` as one unmasked, final, binary WebSocket frame: header and payload in one buffer. */
export function wireFrame (data: Uint8Array): Buffer {
  const payload = Buffer.from(data.buffer, data.byteOffset, data.byteLength)
  return Buffer.concat(Sender.frame(payload, BINARY_FINAL))
}

function hasAny (record: Record<string, unknown>): boolean {
  for (const _ in record) return true
  return false
}
