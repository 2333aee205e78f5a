import { describe, expect, test } from 'vitest'
import * as Y from 'yjs'
import { docName, startServer, stockClient, synced, tempDir, waitFor, type StockClient } from './helpers.js'
import { record, tandemClient } from './tandem-helpers.js'
import { LockedError, type TandemClient } from '../client/index.js'
import type { TandemServer, ServerOptions } from '../server/index.js'

/** Everything the tests look at in a document, formatting included. */
function content (doc: Y.Doc): string {
  return JSON.stringify({
    t: doc.getText('t').toDelta(),
    f: doc.getText('f').toString(),
    m: doc.getMap('m').toJSON(),
    a: doc.getArray('a').toJSON(),
    x: doc.getXmlFragment('x').toString()
  })
}

type Peer = TandemClient | StockClient

/** Waits until every peer's content equals `expected` (the holder's). */
async function converged (peers: Peer[], expected: () => string, what: string): Promise<void> {
  await waitFor(() => peers.every(peer => content(peer.doc) === expected()), 5_000, what)
}

/** A server (SQLite in a fresh folder, so that it can be restarted) with its options. */
async function restartable (): Promise<{ server: TandemServer, options: ServerOptions }> {
  const options: ServerOptions = { persistence: 'sqlite', dataDir: tempDir() }
  return { server: await startServer(options), options }
}

/** Closes the server, starts it again on the same store and returns what a fresh client loads. */
async function reloaded (server: TandemServer, options: ServerOptions, name: string): Promise<string> {
  await server.close()
  const again = await startServer(options)
  const fresh = stockClient(again.url, name)
  await synced(fresh.provider)
  return content(fresh.doc)
}

/** A holder (Tandem), a Tandem non-holder and a stock y-websocket client on one document. */
async function trio (server: TandemServer, name: string): Promise<{ ada: TandemClient, bob: TandemClient, stock: StockClient }> {
  const ada = tandemClient(server.url, name, { user: { id: 'ada', name: 'Ada' } })
  const bob = tandemClient(server.url, name, { user: { id: 'bob', name: 'Bob' } })
  const stock = stockClient(server.url, name)
  await Promise.all([ada.synced(), bob.synced(), synced(stock.provider)])
  return { ada, bob, stock }
}

describe('locks the server enforces', () => {
  test('a stock client\'s insert, delete and format inside a guarded text are undone everywhere', async () => {
    const { server, options } = await restartable()
    const name = docName()
    const { ada, bob, stock } = await trio(server, name)
    const peers = [ada, bob, stock]
    ada.doc.getText('t').insert(0, 'hello world')
    await converged(peers, () => content(ada.doc), 'the text everywhere')
    const lock = await ada.locks.acquire(ada.doc.getText('t'))
    expect(lock.resource).toBe('y:t')
    const expected = content(ada.doc)

    stock.doc.getText('t').insert(5, ' there')
    await converged(peers, () => expected, 'insert undone')
    stock.doc.getText('t').delete(0, 6)
    await converged(peers, () => expected, 'delete undone')
    stock.doc.getText('t').format(0, 5, { bold: true })
    await converged(peers, () => expected, 'format undone')
    expect(stock.doc.getText('t').toString()).toBe('hello world')

    // the holder still writes
    ada.doc.getText('t').insert(11, '!')
    await converged(peers, () => content(ada.doc), 'the holder\'s edit everywhere')
    const final = content(ada.doc)
    await ada.flushed()
    expect(await reloaded(server, options, name)).toBe(final)
  })
})
