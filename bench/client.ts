import WebSocket from 'ws'
import { Codec, type Dialect } from './wire.js'
import { scanMarkers } from './updates.js'
import { readFrame } from '../shared/messages.js'
import { MESSAGE_TANDEM } from '../shared/constants.js'

/** What a load-generator client reports to its workload. */
export interface ClientHooks {
  /** A marker of client `sender`, sequence `seq`, arrived at `receiver` at `now` (performance.now). */
  delivered?: (sender: number, seq: number, receiver: number, now: number) => void
  /** A sync step 2 of `bytes` bytes arrived. */
  step2?: (client: LoadClient, bytes: number, now: number) => void
  /** Any frame arrived. */
  frame?: (now: number, data: Buffer) => void
  /**
   * Tandem acknowledged `count` more update frames as durably stored. Setting it makes the client
   * a Tandem client (`?tandem=1`), which is sent acknowledgements.
   */
  acked?: (count: number) => void
  /** The socket opened and the hello was sent: a client's own first frames (its awareness). */
  open?: (client: LoadClient) => void
}

/**
 * One raw `ws` connection speaking a server's dialect: it sends the hello a fresh client sends,
 * answers the server's sync step 1 with an empty step 2, and scans every frame for markers.
 * It holds no Y.Doc: decoding every update would make the load generator the bottleneck.
 */
export class LoadClient {
  readonly codec: Codec
  socket: WebSocket | undefined
  ready = false
  closed = false
  /** Next marker sequence this client sends. */
  seq = 0

  constructor (
    /** Index of this client in the workload: the client part of its markers. */
    readonly index: number,
    /** Yjs client id of its updates; unique within its document. */
    readonly clientId: number,
    readonly url: string,
    dialect: Dialect,
    readonly document: string,
    private readonly hooks: ClientHooks
  ) {
    this.codec = new Codec(dialect, document)
  }

  /** Opens the socket; resolves once the server has answered the handshake (sync step 2). */
  connect (timeoutMs = 30_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const url = `${this.url}/${encodeURIComponent(this.document)}${this.hooks.acked !== undefined ? '?tandem=1' : ''}`
      const socket = new WebSocket(url, { perMessageDeflate: false, maxPayload: 256 * 1024 * 1024 })
      this.socket = socket
      socket.binaryType = 'nodebuffer'
      const timer = setTimeout(() => reject(new Error(`${url}: no handshake within ${timeoutMs} ms`)), timeoutMs)
      const done = (): void => {
        if (this.ready) return
        this.ready = true
        clearTimeout(timer)
        resolve()
      }
      socket.on('open', () => {
        for (const frame of this.codec.hello()) socket.send(frame)
        this.hooks.open?.(this)
        if (this.codec.dialect === 'raw') done()
      })
      socket.on('message', (data: Buffer) => {
        const now = performance.now()
        this.hooks.frame?.(now, data)
        // markers are scanned in relayed updates, however merged; not in whole documents (sync)
        if (data.length < 65_536) {
          const delivered = this.hooks.delivered
          if (delivered !== undefined) scanMarkers(data, (sender, seq) => { if (sender !== this.index) delivered(sender, seq, this.index, now) })
        }
        if (this.codec.dialect === 'raw') return
        if (data[0] === MESSAGE_TANDEM) {
          const frame = readFrame(data)
          if (frame.type === 'tandem' && frame.message.type === 'ack') this.hooks.acked?.(frame.message.count)
          return
        }
        const kind = this.codec.classify(data)
        if (kind === 'step1') socket.send(this.codec.step2Empty())
        else if (kind === 'step2') {
          this.hooks.step2?.(this, data.length, now)
          done()
        }
      })
      socket.on('error', err => {
        clearTimeout(timer)
        if (!this.ready) reject(err)
      })
      socket.on('close', () => {
        this.closed = true
        clearTimeout(timer)
        if (!this.ready) reject(new Error(`${url}: closed before the handshake`))
      })
    })
  }

  send (frame: Uint8Array): void {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(frame)
  }

  /** Closes with 1000; resolves when closed (or after 2 s, then terminates). */
  close (): Promise<void> {
    const socket = this.socket
    if (socket === undefined || this.closed || socket.readyState === WebSocket.CLOSED) return Promise.resolve()
    return new Promise(resolve => {
      const timer = setTimeout(() => { socket.terminate(); resolve() }, 2_000)
      socket.once('close', () => { clearTimeout(timer); resolve() })
      socket.close(1000)
    })
  }
}

/** Runs `tasks` with at most `limit` at a time. */
export async function inBatches<T> (items: readonly T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as T
      await task(item)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
}
