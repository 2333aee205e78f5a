import { expect, onTestFinished, test } from 'vitest'
import * as Y from 'yjs'
import WebSocket from 'ws'
import { WebsocketProvider } from 'y-websocket'
import { SqliteStore } from '../../server/store/sqlite-store.js'
import { PIECEWISE_SYNC_BYTES, SYNC_PIECE_BYTES } from '../../server/session/state-sync.js'
import { BUILD_PIECE_BYTES } from '../../server/document/slice-build.js'
import type { StoredSync } from '../../server/document/stored-sync.js'
import { bigDocumentFile, BIG_SEED, BIG_TEXT, BIG_XML } from '../../bench/big-doc.js'
import { startServer, docName, tempDir, waitFor, rawClient, opened } from '../support/helpers.js'
import { collectFrames } from '../support/security-helpers.js'
import { writeSyncStep1 } from '../../shared/messages.js'
import { LocalHub } from '../../server/cluster/local-bus.js'
import { MemoryStore } from '../../server/store/memory-store.js'

const MiB = 1024 * 1024

/** What a stock client saw while it opened a document. */
interface Opened {
  doc: Y.Doc
  provider: WebsocketProvider
  /** Socket closes: the provider reconnects after each. */
  closes: number
  /** Every message received: sizes in bytes. */
  messages: number[]
}

/**
 * The stock y-websocket provider, unchanged (its 30 s watchdog included), counting what its
 * sockets receive and how often they close. `edit` runs once the socket is open, before the
 * document arrived.
 */
function openStock (url: string, name: string, edit?: (doc: Y.Doc) => void): Opened {
  const opened: Opened = { doc: new Y.Doc(), provider: undefined as unknown as WebsocketProvider, closes: 0, messages: [] }
  class CountingWebSocket extends WebSocket {
    constructor (...args: ConstructorParameters<typeof WebSocket>) {
      super(...args)
      this.on('message', (data: Buffer) => opened.messages.push(data.byteLength))
      this.on('close', () => { opened.closes++ })
    }
  }
  opened.provider = new WebsocketProvider(url, name, opened.doc, {
    WebSocketPolyfill: CountingWebSocket as unknown as typeof globalThis.WebSocket,
    disableBc: true
  })
  if (edit !== undefined) opened.provider.once('status', () => edit(opened.doc))
  onTestFinished(() => {
    opened.provider.destroy()
    opened.doc.destroy()
  })
  return opened
}

/** True once `doc` holds every struct of `update` (its state vector is at least the update's). */
function holds (doc: Y.Doc, stateVector: Map<number, number>): boolean {
  for (const [client, clock] of stateVector) if (Y.getState(doc.store, client) < clock) return false
  return true
}

/** Stores `update` as the whole of document `name` in a SQLite database under `dir`, as a compaction leaves it. */
async function seed (dir: string, name: string, update: Uint8Array): Promise<void> {
  const store = await SqliteStore.open(dir)
  await store.append([{ name, update }])
  await store.close()
}

/**
 * True when two documents hold the same: the same structs (state vectors), the same deletions
 * (delete sets) and the same content of the generated types (text with its formatting, the XML).
 * Their encodings may still differ: how adjacent structs are merged depends on how they arrived.
 */
function sameContent (a: Y.Doc, b: Y.Doc): boolean {
  const bytes = (x: Uint8Array, y: Uint8Array): boolean => Buffer.compare(x, y) === 0
  const sv = (doc: Y.Doc): Uint8Array => Y.encodeStateVector(doc)
  const states = (doc: Y.Doc): string => JSON.stringify([...Y.decodeStateVector(sv(doc))].sort((x, y) => x[0] - y[0]))
  // the delete set alone (clients sorted by Yjs): the update past every struct the document holds
  const ds = (doc: Y.Doc): Uint8Array => Y.encodeStateAsUpdate(doc, sv(doc))
  return states(a) === states(b) && bytes(ds(a), ds(b)) &&
    JSON.stringify(a.getText(BIG_TEXT).toDelta()) === JSON.stringify(b.getText(BIG_TEXT).toDelta()) &&
    a.getXmlFragment(BIG_XML).toString() === b.getXmlFragment(BIG_XML).toString()
}

test('a 10 MiB document reaches a stock client in pieces under the size of a piece, equal to the stored one; edits made during the load, by it and by another client, are kept', async () => {
  const { update } = bigDocumentFile(10 * MiB, BIG_SEED)
  expect(update.byteLength).toBeGreaterThan(PIECEWISE_SYNC_BYTES)
  const expected = new Y.Doc()
  Y.applyUpdate(expected, update)
  const stateVector = Y.decodeStateVector(Y.encodeStateVector(expected))
  const dir = tempDir()
  const name = docName('big')
  await seed(dir, name, update)
  const server = await startServer({ persistence: 'sqlite', dataDir: dir })

  // one client is in the document when the other starts to load it: its edit comes mid-load
  const first = openStock(server.url, name)
  await waitFor(() => holds(first.doc, stateVector) && first.provider.synced, 120_000, 'first client synced')
  const loading = openStock(server.url, name, doc => doc.getText(BIG_TEXT).insert(0, 'typed while loading '))
  await waitFor(() => loading.messages.length >= 3, 60_000, 'the load under way')
  first.doc.getText(BIG_TEXT).insert(0, 'typed by the other ')
  await waitFor(() => holds(loading.doc, stateVector) && loading.provider.synced, 120_000, 'loading client synced')
  await waitFor(() => {
    const text = loading.doc.getText(BIG_TEXT).toString()
    return text.includes('typed by the other ') && text.includes('typed while loading ')
  }, 30_000, 'both edits at the loading client')
  expect(loading.closes).toBe(0)
  expect(first.closes).toBe(0)
  // several messages, none much over a piece (a struct is never cut: a few bytes over); served
  // from the pieces the document was built from (64 KiB) or from the built document (256 KiB)
  const big = loading.messages.filter(size => size > 32 * 1024)
  expect(big.length).toBeGreaterThan(5)
  expect(Math.max(...loading.messages)).toBeLessThan(SYNC_PIECE_BYTES + 64 * 1024)

  // the loaded document is the stored one with the two edits: the same content as the other
  // client's, and as the stored document with the edits applied to it. Compared as booleans: a
  // failed comparison of megabytes would otherwise be printed as a diff
  await waitFor(() => first.doc.getText(BIG_TEXT).toString().includes('typed while loading '), 30_000, 'the loading client\'s edit at the other')
  expect(sameContent(loading.doc, first.doc)).toBe(true)
  const stored = new Y.Doc()
  Y.applyUpdate(stored, update)
  Y.applyUpdate(stored, Y.encodeStateAsUpdate(loading.doc, Y.encodeStateVector(stored)))
  expect(sameContent(loading.doc, stored)).toBe(true)
  expect(loading.doc.getXmlFragment(BIG_XML).toString() === expected.getXmlFragment(BIG_XML).toString()).toBe(true)

  // both edits were stored, and the document compacted off the event loop as it unloaded: the
  // store folded the edits into one row and kept the snapshot (an in-memory snapshot would have
  // replaced both with one row)
  first.provider.destroy()
  loading.provider.destroy()
  await waitFor(() => server.documents.get(name) === undefined, 60_000, 'the document unloaded')
  const reader = await SqliteStore.open(dir)
  const rows = await reader.load(name)
  await reader.close()
  expect(rows).toHaveLength(2)
  expect(Buffer.compare(rows[0] as Uint8Array, update)).toBe(0)
  // a restart over the same data serves them
  await server.close()
  const restarted = await startServer({ persistence: 'sqlite', dataDir: dir })
  const later = openStock(restarted.url, name)
  await waitFor(() => holds(later.doc, stateVector) && later.provider.synced, 120_000, 'client after the restart synced')
  const text = later.doc.getText(BIG_TEXT).toString()
  expect(text).toContain('typed by the other ')
  expect(text).toContain('typed while loading ')
  expect(sameContent(later.doc, loading.doc)).toBe(true)
}, 600_000)

test('a fresh client is sent a big stored document in the pieces it is built from, while it builds; its edit made meanwhile is kept', async () => {
  const { update } = bigDocumentFile(10 * MiB, BIG_SEED)
  const stateVector = Y.decodeStateVector(Y.encodeStateVectorFromUpdate(update))
  const dir = tempDir()
  const name = docName('pieces')
  await seed(dir, name, update)
  const server = await startServer({ persistence: 'sqlite', dataDir: dir })
  // the edit comes after the client's first sync step 1 (an empty state vector: a fresh client)
  const client = openStock(server.url, name, doc => setTimeout(() => doc.getText(BIG_TEXT).insert(0, 'typed during the build '), 20))
  // the pieces are offered once the worker has split the stored rows, and kept through the build
  let offered: StoredSync | null = null
  await waitFor(() => (offered = server.documents.get(name)?.storedSync ?? null) !== null, 60_000, 'the pieces offered')
  const sync = offered as unknown as StoredSync
  expect(sync.piecewise).toBe(true)
  expect(server.documents.get(name)?.status).toBe('loading')
  await waitFor(() => holds(client.doc, stateVector) && client.provider.synced, 120_000, 'the client synced')
  expect(sync.servedCount).toBe(1)
  expect(client.closes).toBe(0)
  // pieces of about 64 KiB (a struct is never cut), many of them
  expect(client.messages.filter(size => size > BUILD_PIECE_BYTES / 2).length).toBeGreaterThan(100)
  expect(Math.max(...client.messages)).toBeLessThan(BUILD_PIECE_BYTES + 64 * 1024)
  // the client holds the stored document and its edit; the server holds the edit too, stored
  const expected = new Y.Doc()
  Y.applyUpdate(expected, update)
  Y.applyUpdate(expected, Y.encodeStateAsUpdate(client.doc, Y.encodeStateVector(expected)))
  expect(sameContent(client.doc, expected)).toBe(true)
  const doc = server.documents.get(name)!
  await waitFor(() => doc.status === 'ready' && !doc.hasPending && doc.ydoc.getText(BIG_TEXT).toString().includes('typed during the build '), 60_000, 'the edit stored')
  expect(sameContent(doc.ydoc, client.doc)).toBe(true)
}, 600_000)

test('a 100 MB document syncs to a stock client with no reconnect', async () => {
  // long runs of text (pasted passages): the same bytes as a typed document, in fewer structs, so
  // that building it stays within the suite's time (it is kept in the temporary folder)
  const { update } = bigDocumentFile(100 * MiB, BIG_SEED, 3000)
  expect(update.byteLength).toBeGreaterThanOrEqual(100 * MiB)
  const stateVector = Y.decodeStateVector(Y.encodeStateVectorFromUpdate(update))
  const dir = tempDir()
  const name = docName('huge')
  await seed(dir, name, update)
  const server = await startServer({ persistence: 'sqlite', dataDir: dir })
  const started = Date.now()
  const client = openStock(server.url, name)
  await waitFor(() => holds(client.doc, stateVector) && client.provider.synced, 480_000, 'the 100 MB document at the client')
  const ms = Date.now() - started
  expect(client.closes).toBe(0)
  expect(Math.max(...client.messages)).toBeLessThan(SYNC_PIECE_BYTES + 64 * 1024)
  expect(client.messages.length).toBeGreaterThan(90)
  process.stdout.write(`100 MB document (${update.byteLength} bytes) opened by a stock client in ${ms} ms, ${client.messages.length} messages\n`)
}, 900_000)

test('an edit another instance publishes while a big document builds here, needing pieces not yet applied, reaches a client served from the pieces', async () => {
  const { update } = bigDocumentFile(10 * MiB, BIG_SEED)
  const hub = new LocalHub()
  const store = new MemoryStore()
  const name = docName('pieces-remote')
  await store.append([{ name, update }])
  const first = await startServer({ persistence: store, bus: hub.bus() })
  const writer = openStock(first.url, name)
  const stateVector = Y.decodeStateVector(Y.encodeStateVectorFromUpdate(update))
  await waitFor(() => holds(writer.doc, stateVector) && writer.provider.synced, 120_000, 'the writer synced')

  // a fresh client of the second instance, served the pieces while the document builds there;
  // it reads nothing yet, so that the pieces (and the build with them) wait
  const second = await startServer({ persistence: store, bus: hub.bus() })
  const ws = rawClient(`${second.url}/${encodeURIComponent(name)}`)
  const { all } = collectFrames(ws)
  await opened(ws)
  ws.send(writeSyncStep1(Y.encodeStateVector(new Y.Doc())))
  ws.pause()
  await waitFor(() => second.documents.get(name)?.storedSync?.piecewise === true, 60_000, 'the pieces offered')
  const loading = second.documents.get(name)!
  // the edit goes at the end of the text: it needs pieces the build has not applied yet
  let heardPending = false
  const applyRelayed = loading.applyRelayed.bind(loading)
  loading.applyRelayed = (...args) => {
    applyRelayed(...args)
    if (loading.status === 'loading' && loading.ydoc.store.pendingStructs !== null) heardPending = true
  }
  const text = writer.doc.getText(BIG_TEXT)
  text.insert(text.length - 3, 'PUBLISHED DURING THE BUILD ')
  await waitFor(() => heardPending || loading.status !== 'loading', 30_000, 'the edit heard by the second instance')
  expect(heardPending).toBe(true)
  ws.resume()

  const mine = new Y.Doc()
  await waitFor(() => {
    for (const frame of all.splice(0)) if (frame.type === 'sync-step2' || frame.type === 'sync-update') Y.applyUpdate(mine, frame.update)
    return loading.status === 'ready' && mine.getText(BIG_TEXT).toString().includes('PUBLISHED DURING THE BUILD ')
  }, 30_000, 'the client served from the pieces has the edit')
  expect(mine.getText(BIG_TEXT).toString() === writer.doc.getText(BIG_TEXT).toString()).toBe(true)
}, 600_000)

test('a client that reads nothing of the pieces it is sent does not slow the build down', async () => {
  const { update } = bigDocumentFile(10 * MiB, BIG_SEED)
  const store = new MemoryStore()
  const name = docName('pieces-stuck')
  await store.append([{ name, update }])
  const server = await startServer({ persistence: store })
  const ws = rawClient(`${server.url}/${encodeURIComponent(name)}`)
  await opened(ws)
  ws.send(writeSyncStep1(Y.encodeStateVector(new Y.Doc())))
  // it reads nothing: the pieces queue on its socket once the kernel's buffers are full
  ws.pause()
  await waitFor(() => server.documents.get(name)?.storedSync?.piecewise === true, 60_000, 'the pieces offered')
  const sync = server.documents.get(name)!.storedSync!
  const session = [...server.sessions][0]!
  // pieces wait on its socket, and the build goes at its own pace (sendingPieces slows it down:
  // slice-build.ts), then and for as long as the client reads nothing
  await waitFor(() => session.queuedBytes() > 256 * 1024 && !sync.sendingPieces, 30_000, 'pieces queued on the socket, the build not slowed')
  await waitFor(() => server.documents.get(name)?.status === 'ready', 60_000, 'built')
}, 600_000)
