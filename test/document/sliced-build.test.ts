import { describe, expect, test } from 'vitest'
import { pino } from 'pino'
import * as Y from 'yjs'
import WebSocket from 'ws'
import { Document } from '../../server/document/document.js'
import { BUILD_PIECE_BYTES, SLICED_BUILD_BYTES } from '../../server/document/slice-build.js'
import { piecesOffLoop } from '../../server/document/off-loop.js'
import { mergeUpdates } from '../../server/document/merge.js'
import { SqliteStore } from '../../server/store/sqlite-store.js'
import { MemoryStore } from '../../server/store/memory-store.js'
import { PostgresStore } from '../../server/store/postgres-store.js'
import type { Store } from '../../server/store/store.js'
import { POSTGRES_URL, pgSchema, postgresUp, testWith } from '../support/services.js'
import { closed, docName, merged, rawClient, startServer, stockClient, synced, tempDir, testLogger, waitFor } from '../support/helpers.js'
import { CloseCode } from '../../shared/constants.js'
import { bigDocumentFile, BIG_SEED } from '../../bench/big-doc.js'
import * as encoding from 'lib0/encoding'

/** A delete-only update: `len` units of `client` from `clock` deleted. */
function deletion (client: number, clock: number, len: number): Uint8Array {
  const encoder = encoding.createEncoder()
  encoding.writeVarUint(encoder, 0) // no structs
  encoding.writeVarUint(encoder, 1) // one client in the delete set
  encoding.writeVarUint(encoder, client)
  encoding.writeVarUint(encoder, 1)
  encoding.writeVarUint(encoder, clock)
  encoding.writeVarUint(encoder, len)
  return encoding.toUint8Array(encoder)
}

/** One struct whose content type (15) Yjs does not know: applying it throws. */
function malformed (): Uint8Array {
  const encoder = encoding.createEncoder()
  for (const n of [1, 1, 4242, 0, 15, 1]) encoding.writeVarUint(encoder, n)
  encoding.writeVarString(encoder, 'text')
  return encoding.toUint8Array(encoder)
}

const same = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a).equals(Buffer.from(b))

let cached: Uint8Array[] | null = null
/**
 * The bench's typed 10 MiB document (cached), then, as later rows, an edit of another client
 * and a deletion inside it: past SLICED_BUILD_BYTES, with rows to merge and a delete set.
 */
function rows (): Uint8Array[] {
  if (cached !== null) return cached
  const { update } = bigDocumentFile(10 * 1024 * 1024, BIG_SEED)
  const [client, clock] = [...Y.decodeStateVector(Y.encodeStateVectorFromUpdate(update))].sort((a, b) => b[1] - a[1])[0] as [number, number]
  const extra = new Y.Doc()
  extra.getMap('m').set('title', 'big')
  extra.getXmlFragment('x').insert(0, [new Y.XmlElement('p'), new Y.XmlText('rich')])
  cached = [update, Y.encodeStateAsUpdate(extra), deletion(client, Math.floor(clock / 2), 1000)]
  extra.destroy()
  return cached
}

describe('a big stored document is built in slices', () => {
  test('the worker splits the rows into pieces that build the same document, and the event loop turns between them', { timeout: 120_000 }, async () => {
    const stored = rows()
    expect(stored.reduce((sum, row) => sum + row.byteLength, 0)).toBeGreaterThan(SLICED_BUILD_BYTES)
    const pieces = await piecesOffLoop(stored, BUILD_PIECE_BYTES) as Uint8Array[]
    expect(pieces.length).toBeGreaterThan(10)
    // the rows are copied to the worker, not taken from the store
    for (const row of stored) expect(row.byteLength).toBeGreaterThan(0)

    const doc = new Document(docName(), testLogger, () => {})
    let turns = 0
    const ticker = setInterval(() => { turns++ }, 0)
    await doc.loadStored(stored)
    clearInterval(ticker)
    // one block would have let no timer run
    expect(turns).toBeGreaterThan(1)
    expect(same(Y.encodeStateAsUpdate(doc.ydoc), merged(stored))).toBe(true)
    expect(doc.ydoc.getMap('m').get('title')).toBe('big')
    expect(doc.logUpdates).toBe(stored.length)
    doc.destroy()
  })

  test('each piece carries the deletions of what it holds: deleted content is never shown between pieces, and the pieces build the same document', { timeout: 120_000 }, async () => {
    const stored = rows()
    const pieces = await piecesOffLoop(stored, 2048) as Uint8Array[]
    const { ds } = Y.decodeUpdate(merged(stored))
    expect(ds.clients.size).toBeGreaterThan(0)
    const built = new Y.Doc()
    let checked = 0
    for (const piece of pieces) {
      Y.applyUpdate(built, piece)
      // every struct this piece brought that the stored state deletes is deleted already
      for (const struct of Y.decodeUpdate(piece).structs) {
        if (!(struct instanceof Y.Item) || !Y.isDeleted(ds, struct.id)) continue
        if (!Y.getItem(built.store, struct.id).deleted) throw new Error(`struct ${struct.id.client}:${struct.id.clock} shown before its deletion`)
        checked++
      }
    }
    expect(checked).toBeGreaterThan(0)
    expect(same(Y.encodeStateAsUpdate(built), merged(stored))).toBe(true)
    built.destroy()
  })

  test('an update with a gap (Skip structs: not split) is built in one block, its applicable part kept', { timeout: 120_000 }, async () => {
    const doc = new Y.Doc()
    doc.clientID = 7
    const text = doc.getText('t')
    const log: Uint8Array[] = []
    doc.on('update', (update: Uint8Array) => log.push(update))
    for (let i = 0; Y.encodeStateAsUpdate(doc).byteLength < SLICED_BUILD_BYTES + 65536; i++) text.insert(text.length, `line ${i} `.repeat(2000))
    // the first update, then one whose predecessor is missing: merged, they hold a Skip
    const first = mergeUpdates(log.slice(0, log.length - 2))
    const detached = log[log.length - 1] as Uint8Array
    expect(Y.decodeUpdate(mergeUpdates([first, detached])).structs.some(struct => struct instanceof Y.Skip)).toBe(true)
    const loaded = new Document(docName(), testLogger, () => {})
    await loaded.loadStored([first, detached])
    expect(same(Y.encodeStateAsUpdate(loaded.ydoc), merged([first]))).toBe(true)
    loaded.destroy()
    doc.destroy()
  })

  test('a malformed stored update fails the load with a clear error', { timeout: 120_000 }, async () => {
    const doc = new Document('broken', testLogger, () => {})
    await expect(doc.loadStored([...rows(), malformed()])).rejects.toThrow(/stored updates of document "broken" cannot be applied/)
    doc.destroy()
  })
})

const stores: Array<[string, boolean, () => Promise<Store>]> = [
  ['SQLite', true, async () => await SqliteStore.open(tempDir())],
  ['PostgreSQL', postgresUp, async () => await PostgresStore.open(POSTGRES_URL, { schema: pgSchema() })],
  ['memory', true, async () => new MemoryStore()]
]

describe.each(stores)('a big document built in slices (%s)', (_, up, make) => {
  testWith(up)('equals the stored one; edits made during the load survive; a second client during the load gets the document', { timeout: 180_000 }, async () => {
    const store = await make()
    const name = docName()
    const stored = rows()
    for (const update of stored) await store.append([{ name, update }])
    const server = await startServer({ persistence: store })

    const first = stockClient(server.url, name)
    first.provider.once('status', () => first.doc.getMap('edits').set('first', 1))
    await waitFor(() => server.documents.get(name) !== undefined, 10_000, 'the load to start')
    const doc = server.documents.get(name)!
    // joins while the document is still being built
    const second = stockClient(server.url, name)
    let joinedWhile = ''
    second.provider.once('status', () => {
      joinedWhile = doc.status
      second.doc.getMap('edits').set('second', 2)
    })
    await synced(first.provider, 120_000)
    await synced(second.provider, 120_000)
    await waitFor(() => first.doc.getMap('edits').get('second') === 2 && second.doc.getMap('edits').get('first') === 1, 30_000, 'both edits everywhere')
    expect(joinedWhile).toBe('loading')
    expect(doc.status).toBe('ready')
    const edits = (d: Y.Doc): unknown => d.getMap('edits').toJSON()
    expect(edits(doc.ydoc)).toEqual({ first: 1, second: 2 })
    // the stored document, and the edits, byte for byte after merge
    const server2 = merged([...stored, Y.encodeStateAsUpdate(first.doc)])
    expect(same(merged([Y.encodeStateAsUpdate(doc.ydoc)]), server2)).toBe(true)
    expect(same(merged([Y.encodeStateAsUpdate(second.doc)]), server2)).toBe(true)
    await doc.whenStored()
    expect(same(merged(await store.load(name)), server2)).toBe(true)
  })
})

test('a document whose stored bytes Yjs cannot apply fails each load clearly, never left loading', { timeout: 60_000 }, async () => {
  const store = new MemoryStore()
  const name = docName()
  const stored = rows()
  await store.append([{ name, update: stored[0] as Uint8Array }, { name, update: malformed() }])
  const server = await startServer({ persistence: store })
  for (let attempt = 0; attempt < 2; attempt++) {
    const ws = rawClient(`${server.url}/${name}`)
    const { code } = await closed(ws as WebSocket, 30_000)
    expect(code).toBe(CloseCode.TRY_AGAIN_LATER)
    await waitFor(() => server.documents.get(name) === undefined, 10_000, 'the failed document to be forgotten')
  }
})

test('a document deleted while it is built in slices stops building: its client is closed with 4404 and the build ends there', { timeout: 120_000 }, async () => {
  const lines: string[] = []
  const logger = pino({ level: 'info' }, { write: (line: string) => { lines.push(line) } })
  const store = new MemoryStore()
  const name = docName()
  for (const update of rows()) await store.append([{ name, update }])
  const server = await startServer({ persistence: store, logger })
  // a stock client is sent the pieces meanwhile: the build goes at a quarter pace
  const client = stockClient(server.url, name)
  await waitFor(() => server.documents.get(name) !== undefined, 10_000, 'the load to start')
  const doc = server.documents.get(name)!
  await waitFor(() => doc.ydoc.store.clients.size > 0, 60_000, 'the build to apply its first pieces')
  expect(doc.status).toBe('loading')
  const closedWith = new Promise<number>(resolve => client.provider.ws?.addEventListener('close', (event: { code: number }) => resolve(event.code)))
  client.provider.shouldConnect = false
  const deleted = await fetch(`http://127.0.0.1:${server.address.port}/api/documents/${encodeURIComponent(name)}`, { method: 'DELETE' })
  expect(deleted.status).toBe(200)
  expect(await closedWith).toBe(CloseCode.DOCUMENT_DELETED)
  await waitFor(() => lines.some(line => line.includes('big document build stopped')), 30_000, 'the build to stop')
  const stopped = JSON.parse(lines.find(line => line.includes('big document build stopped'))!) as { pieces: number, applied: number }
  expect(stopped.applied).toBeLessThan(stopped.pieces)
  expect(lines.some(line => line.includes('big document built in slices'))).toBe(false)
  expect(doc.status).toBe('unloaded')
  // nothing keeps the half-built document: its client left while it loaded, which the registry
  // notes to release it after the load (a private table: no public view shows it)
  const { leftWhileLoading } = (server as unknown as { registry: { leftWhileLoading: Set<unknown> } }).registry
  expect(leftWhileLoading.has(doc)).toBe(false)
})
