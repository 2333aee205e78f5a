import { describe, expect, onTestFinished, test } from 'vitest'
import { WebSocketServer, WebSocket } from 'ws'
import type { AddressInfo } from 'node:net'
import { sendFramedOnce, wireFrame } from '../../server/transport/ws-frame.js'
import { SharedFrame, type WebSocketLike } from '../../server/transport/socket.js'
import { waitFor } from '../support/helpers.js'

/** A real server socket and the client socket at its other end, with what the client receives. */
async function connection (perMessageDeflate: boolean): Promise<{ server: WebSocket, client: WebSocket, received: Buffer[] }> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate })
  onTestFinished(() => new Promise<void>(resolve => wss.close(() => resolve())))
  await new Promise(resolve => wss.once('listening', resolve))
  const accepted = new Promise<WebSocket>(resolve => wss.once('connection', resolve))
  const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`, { perMessageDeflate })
  onTestFinished(() => client.terminate())
  const received: Buffer[] = []
  client.on('message', (data: Buffer) => received.push(data))
  const server = await accepted
  onTestFinished(() => server.terminate())
  return { server, client, received }
}

/** Seeded bytes of `length` (lib0-style: the same every run). */
function bytes (length: number, seed: number): Uint8Array {
  const data = new Uint8Array(length)
  let x = seed
  for (let i = 0; i < length; i++) {
    x = (x * 1103515245 + 12345) >>> 0
    data[i] = x >>> 24
  }
  return data
}

// the payload lengths where the header changes: 7-bit, 16-bit and 64-bit lengths
const LENGTHS = [0, 1, 125, 126, 127, 65_535, 65_536, 70_000]

describe('frames made once for a broadcast', () => {
  test('a socket receives exactly the payload, at every header size, interleaved in order with its own sends', async () => {
    const { server, received } = await connection(false)
    const sent: Uint8Array[] = []
    LENGTHS.forEach((length, i) => {
      const shared = bytes(length, i + 1)
      sendFramedOnce(server, new SharedFrame(shared))
      const own = bytes(3, 100 + i)
      server.send(own)
      sent.push(shared, own)
    })
    await waitFor(() => received.length === sent.length, 5_000, 'every frame')
    expect(received.map(data => Buffer.from(data).toString('hex'))).toEqual(sent.map(data => Buffer.from(data).toString('hex')))
  })

  test('the frame is made once and written as it is to every socket', async () => {
    const ends = await Promise.all([connection(false), connection(false), connection(false)])
    const frame = new SharedFrame(bytes(300, 9))
    sendFramedOnce(ends[0]!.server, frame)
    const wire = frame.wire
    expect(wire).toEqual(wireFrame(frame.data))
    for (const end of ends.slice(1)) sendFramedOnce(end.server, frame)
    expect(frame.wire).toBe(wire)
    await waitFor(() => ends.every(end => end.received.length === 1), 5_000, 'one frame each')
    for (const end of ends) expect(end.received[0]).toEqual(Buffer.from(frame.data))
  })

  test('a socket with per-message deflate goes through send, compressed as negotiated', async () => {
    const { server, received } = await connection(true)
    expect(server.extensions).toContain('permessage-deflate')
    const frame = new SharedFrame(bytes(4_000, 3))
    sendFramedOnce(server, frame)
    await waitFor(() => received.length === 1, 5_000, 'the frame')
    expect(received[0]).toEqual(Buffer.from(frame.data))
    expect(frame.wire).toBeUndefined()
  })

  test('a WebSocketLike that is not a ws socket gets send(data)', () => {
    const got: Uint8Array[] = []
    const socket: WebSocketLike = { readyState: 1, bufferedAmount: 0, send: data => got.push(data), close () {}, ping () {}, terminate () {} }
    const frame = new SharedFrame(bytes(10, 4))
    sendFramedOnce(socket, frame)
    expect(got).toEqual([frame.data])
    expect(frame.wire).toBeUndefined()
  })
})
