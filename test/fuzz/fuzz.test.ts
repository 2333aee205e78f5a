/**
 * Fuzzing the frame decoder and the server's message handling with fast-check. `npm test` runs a
 * bounded, seeded pass; `npm run fuzz` a long one (FUZZ_RUNS frames, FUZZ_SEED to replay a
 * failure: the seed is printed whenever a property fails).
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import * as fc from 'fast-check'
import * as Y from 'yjs'
import { once } from 'node:events'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'
import { pino } from 'pino'
import { createServer, type TandemServer } from '../../server/index.js'
import {
  readFrame, writeSyncStep1, writeSyncStep2, writeSyncUpdate, writeAwareness, writeAuthDenied,
  writeQueryAwareness, writeTandem
} from '../../shared/messages.js'
import { writeAwarenessUpdate, readAwarenessUpdate } from '../../shared/awareness.js'
import { isTandemError } from '../../shared/errors.js'
import { CloseCode } from '../../shared/constants.js'
import { waitFor } from '../support/helpers.js'

const LONG = process.env.FUZZ_RUNS !== undefined
const SEED = Number(process.env.FUZZ_SEED ?? (LONG ? Date.now() % 2 ** 31 : 20261121))
const SERVER_RUNS = Number(process.env.FUZZ_RUNS ?? 500)
const DECODER_RUNS = LONG ? SERVER_RUNS * 20 : 3_000
const TIMEOUT_MS = 60_000 + SERVER_RUNS * 100

/** Runs a property; on failure prints the seed and how to replay it, then fails. Returns the runs made. */
async function check (name: string, property: fc.IProperty<[Uint8Array]> | fc.IAsyncProperty<[Uint8Array]>, numRuns: number): Promise<number> {
  const result = await fc.check(property, { seed: SEED, numRuns })
  if (result.failed) {
    console.error(`fuzz "${name}" failed: replay with FUZZ_SEED=${SEED} FUZZ_RUNS=${numRuns}`)
    const cause = result.errorInstance instanceof Error ? result.errorInstance.message : String(result.errorInstance)
    throw new Error(`${fc.defaultReportMessage(result) ?? `fuzz "${name}" failed with seed ${SEED}`}\n${cause}`)
  }
  return result.numRuns
}

// ---- generators -----------------------------------------------------------------------------

/** Real Yjs updates of every shared type, made once so the runs are cheap. */
function sampleUpdates (): Uint8Array[] {
  const doc = new Y.Doc()
  doc.clientID = 424242
  const updates: Uint8Array[] = []
  doc.on('update', (u: Uint8Array) => updates.push(u))
  const text = doc.getText('t')
  text.insert(0, 'hello fuzz')
  text.format(0, 5, { bold: true })
  text.delete(2, 3)
  doc.getMap('m').set('k', { nested: [1, 'two', null] })
  doc.getMap('m').set('bin', new Uint8Array([1, 2, 3]))
  doc.getArray('a').insert(0, [1, 2, 3, 'x'])
  doc.getArray('a').delete(1, 1)
  const sub = new Y.Map()
  doc.getArray('a').push([sub])
  sub.set('deep', 'yes')
  const xml = doc.getXmlFragment('x')
  const el = new Y.XmlElement('p')
  xml.insert(0, [el])
  el.insert(0, [new Y.XmlText('para')])
  el.setAttribute('class', 'c')
  updates.push(Y.encodeStateAsUpdate(doc))
  updates.push(Y.encodeStateAsUpdateV2(doc)) // the wrong encoding: must be refused or harmless
  return updates
}

const UPDATES = sampleUpdates()

const jsonState = fc.oneof(
  fc.constant('null'),
  fc.jsonValue({ maxDepth: 3 }).map(v => JSON.stringify(v) ?? 'null'),
  fc.record({ user: fc.record({ name: fc.string(), color: fc.string() }) }).map(v => JSON.stringify(v))
)

/** A fresh edit by a new client: it always integrates, so it changes the document. */
const freshUpdate = fc.record({ client: fc.integer({ min: 1, max: 2 ** 31 - 1 }), text: fc.string({ minLength: 1, maxLength: 16 }), key: fc.string({ maxLength: 8 }) })
  .map(({ client, text, key }) => {
    const doc = new Y.Doc()
    doc.clientID = client
    doc.getText('t').insert(0, text)
    doc.getMap('m').set(key, text)
    return Y.encodeStateAsUpdate(doc)
  })

/** Frames a real client could send (and a few it should not). */
const validFrame: fc.Arbitrary<Uint8Array> = fc.oneof(
  { arbitrary: freshUpdate.map(writeSyncUpdate), weight: 4 },
  fc.constantFrom(...UPDATES).map(writeSyncUpdate),
  fc.constantFrom(...UPDATES).map(writeSyncStep2),
  fc.constant(writeSyncStep1(Y.encodeStateVector(new Y.Doc()))),
  fc.array(fc.tuple(fc.nat(), fc.nat()), { maxLength: 4 }).map(pairs => {
    const encoder: number[] = []
    // a state vector by hand: count, then (client, clock) pairs, as varUints
    const varUint = (n: number): void => { while (n > 0x7f) { encoder.push(0x80 | (n & 0x7f)); n = Math.floor(n / 128) } encoder.push(n) }
    varUint(pairs.length)
    for (const [client, clock] of pairs) { varUint(client); varUint(clock) }
    return writeSyncStep1(Uint8Array.from(encoder))
  }),
  fc.array(fc.record({ clientId: fc.nat(), clock: fc.nat(), state: jsonState }), { maxLength: 3 })
    .map(entries => writeAwareness(writeAwarenessUpdate(entries))),
  fc.constant(writeQueryAwareness()),
  fc.nat().map(count => writeTandem({ type: 'ack', count })),
  fc.string().map(writeAuthDenied)
)

type Mutation = (bytes: Uint8Array) => Uint8Array
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })).map(([i, v]): Mutation => b => {
    const c = Uint8Array.from(b)
    if (c.length > 0) c[i % c.length] = v
    return c
  }),
  fc.nat().map((n): Mutation => b => b.slice(0, n % (b.length + 1))),
  fc.tuple(fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 8 })).map(([i, ins]): Mutation => b => {
    const at = i % (b.length + 1)
    return Uint8Array.from([...b.slice(0, at), ...ins, ...b.slice(at)])
  }),
  fc.tuple(fc.nat(), fc.nat({ max: 8 })).map(([i, n]): Mutation => b => {
    const at = i % (b.length + 1)
    return Uint8Array.from([...b.slice(0, at), ...b.slice(at + n)])
  }),
  // a length or count prefix blown up: the varUint right after the message type
  fc.constantFrom(0x7f, 0xff).map((v): Mutation => b => Uint8Array.from([...b.slice(0, 2), v, 0xff, 0xff, 0xff, 0x0f, ...b.slice(3)]))
)

/** Random bytes, valid frames, and valid frames with one to three mutations. */
const anyFrame: fc.Arbitrary<Uint8Array> = fc.oneof(
  { arbitrary: fc.uint8Array({ maxLength: 48 }), weight: 2 },
  { arbitrary: validFrame, weight: 3 },
  { arbitrary: fc.tuple(validFrame, fc.array(mutation, { minLength: 1, maxLength: 3 }))
    .map(([frame, ms]) => ms.reduce((b, m) => m(b), frame)), weight: 5 }
)

/** What the server must do with a frame: whether it closes the socket and may change the document. */
function expectation (bytes: Uint8Array): { close: 'never' | 'always' | 'maybe', mayChange: boolean } {
  let frame
  try {
    frame = readFrame(bytes)
  } catch {
    return { close: 'always', mayChange: false }
  }
  switch (frame.type) {
    case 'auth-denied':
    case 'tandem':
      return { close: 'always', mayChange: false }
    case 'query-awareness':
      return { close: 'never', mayChange: false }
    case 'sync-step1':
      try { Y.decodeStateVector(frame.stateVector) } catch { return { close: 'always', mayChange: false } }
      return { close: 'never', mayChange: false }
    case 'awareness':
      try { readAwarenessUpdate(frame.update) } catch { return { close: 'always', mayChange: false } }
      return { close: 'never', mayChange: false }
    case 'sync-step2':
    case 'sync-update':
      try { Y.decodeUpdate(frame.update) } catch { return { close: 'always', mayChange: false } }
      // a decodable update can still fail to apply; it may change the document either way
      return { close: 'maybe', mayChange: true }
  }
}

// ---- the decoder ----------------------------------------------------------------------------

describe('fuzz: readFrame', () => {
  test('any bytes decode to a frame or throw TANDEM_ERR_MALFORMED_MESSAGE; valid frames round-trip', async () => {
    const tried = await check('readFrame', fc.property(anyFrame, bytes => {
      try {
        readFrame(bytes)
      } catch (err) {
        if (!isTandemError(err, 'TANDEM_ERR_MALFORMED_MESSAGE')) throw err
      }
    }), DECODER_RUNS)
    await check('readFrame round trip', fc.property(validFrame, bytes => {
      const frame = readFrame(bytes)
      expect(frame.type).toBeTypeOf('string')
    }), Math.min(DECODER_RUNS, 1_000))
    console.log(`fuzz readFrame: ${tried} inputs, seed ${SEED}`)
  }, TIMEOUT_MS)
})

// ---- the server -----------------------------------------------------------------------------

/** A raw client that reconnects when the server closes it, and reports the fate of each frame. */
class FuzzClient {
  private ws: WebSocket | undefined
  closes = 0

  constructor (private readonly url: string) {}

  private async connect (): Promise<WebSocket> {
    if (this.ws !== undefined && this.ws.readyState === WebSocket.OPEN) return this.ws
    const ws = new WebSocket(this.url)
    ws.on('error', () => {})
    await once(ws, 'open')
    this.ws = ws
    return ws
  }

  /** Sends the frame, then a ping: a pong means it was handled and the socket lives. */
  async send (bytes: Uint8Array): Promise<{ closed: false } | { closed: true, code: number }> {
    const ws = await this.connect()
    return await new Promise(resolve => {
      const onPong = (): void => { ws.off('close', onClose); resolve({ closed: false }) }
      const onClose = (code: number): void => { ws.off('pong', onPong); this.closes++; resolve({ closed: true, code }) }
      ws.once('pong', onPong)
      ws.once('close', onClose)
      ws.send(bytes)
      ws.ping()
    })
  }

  close (): void {
    this.ws?.terminate()
  }
}

describe('fuzz: the server\'s message handling', () => {
  let server: TandemServer
  let observer: { doc: Y.Doc, provider: WebsocketProvider }
  const name = `fuzz-${SEED}-${Date.now()}`

  beforeAll(async () => {
    server = createServer({
      port: 0,
      persistence: 'memory',
      logger: pino({ level: process.env.TANDEM_TEST_LOG ?? 'silent' }),
      maxMessagesPerSecond: 0,
      authenticate: ({ query }) => ({ userId: query.get('user') ?? 'u', access: query.get('access') === 'read' ? 'read' : 'write' })
    })
    await server.listen()
    const doc = new Y.Doc()
    const provider = new WebsocketProvider(server.url, name, doc, {
      WebSocketPolyfill: WebSocket as unknown as typeof globalThis.WebSocket, disableBc: true, params: { user: 'observer' }
    })
    observer = { doc, provider }
    await waitFor(() => provider.synced)
    provider.awareness.setLocalStateField('user', { name: 'observer' })
    doc.getText('t').insert(0, 'observer was here')
    await waitFor(() => server.documents.get(name)?.ydoc.getText('t').toString() === 'observer was here')
  })

  afterAll(async () => {
    observer.provider.destroy()
    observer.doc.destroy()
    await server.close()
  })

  /** The server's document, as every other client will see it. */
  function serverState (): Uint8Array {
    return Y.encodeStateAsUpdate(server.documents.get(name)!.ydoc)
  }

  async function observerConverged (): Promise<void> {
    const serverDoc = server.documents.get(name)!.ydoc
    await waitFor(() => Y.equalSnapshots(Y.snapshot(serverDoc), Y.snapshot(observer.doc)), 5_000, 'observer sees the server\'s document')
  }

  async function fuzz (access: 'write' | 'read'): Promise<{ tried: number, closes: number, changed: number }> {
    let changed = 0
    const client = new FuzzClient(`${server.url}/${name}?user=fuzzer&access=${access}`)
    const tried = await check(`server (${access})`, fc.asyncProperty(anyFrame, async bytes => {
      const expected = expectation(bytes)
      const before = serverState()
      const outcome = await client.send(bytes)
      if (outcome.closed) {
        expect(expected.close, `closed with ${outcome.code}`).not.toBe('never')
        expect(outcome.code).toBe(CloseCode.MALFORMED)
      } else {
        expect(expected.close, 'stayed open').not.toBe('always')
      }
      const same = Buffer.from(serverState()).equals(Buffer.from(before))
      if (!same) changed++
      if (!expected.mayChange || access === 'read') expect(same, 'document unchanged').toBe(true)
      if (expected.mayChange) await observerConverged()
    }), SERVER_RUNS)
    client.close()
    return { tried, closes: client.closes, changed }
  }

  test('a writing client\'s random and mutated frames never crash it, get 4400 when malformed, and keep every client in step', async () => {
    const { tried, closes, changed } = await fuzz('write')
    await observerConverged()
    expect(observer.doc.getText('t').toString()).toContain('observer was here')
    expect(observer.provider.wsconnected).toBe(true)
    console.log(`fuzz server (write): ${tried} frames, ${closes} closed with 4400, ${changed} changed the document, seed ${SEED}`)
  }, TIMEOUT_MS)

  test('a read-only client\'s frames never change the document at all', async () => {
    const before = serverState()
    const { tried, closes } = await fuzz('read')
    expect(Buffer.from(serverState()).equals(Buffer.from(before))).toBe(true)
    console.log(`fuzz server (read): ${tried} frames, ${closes} closed with 4400, seed ${SEED}`)
  }, TIMEOUT_MS)

  test('afterwards a fresh stock client still syncs the document', async () => {
    const doc = new Y.Doc()
    const provider = new WebsocketProvider(server.url, name, doc, {
      WebSocketPolyfill: WebSocket as unknown as typeof globalThis.WebSocket, disableBc: true
    })
    try {
      await waitFor(() => provider.synced)
      const serverDoc = server.documents.get(name)!.ydoc
      expect(Y.equalSnapshots(Y.snapshot(doc), Y.snapshot(serverDoc))).toBe(true)
    } finally {
      provider.destroy()
      doc.destroy()
    }
  })
})
