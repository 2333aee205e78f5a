import { describe, expect, onTestFinished, test } from 'vitest'
import * as Y from 'yjs'
import WebSocket from 'ws'
import { WebsocketProvider } from 'y-websocket'
import { DEFAULT_OPTIONS } from '../../server/index.js'
import { resolveOptions } from '../../server/config/config.js'
import { parseCli } from '../../server/config/cli-options.js'
import { SyncGrants, SYNC_GRANTS } from '../../server/transport/sync-allowance.js'
import { CloseCode } from '../../shared/constants.js'
import { writeSyncStep2, writeSyncUpdate } from '../../shared/messages.js'
import { startServer, stockClient, waitFor, docName, rawClient, opened, closed, tempDir } from '../support/helpers.js'
import { docUrl, collectFrames } from '../support/security-helpers.js'
import { tandemClient } from '../support/tandem-helpers.js'

const MiB = 1024 * 1024

/** A document edited offline: `mib` MiB of text in 256 KiB inserts, plus a map entry. */
function offlineDoc (mib: number): Y.Doc {
  const doc = new Y.Doc()
  const text = doc.getText('t')
  for (let i = 0; i < mib * 4; i++) text.insert(text.length, String.fromCharCode(97 + i % 26).repeat(256 * 1024))
  doc.getMap('m').set('done', true)
  return doc
}

/** A stock provider whose WebSocket constructions and close events are counted. */
function countedStockClient (url: string, name: string, doc: Y.Doc): { provider: WebsocketProvider, sockets: () => number, closes: number[] } {
  let sockets = 0
  const closes: number[] = []
  class CountingWebSocket extends WebSocket {
    constructor (...args: ConstructorParameters<typeof WebSocket>) {
      super(...args)
      sockets++
      this.on('close', code => closes.push(code))
    }
  }
  const provider = new WebsocketProvider(url, name, doc, {
    WebSocketPolyfill: CountingWebSocket as unknown as typeof globalThis.WebSocket,
    disableBc: true,
    maxBackoffTime: 200
  })
  onTestFinished(() => provider.destroy())
  return { provider, sockets: () => sockets, closes }
}

/** Writes the first bytes of a masked client frame announcing `length` payload bytes, and no more. */
function announceFrame (ws: WebSocket, length: number): void {
  const header = Buffer.alloc(14)
  header[0] = 0x82 // FIN, binary
  header[1] = 0x80 | 127 // masked, 64-bit length
  header.writeBigUInt64BE(BigInt(length), 2)
  header.writeUInt32BE(0x01020304, 10) // mask key
  ;(ws as unknown as { _socket: { write: (data: Buffer) => void } })._socket.write(Buffer.concat([header, Buffer.alloc(16)]))
}

describe('first-sync grants', () => {
  test('one per address, SYNC_GRANTS in all; a release frees one, twice is harmless', () => {
    const grants = new SyncGrants()
    const first = grants.acquire('a')
    expect(first).not.toBeNull()
    expect(grants.acquire('a')).toBeNull()
    const others = Array.from({ length: SYNC_GRANTS - 1 }, (_, i) => grants.acquire(`b${i}`))
    expect(others.every(release => release !== null)).toBe(true)
    expect(grants.acquire('c')).toBeNull()
    first?.()
    first?.()
    expect(grants.size).toBe(SYNC_GRANTS - 1)
    expect(grants.acquire('c')).not.toBeNull()
    expect(grants.acquire('a')).toBeNull()
  })

  test('--max-sync-size / TANDEM_MAX_SYNC_SIZE, default 256 MiB, validated', () => {
    expect(DEFAULT_OPTIONS.maxSyncSize).toBe(256 * MiB)
    expect(parseCli(['--max-sync-size', '1048576'], {}).maxSyncSize).toBe(MiB)
    expect(parseCli([], { TANDEM_MAX_SYNC_SIZE: '2097152' }).maxSyncSize).toBe(2 * MiB)
    expect(() => resolveOptions({ maxSyncSize: 10 })).toThrow(/maxSyncSize/)
    expect(resolveOptions({}).maxSyncSize).toBe(256 * MiB)
  })
})

describe('first sync larger than --max-message-size', () => {
  test('a stock client holding 20 MiB of offline edits syncs them in its step 2, and the server stores them', async () => {
    const dataDir = tempDir()
    const options = { persistence: 'sqlite', dataDir, maxMessageSize: MiB }
    const server = await startServer(options)
    const name = docName()
    const doc = offlineDoc(20)
    const expected = doc.getText('t').length
    const client = countedStockClient(server.url, name, doc)
    await waitFor(() => server.documents.get(name)?.ydoc.getMap('m').get('done') === true, 30_000, 'the offline edits on the server')
    expect(server.documents.get(name)?.ydoc.getText('t').length).toBe(expected)
    expect(client.sockets()).toBe(1)
    // after the first sync, the normal limit applies again: a 2 MiB update closes with 1009
    doc.getText('t').insert(0, 'z'.repeat(2 * MiB))
    await waitFor(() => client.closes.length > 0, 10_000, 'the oversized update refused')
    expect(client.closes[0]).toBe(CloseCode.MESSAGE_TOO_BIG)
    // ...and the reconnect's step 2 carries it (a new connection's first sync)
    await waitFor(() => server.documents.get(name)?.ydoc.getText('t').length === expected + 2 * MiB, 30_000, 'the update resent in the step 2')
    client.provider.destroy()
    await server.close()

    const restarted = await startServer(options)
    const reader = stockClient(restarted.url, name)
    // a big document comes in pieces: the step 2 (synced) comes after the last
    await waitFor(() => reader.provider.synced && reader.doc.getMap('m').get('done') === true, 30_000, 'the stored document')
    expect(reader.text.length).toBe(expected + 2 * MiB)
  }, 120_000)

  test('a step 2 over --max-sync-size closes with 4413 and the stock client does not reconnect', async () => {
    const server = await startServer({ maxMessageSize: MiB, maxSyncSize: 2 * MiB })
    const name = docName()
    const client = countedStockClient(server.url, name, offlineDoc(3))
    const terminal = new Promise<{ code: number }>(resolve => client.provider.once('closed', event => resolve(event)))
    expect((await terminal).code).toBe(CloseCode.SYNC_TOO_BIG)
    expect(client.closes).toEqual([CloseCode.SYNC_TOO_BIG])
    // the provider gave up for good: nothing schedules another connection
    expect(client.provider.shouldConnect).toBe(false)
    expect(client.sockets()).toBe(1)
    expect(server.documents.get(name)?.ydoc.getMap('m').get('done')).toBeUndefined()
  })

  test('a client refused a grant (another connection of its address holds it) gets 1009, retries, and syncs once the grant is free', async () => {
    const server = await startServer({ maxMessageSize: MiB })
    const name = docName()
    // holds its address's grant: it never answers the server's step 1
    const holder = rawClient(docUrl(server.url, docName()))
    const holderFrames = collectFrames(holder)
    await opened(holder)
    await holderFrames.next()
    const client = countedStockClient(server.url, name, offlineDoc(3))
    await waitFor(() => client.closes.length >= 2, 10_000, 'refusals while the grant is held')
    expect(new Set(client.closes)).toEqual(new Set([CloseCode.MESSAGE_TOO_BIG]))
    holder.send(writeSyncStep2(Y.encodeStateAsUpdate(new Y.Doc())))
    await waitFor(() => server.documents.get(name)?.ydoc.getMap('m').get('done') === true, 20_000, 'the sync after the grant was freed')
  })

  test('a frame over --max-message-size that is not the first step 2 closes with 1009', async () => {
    const server = await startServer({ maxMessageSize: MiB })
    const ws = rawClient(docUrl(server.url, docName()))
    await opened(ws)
    ws.send(writeSyncUpdate(new Uint8Array(2 * MiB)))
    expect(await closed(ws)).toEqual({ code: CloseCode.MESSAGE_TOO_BIG, reason: 'TANDEM_ERR_MESSAGE_TOO_BIG' })
  })

  test('after the first step 2, ws itself holds the connection to --max-message-size: an announced larger frame is refused before it is buffered', async () => {
    const server = await startServer({ maxMessageSize: MiB })
    const ws = rawClient(docUrl(server.url, docName()))
    const frames = collectFrames(ws)
    await opened(ws)
    await frames.next()
    ws.send(writeSyncStep2(Y.encodeStateAsUpdate(new Y.Doc())))
    // a step 2 is answered by nothing: a round trip proves it was read
    ws.send(Uint8Array.of(3))
    await frames.next()
    const closing = closed(ws)
    announceFrame(ws, 2 * MiB)
    expect(await closing).toEqual({ code: CloseCode.MESSAGE_TOO_BIG, reason: 'TANDEM_ERR_MESSAGE_TOO_BIG' })
  })

  test('a granted connection may announce a large first frame; one over --max-sync-size is refused at once with 4413', async () => {
    const server = await startServer({ maxMessageSize: MiB, maxSyncSize: 4 * MiB })
    const ws = rawClient(docUrl(server.url, docName()))
    await opened(ws)
    const closing = closed(ws)
    announceFrame(ws, 8 * MiB)
    expect(await closing).toEqual({ code: CloseCode.SYNC_TOO_BIG, reason: 'TANDEM_ERR_SYNC_TOO_BIG' })
  })
})

describe('a slow first sync', () => {
  test('bytes of a large step 2 still arriving keep the connection alive past the heartbeat timeout', async () => {
    const server = await startServer({ maxMessageSize: MiB, heartbeatIntervalMs: 50, heartbeatTimeoutMs: 300 })
    const name = docName()
    // no pongs: they would land inside the hand-written frame; only the bytes keep it alive
    const ws = rawClient(docUrl(server.url, name), { autoPong: false })
    const frames = collectFrames(ws)
    await opened(ws)
    await frames.next()
    const doc = offlineDoc(2)
    const payload = writeSyncStep2(Y.encodeStateAsUpdate(doc))
    const header = Buffer.alloc(14)
    header[0] = 0x82
    header[1] = 0x80 | 127
    header.writeBigUInt64BE(BigInt(payload.byteLength), 2)
    header.writeUInt32BE(0, 10) // mask key 0: the payload goes as it is
    const tcp = (ws as unknown as { _socket: { write: (data: Uint8Array) => void } })._socket
    tcp.write(header)
    // ten slices, paced as a slow link would deliver them: the whole takes several heartbeat
    // timeouts, each gap less than one
    const slice = Math.ceil(payload.byteLength / 10)
    for (let offset = 0; offset < payload.byteLength; offset += slice) {
      tcp.write(payload.subarray(offset, offset + slice))
      await new Promise(resolve => setTimeout(resolve, 100))
    }
    await waitFor(() => server.documents.get(name)?.ydoc.getMap('m').get('done') === true, 10_000, 'the slow step 2 applied')
    expect(ws.readyState).toBe(WebSocket.OPEN)
  })
})

describe('chunked sync of the Tandem client', () => {
  test('a Tandem client sends a big offline document in frames under --max-message-size', async () => {
    // no first-sync allowance at all: only chunks get through
    const server = await startServer({ maxMessageSize: 64 * 1024, maxSyncSize: 64 * 1024 })
    const name = docName()
    const doc = new Y.Doc()
    const text = doc.getText('t')
    for (let i = 0; i < 200; i++) text.insert(Math.floor(text.length / 2), `${i}:${'q'.repeat(10_000)}`)
    text.delete(5, 50_000)
    doc.getMap('m').set('done', true)
    let frames = 0
    class CountingWebSocket extends WebSocket {
      override send (data: Uint8Array, ...rest: unknown[]): void {
        if (data[0] === 0 && data[1] === 1) frames++
        expect(data.byteLength).toBeLessThanOrEqual(32 * 1024)
        ;(super.send as (...args: unknown[]) => void)(data, ...rest)
      }
    }
    tandemClient(server.url, name, { doc, syncChunkBytes: 32 * 1024, WebSocketPolyfill: CountingWebSocket as unknown as typeof globalThis.WebSocket })
    await waitFor(() => server.documents.get(name)?.ydoc.getMap('m').get('done') === true, 10_000, 'the document on the server')
    // compared as booleans: a failure must not print megabytes
    expect(server.documents.get(name)?.ydoc.getText('t').toString() === text.toString()).toBe(true)
    const reader = stockClient(server.url, name)
    await waitFor(() => reader.doc.getMap('m').get('done') === true, 10_000, 'the document at another client')
    expect(reader.text.toString() === text.toString()).toBe(true)
    expect(frames).toBeGreaterThan(30)
  })

  test('a big update made while connected is chunked too', async () => {
    const server = await startServer({ maxMessageSize: 64 * 1024, maxSyncSize: 64 * 1024 })
    const name = docName()
    const client = tandemClient(server.url, name, { syncChunkBytes: 32 * 1024 })
    await client.synced()
    client.doc.getText('t').insert(0, 'w'.repeat(500_000))
    await client.flushed()
    expect(server.documents.get(name)?.ydoc.getText('t').length).toBe(500_000)
    expect(client.status).toBe('connected')
    expect(client.unsyncedChanges).toBe(0)
  })
})
