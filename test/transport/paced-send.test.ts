import { expect, onTestFinished, test } from 'vitest'
import WebSocket, { WebSocketServer } from 'ws'
import { sendPaced, type PacedReceiver } from '../../server/transport/paced-send.js'
import { waitFor } from '../support/helpers.js'

const FRAME = 64 * 1024

/** A real socket pair on loopback: the server's end as a PacedReceiver, the client's raw socket to pause. */
async function pair (): Promise<{ receiver: PacedReceiver, server: WebSocket, client: WebSocket, received: () => number }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await new Promise(resolve => wss.once('listening', resolve))
  onTestFinished(() => { for (const socket of wss.clients) socket.terminate(); wss.close() })
  const address = wss.address() as { port: number }
  const accepted = new Promise<WebSocket>(resolve => wss.once('connection', resolve))
  const client = new WebSocket(`ws://127.0.0.1:${address.port}`)
  let received = 0
  client.on('message', () => { received++ })
  await new Promise(resolve => client.once('open', resolve))
  const server = await accepted
  const receiver: PacedReceiver = {
    send: frame => server.send(frame),
    queuedBytes: () => server.bufferedAmount,
    connected: () => server.readyState === WebSocket.OPEN
  }
  return { receiver, server, client, received: () => received }
}

/** A lazy source of `count` frames that counts how many were taken. */
function source (count: number): { frames: Iterator<Uint8Array>, taken: () => number } {
  let taken = 0
  const frames = (function * () {
    for (; taken < count;) {
      taken++
      yield new Uint8Array(FRAME).fill(taken)
    }
  })()
  return { frames, taken: () => taken }
}

test('a paced send takes a frame only once the socket has drained, so a reader that stops holds back the source', { timeout: 30_000 }, async () => {
  const { receiver, client, received } = await pair()
  // the client reads nothing: the kernel buffers fill, then the server's socket queues
  const raw = (client as unknown as { _socket: import('node:net').Socket })._socket
  raw.pause()
  const { frames, taken } = source(400)
  let stalls = 0
  let resumes = 0
  const sent = sendPaced(receiver, frames, 2 * FRAME, { stall: { afterMs: 200, stalled: () => { stalls++ }, resumed: () => { resumes++ } } })
  await waitFor(() => stalls === 1, 10_000, 'the stall to be told')
  const held = taken()
  // far fewer than the 400 frames (25 MiB) were made: the source waits for the socket
  expect(held).toBeLessThan(400)
  await new Promise(resolve => setTimeout(resolve, 300))
  expect(taken()).toBe(held)
  expect(resumes).toBe(0)
  raw.resume()
  expect(await sent).toBe(true)
  expect(resumes).toBe(1)
  expect(taken()).toBe(400)
  await waitFor(() => received() === 400, 10_000, 'every frame to arrive')
})

test('a paced send stops when the receiver disconnects, or when it is no longer wanted', { timeout: 30_000 }, async () => {
  const first = await pair()
  const raw = (first.client as unknown as { _socket: import('node:net').Socket })._socket
  raw.pause()
  const a = source(400)
  const sending = sendPaced(first.receiver, a.frames, 2 * FRAME)
  await waitFor(() => first.server.bufferedAmount > 2 * FRAME, 10_000, 'the socket to fill')
  first.server.terminate()
  expect(await sending).toBe(false)
  expect(a.taken()).toBeLessThan(400)

  const second = await pair()
  const b = source(400)
  let wanted = true
  const stopping = sendPaced(second.receiver, b.frames, 2 * FRAME, { wanted: () => wanted })
  await waitFor(() => b.taken() >= 3, 10_000, 'a few frames to go')
  wanted = false
  expect(await stopping).toBe(false)
  expect(b.taken()).toBeLessThan(400)
})
