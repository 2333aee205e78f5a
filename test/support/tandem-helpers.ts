import { onTestFinished } from 'vitest'
import WebSocket from 'ws'
import * as Y from 'yjs'
import { readFrame, writeSyncStep1 } from '../../shared/messages.js'
import { MESSAGE_TANDEM } from '../../shared/constants.js'
import { TandemClient, type TandemClientOptions } from '../../client/index.js'
import type { PresenceEvent } from '../../client/index.js'
import type { LockEvent } from '../../client/index.js'

/** A TandemClient over `ws`, destroyed after the test. */
export function tandemClient (url: string, document: string, options: Partial<TandemClientOptions> = {}): TandemClient {
  const client = new TandemClient({
    url,
    document,
    WebSocketPolyfill: WebSocket as unknown as typeof globalThis.WebSocket,
    ...options
  })
  onTestFinished(() => client.destroy())
  return client
}

/** Every presence and lock event a client saw, in order. */
export interface Recorder {
  presence: PresenceEvent[]
  locks: LockEvent[]
  errors: Error[]
}

/** Records a client's events. */
export function record (client: TandemClient): Recorder {
  const recorder: Recorder = { presence: [], locks: [], errors: [] }
  client.on('presence', event => recorder.presence.push(event))
  client.on('locks', event => recorder.locks.push(event))
  client.on('error', err => recorder.errors.push(err))
  return recorder
}

/** Terminates a client's socket without a closing handshake, as a network drop would. */
export function dropSocket (client: TandemClient): void {
  const ws = client.provider.ws as unknown as WebSocket | null
  if (ws === null) throw new Error('not connected')
  ws.terminate()
}

/** The `left` presence events a recorder saw. */
export function leftEvents (recorder: Recorder): Array<Extract<PresenceEvent, { type: 'left' }>> {
  return recorder.presence.filter((e): e is Extract<PresenceEvent, { type: 'left' }> => e.type === 'left')
}

/** A raw Tandem connection (`?tandem=1`) that counts its acknowledgements. */
export async function tandemSocket (url: string, name: string): Promise<{ ws: WebSocket, acks: () => number }> {
  const ws = new WebSocket(`${url}/${encodeURIComponent(name)}?tandem=1`)
  let acks = 0
  ws.binaryType = 'nodebuffer'
  ws.on('message', (data: Buffer) => {
    if (data[0] !== MESSAGE_TANDEM) return
    const frame = readFrame(data)
    if (frame.type === 'tandem' && frame.message.type === 'ack') acks += frame.message.count
  })
  await new Promise<void>((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
  ws.send(writeSyncStep1(Y.encodeStateVector(new Y.Doc())))
  onTestFinished(() => ws.terminate())
  return { ws, acks: () => acks }
}
