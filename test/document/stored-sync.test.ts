import { describe, expect } from 'vitest'
import * as Y from 'yjs'
import { docName, merged, opened, rawClient, startServer, stockClient, synced, tempDir, updateOf, waitFor } from '../support/helpers.js'
import { collectFrames } from '../support/security-helpers.js'
import { POSTGRES_URL, pgSchema, postgresUp, privateRedis, redisPrefix, redisUp, testWith } from '../support/services.js'
import { writeSyncStep1, writeSyncUpdate, type Frame } from '../../shared/messages.js'
import { SqliteStore } from '../../server/store/sqlite-store.js'
import { PostgresStore } from '../../server/store/postgres-store.js'
import type { Store } from '../../server/store/store.js'
import { STORED_SYNC_MIN_BYTES } from '../../server/document/stored-sync.js'

/**
 * A document as one update of a few hundred KiB: three authors' text with deletions, a map and
 * an XML fragment, encoded without garbage collection (deleted content kept, as a client with
 * `gc: false` sends it), so that the server's own encoding of it would differ from these bytes.
 */
function storedDocument (): Uint8Array {
  const doc = new Y.Doc({ gc: false })
  const text = doc.getText('t')
  let seed = 7
  const random = (): number => (seed = (seed * 16807) % 2147483647) / 2147483647
  for (let i = 0; i < 1500; i++) {
    doc.clientID = 100 + (i % 3)
    text.insert(Math.floor(random() * (text.length + 1)), `paragraph ${i} of the stored document\n`.repeat(4))
    if (i % 5 === 0) text.delete(Math.floor(random() * (text.length - 40)), 30)
  }
  doc.getMap('m').set('title', 'stored')
  const xml = doc.getXmlFragment('x')
  xml.insert(0, [new Y.XmlElement('p'), new Y.XmlText('rich')])
  const update = Y.encodeStateAsUpdate(doc)
  doc.destroy()
  return update
}

/** Makes `store` wait for `release` before reading client-id owners: the document stays loading until then. */
function holdOwners (store: Store): () => void {
  let release = (): void => {}
  const released = new Promise<void>(resolve => { release = resolve })
  const read = store.loadOwners?.bind(store)
  if (read === undefined) throw new Error('the store reads no owners')
  store.loadOwners = async name => {
    await released
    return await read(name)
  }
  return release
}

const stores: Array<[string, boolean, () => Promise<{ open: () => Promise<Store> }>]> = [
  ['SQLite', true, async () => {
    const dir = tempDir()
    return { open: async () => await SqliteStore.open(dir) }
  }],
  ['PostgreSQL', postgresUp, async () => {
    const schema = pgSchema()
    return { open: async () => await PostgresStore.open(POSTGRES_URL, { schema }) }
  }]
]

/** Stores `update` as document `name` through a store of its own, then closes it (a restart follows). */
async function storeBefore (open: () => Promise<Store>, name: string, update: Uint8Array): Promise<void> {
  const setup = await open()
  await setup.append([{ name, update }])
  await setup.close()
}

describe.each(stores)('first sync from the stored document while it is built (%s)', (_, up, make) => {
  testWith(up)('a fresh client is sent the stored bytes before the document is built; they equal the stored document after merge; edits made meanwhile survive and reach the others', async () => {
    const { open } = await make()
    const name = docName()
    const stored = storedDocument()
    expect(stored.byteLength).toBeGreaterThan(STORED_SYNC_MIN_BYTES)
    await storeBefore(open, name, stored)

    const store = await open()
    const release = holdOwners(store)
    const server = await startServer({ persistence: store })

    // a raw client with an empty document: its step 1 is answered while the document loads
    const ws = rawClient(`${server.url}/${encodeURIComponent(name)}`)
    const { all } = collectFrames(ws)
    await opened(ws)
    ws.send(writeSyncStep1(Y.encodeStateVector(new Y.Doc())))
    await waitFor(() => all.some(f => f.type === 'sync-step2'), 10_000, 'the step 2 of the stored document')
    const doc = server.documents.get(name)!
    expect(doc.status).toBe('loading')
    const step2 = all.find((f): f is Extract<Frame, { type: 'sync-step2' }> => f.type === 'sync-step2')!
    // the stored bytes as they were read: the fast path, not a document built and encoded again
    expect(Buffer.from(step2.update).equals(Buffer.from(stored))).toBe(true)
    // and the same document as the store's, byte for byte once both are merged into a Y.Doc
    const rows = await store.load(name)
    expect(Buffer.from(merged([step2.update])).equals(Buffer.from(merged(rows)))).toBe(true)

    // a stock client joining during the load is synced the same way
    const other = stockClient(server.url, name)
    await synced(other.provider, 10_000)
    expect(doc.status).toBe('loading')
    expect(other.doc.getMap('m').get('title')).toBe('stored')

    // an edit by the raw client, made on the document it was sent, while the server still builds
    const mine = new Y.Doc()
    Y.applyUpdate(mine, step2.update)
    const edit = updateOf(mine, () => mine.getText('t').insert(0, 'EDITED DURING THE LOAD '))
    ws.send(writeSyncUpdate(edit))
    await new Promise(resolve => setTimeout(resolve, 50))
    expect(doc.status).toBe('loading')

    release()
    await waitFor(() => other.text.toString().startsWith('EDITED DURING THE LOAD '), 10_000, 'the edit reaches the other client')
    await waitFor(() => doc.status === 'ready' && !doc.hasPending, 10_000, 'the edit stored')
    expect(doc.ydoc.getText('t').toString()).toBe(other.text.toString())
    expect(doc.ydoc.getText('t').toString()).toBe(mine.getText('t').toString())
    await server.close()

    const reopened = await open()
    const after = new Y.Doc()
    for (const update of await reopened.load(name)) Y.applyUpdate(after, update)
    await reopened.close()
    expect(after.getText('t').toString()).toBe(mine.getText('t').toString())
    expect(after.getMap('m').get('title')).toBe('stored')
  })

  testWith(up)('once built, the document answers fresh clients with the stored bytes until it first changes', async () => {
    const { open } = await make()
    const name = docName()
    const stored = storedDocument()
    await storeBefore(open, name, stored)
    const server = await startServer({ persistence: await open() })
    const firstSync = async (): Promise<Uint8Array> => {
      const ws = rawClient(`${server.url}/${encodeURIComponent(name)}`)
      const { all } = collectFrames(ws)
      await opened(ws)
      ws.send(writeSyncStep1(Y.encodeStateVector(new Y.Doc())))
      await waitFor(() => all.some(f => f.type === 'sync-step2'), 10_000, 'a step 2')
      return all.find((f): f is Extract<Frame, { type: 'sync-step2' }> => f.type === 'sync-step2')!.update
    }
    const first = await firstSync()
    expect(Buffer.from(first).equals(Buffer.from(stored))).toBe(true)
    const doc = server.documents.get(name)!
    await waitFor(() => doc.status === 'ready', 10_000, 'built')
    // a fresh client of the built, unchanged document: the same bytes, not encoded again
    expect(Buffer.from(await firstSync()).equals(Buffer.from(stored))).toBe(true)

    const editor = stockClient(server.url, name)
    await synced(editor.provider, 10_000)
    editor.text.insert(0, 'CHANGED ')
    await waitFor(() => doc.ydoc.getText('t').toString().startsWith('CHANGED '), 10_000, 'the edit applied')
    await doc.whenStored()
    const after = new Y.Doc()
    const third = await firstSync()
    Y.applyUpdate(after, third)
    expect(Buffer.from(third).equals(Buffer.from(stored))).toBe(false)
    expect(after.getText('t').toString()).toBe(editor.text.toString())
  })

  testWith(up)('a client with content of its own takes the ordinary path and converges to the same document', async () => {
    const { open } = await make()
    const name = docName()
    const stored = storedDocument()
    await storeBefore(open, name, stored)
    const server = await startServer({ persistence: await open() })

    const offline = new Y.Doc()
    offline.getMap('offline').set('k', 1)
    const client = stockClient(server.url, name, { doc: offline })
    await synced(client.provider, 10_000)
    await waitFor(() => client.doc.getMap('m').get('title') === 'stored', 10_000, 'the stored document')
    const doc = server.documents.get(name)!
    await waitFor(() => doc.ydoc.getMap('offline').get('k') === 1, 10_000, 'the offline edit reaches the server')
    expect(Buffer.from(merged([Y.encodeStateAsUpdate(client.doc)])).equals(Buffer.from(merged([Y.encodeStateAsUpdate(doc.ydoc)])))).toBe(true)
  })
})

describe('first sync from the stored document with two instances (PostgreSQL and Redis)', () => {
  testWith(postgresUp && redisUp)('an update published by the other instance while the document loads reaches a client served from the stored bytes', async () => {
    const schema = pgSchema()
    const open = async (): Promise<Store> => await PostgresStore.open(POSTGRES_URL, { schema })
    const name = docName()
    await storeBefore(open, name, storedDocument())
    const redis = await privateRedis()
    const cluster = { redis: redis.url, redisPrefix: redisPrefix() }

    const first = await startServer({ persistence: await open(), ...cluster })
    const writer = stockClient(first.url, name)
    await synced(writer.provider, 10_000)

    // the second instance reads the stored rows, then waits before it goes on with them
    const store = await open()
    const read = store.load.bind(store)
    let release = (): void => {}
    const released = new Promise<void>(resolve => { release = resolve })
    let rowsRead = false
    store.load = async (doc: string) => {
      const rows = await read(doc)
      rowsRead = true
      await released
      return rows
    }
    const second = await startServer({ persistence: store, ...cluster })
    const ws = rawClient(`${second.url}/${encodeURIComponent(name)}`)
    const { all } = collectFrames(ws)
    await opened(ws)
    ws.send(writeSyncStep1(Y.encodeStateVector(new Y.Doc())))
    await waitFor(() => rowsRead, 10_000, 'the second instance read the stored rows')

    // an edit inside the stored text, published while the second instance has not applied its rows:
    // it waits in Yjs there (it depends on them), and is not relayed yet
    writer.text.insert(10, 'PUBLISHED DURING THE LOAD ')
    const loading = second.documents.get(name)!
    await waitFor(() => loading.ydoc.store.pendingStructs !== null, 10_000, 'the second instance heard the edit')
    release()

    const mine = new Y.Doc()
    await waitFor(() => {
      for (const frame of all.splice(0)) if (frame.type === 'sync-step2' || frame.type === 'sync-update') Y.applyUpdate(mine, frame.update)
      return mine.getText('t').toString() === writer.text.toString()
    }, 10_000, 'the client served from the stored bytes has the edit')
    expect(mine.getText('t').toString()).toContain('PUBLISHED DURING THE LOAD ')
  })
})
