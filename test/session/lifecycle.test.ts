import { describe, expect, test } from 'vitest'
import * as Y from 'yjs'
import { startServer, stockClient, synced, waitFor, docName, tempDir, rawClient, opened, type StockClient } from '../support/helpers.js'
import { writeSyncUpdate } from '../../shared/messages.js'
import { MemoryStore } from '../../server/store/memory-store.js'
import { signToken } from '../support/security-helpers.js'
import type { Revocation, Store, StoreEntry } from '../../server/store/store.js'
import type { TandemServer } from '../../server/server.js'

/** A real memory store whose loads wait until released: to hold a document in its loading state. */
class GatedStore implements Store {
  readonly inner = new MemoryStore()
  loads = 0
  private release!: () => void
  private readonly gate = new Promise<void>(resolve => { this.release = resolve })
  open (): void { this.release() }
  async load (name: string) { this.loads++; await this.gate; return this.inner.load(name) }
  append (entries: readonly StoreEntry[]) { return this.inner.append(entries) }
  compact (name: string) { return this.inner.compact(name) }
  nextFencingToken (name: string, resource: string) { return this.inner.nextFencingToken(name, resource) }
  saveVersion (...args: Parameters<Store['saveVersion']>) { return this.inner.saveVersion(...args) }
  versions (name: string) { return this.inner.versions(name) }
  versionState (name: string, id: string) { return this.inner.versionState(name, id) }
  dueForVersion (olderThanMs: number, limit: number) { return this.inner.dueForVersion(olderThanMs, limit) }
  enqueueEvents (...args: Parameters<Store['enqueueEvents']>) { return this.inner.enqueueEvents(...args) }
  claimEvents (owner: string, leaseMs: number, limit: number) { return this.inner.claimEvents(owner, leaseMs, limit) }
  settleEvent (seq: number, retryAt: number | null) { return this.inner.settleEvent(seq, retryAt) }
  pendingEvents () { return this.inner.pendingEvents() }
  tombstone (name: string) { return this.inner.tombstone(name) }
  markDeleted (name: string, at: number) { return this.inner.markDeleted(name, at) }
  restore (name: string) { return this.inner.restore(name) }
  deletedBefore (before: number, limit: number) { return this.inner.deletedBefore(before, limit) }
  purge (name: string, deletedAt: number, retired: Uint8Array) { return this.inner.purge(name, deletedAt, retired) }
  addRevocation (revocation: Revocation) { return this.inner.addRevocation(revocation) }
  revocations (now: number) { return this.inner.revocations(now) }
  close () { return this.inner.close() }
}

/**
 * `client` types `text` once its socket is open (the stock provider sends an edit at once only
 * then; before, it waits for the server's step 1, which a loading document does not send yet),
 * and the server's session has received it.
 */
async function typedWhileLoading (server: TandemServer, client: StockClient, text: string): Promise<void> {
  await waitFor(() => server.sessions.size === 1 && client.provider.wsconnected, 5_000, 'the session')
  const session = [...server.sessions][0]!
  await waitFor(() => session.messagesReceived >= 1, 5_000, 'the client\'s first frames')
  const before = session.messagesReceived
  client.text.insert(0, text)
  await waitFor(() => session.messagesReceived > before, 5_000, 'the edit at the server')
}

/** The text of document `name` as `store` holds it once `server` unloaded it. */
async function storedOnceUnloaded (server: TandemServer, store: GatedStore, name: string): Promise<string> {
  await waitFor(() => server.documents.get(name) === undefined, 5_000, 'the document unloaded')
  const stored = new Y.Doc()
  for (const update of await store.inner.load(name)) Y.applyUpdate(stored, update)
  return stored.getText('t').toString()
}

const SECRET = 'lifecycle-secret'

/** A server whose document holds 'stored before' in `store`, its load waiting for `store.open()`. */
async function storedWhileLoading (): Promise<{ store: GatedStore, name: string, server: TandemServer }> {
  const store = new GatedStore()
  const name = docName()
  const seed = new Y.Doc()
  seed.getText('t').insert(0, 'stored before')
  await store.inner.append([{ name, update: Y.encodeStateAsUpdate(seed) }])
  return { store, name, server: await startServer({ persistence: store }) }
}

/** Eve, a stock client with a token, in a stored empty document whose load waits for `store.open()`. */
async function eveWhileLoading (): Promise<{ store: GatedStore, name: string, server: TandemServer, eve: StockClient }> {
  const store = new GatedStore()
  const name = docName()
  await store.inner.append([{ name, update: Y.encodeStateAsUpdate(new Y.Doc()) }])
  const server = await startServer({ persistence: store, authSecret: SECRET })
  const eve = stockClient(server.url, name, { params: { token: await signToken(SECRET, { sub: 'eve' }) } })
  return { store, name, server, eve }
}

describe('document lifecycle', () => {
  test('clients joining during a load share one load and all get the full content', async () => {
    const { store, name, server } = await storedWhileLoading()
    const clients = Array.from({ length: 5 }, () => stockClient(server.url, name))
    await waitFor(() => server.sessions.size === 5, 5_000, 'five sessions')
    // one client edits while the document is still loading
    clients[0]!.text.insert(0, '>')
    store.open()
    await Promise.all(clients.map(c => synced(c.provider)))
    // '>' and the stored text were inserted concurrently at 0: their order depends on client ids
    const full = (text: string) => text.length === 14 && text.includes('stored before') && text.includes('>')
    await waitFor(() => clients.every(c => full(c.text.toString())), 5_000, 'everyone has everything')
    expect(new Set(clients.map(c => c.text.toString())).size).toBe(1)
    expect(store.loads).toBe(1)
  })

  test('edits a client sent while its document loaded are kept when it leaves before the load ends', async () => {
    const { store, name, server } = await storedWhileLoading()
    // a client that typed and left while the server still read the document
    const leaving = stockClient(server.url, name)
    await typedWhileLoading(server, leaving, 'typed, then gone ')
    leaving.provider.destroy()
    await waitFor(() => server.sessions.size === 0, 5_000, 'the session ended')
    expect(server.documents.get(name)?.status).toBe('loading')
    store.open()
    // the document unloads with the edit stored; a later client gets it
    const stored = await storedOnceUnloaded(server, store, name)
    expect(stored).toContain('typed, then gone ')
    expect(stored).toContain('stored before')
  })

  test('edits sent while the document loaded by a session the server ended (revoked) are not applied', async () => {
    const { store, name, server, eve } = await eveWhileLoading()
    await typedWhileLoading(server, eve, 'written by a revoked user')
    await server.revoke({ kind: 'user', value: 'eve' })
    await waitFor(() => server.stats.summary().endsByReason.revoked === 1, 5_000, 'the session revoked')
    // (the stock client reconnects, and is refused: the user is revoked)
    eve.provider.disconnect()
    store.open()
    const stored = await storedOnceUnloaded(server, store, name)
    expect(stored).toBe('')
  })

  test('edits a client sent while its document loaded are not applied when its user is revoked after it left, before the load ends', async () => {
    const { store, name, server, eve } = await eveWhileLoading()
    await typedWhileLoading(server, eve, 'written, then gone, then revoked')
    eve.provider.destroy()
    await waitFor(() => server.sessions.size === 0, 5_000, 'the session ended')
    // the user is revoked while what it sent still waits for the document
    await server.revoke({ kind: 'user', value: 'eve' })
    expect(server.documents.get(name)?.status).toBe('loading')
    store.open()
    const stored = await storedOnceUnloaded(server, store, name)
    expect(stored).toBe('')
  })

  test('an update a client sent while its document loaded, needing content nobody sent, is not held after the client left', async () => {
    const store = new GatedStore()
    const name = docName()
    await store.inner.append([{ name, update: Y.encodeStateAsUpdate(new Y.Doc()) }])
    const server = await startServer({ persistence: store })
    // a member that stays: the document stays loaded
    const staying = stockClient(server.url, name)
    // an update whose left origin is content the server never had
    const source = new Y.Doc()
    source.clientID = 4242
    source.getText('t').insert(0, 'never sent')
    const before = Y.encodeStateVector(source)
    source.getText('t').insert(10, ' and this needs it')
    const needing = Y.encodeStateAsUpdate(source, before)
    const ws = rawClient(`${server.url}/${encodeURIComponent(name)}`)
    await opened(ws)
    ws.send(writeSyncUpdate(needing))
    await waitFor(() => server.sessions.size === 2, 5_000, 'both sessions')
    ws.close()
    await waitFor(() => server.sessions.size === 1, 5_000, 'the raw session ended')
    store.open()
    await synced(staying.provider)
    const doc = server.documents.get(name)!
    await waitFor(() => doc.status === 'ready', 5_000, 'loaded')
    // nobody can be asked for what it needs, and no heartbeat of its session expires it: held,
    // it would take the document's held budget until the document unloads
    expect(doc.heldUpdates).toBe(0)
  })

  test('the document unloads when the last session ends, and reloads with its content', async () => {
    const store = new MemoryStore()
    const server = await startServer({ persistence: store })
    const name = docName()
    const a = stockClient(server.url, name)
    await synced(a.provider)
    for (let i = 0; i < 20; i++) a.text.insert(0, 'x')
    await waitFor(async () => (await store.load(name)).length > 0)
    a.provider.destroy()
    await waitFor(() => server.documents.get(name) === undefined, 5_000, 'unloaded')
    // compacted on unload
    expect((await store.load(name)).length).toBe(1)
    const b = stockClient(server.url, name)
    await synced(b.provider)
    await waitFor(() => b.text.toString() === 'x'.repeat(20))
  })

  test('a restarted server has the content (SQLite)', async () => {
    const dir = tempDir()
    const name = docName()
    const first = await startServer({ persistence: 'sqlite', dataDir: dir })
    const a = stockClient(first.url, name)
    await synced(a.provider)
    a.text.insert(0, 'survives')
    a.doc.getArray('list').push([1, 2, 3])
    await waitFor(() => first.documents.get(name)?.hasPending === false && first.documents.get(name)!.logUpdates > 0)
    a.provider.destroy()
    await first.close()
    const second = await startServer({ persistence: 'sqlite', dataDir: dir })
    const b = stockClient(second.url, name)
    await synced(b.provider)
    await waitFor(() => b.text.toString() === 'survives')
    expect(b.doc.getArray('list').toArray()).toEqual([1, 2, 3])
  })

  test('graceful close: clients get 1012, pending updates are stored, close twice is safe', async () => {
    const dir = tempDir()
    const name = docName()
    const server = await startServer({ persistence: 'sqlite', dataDir: dir })
    const a = stockClient(server.url, name)
    await synced(a.provider)
    const codes: number[] = []
    a.provider.on('connection-close', event => { if (event !== null) codes.push(event.code) })
    a.text.insert(0, 'last words')
    await waitFor(() => server.documents.get(name)?.ydoc.getText('t').length === 10, 5_000, 'server has the edit')
    a.provider.shouldConnect = false
    await Promise.all([server.close(), server.close()])
    expect(server.status).toBe('closed')
    await waitFor(() => codes.length > 0, 5_000, 'close event')
    expect(codes[0]).toBe(1012)
    const again = await startServer({ persistence: 'sqlite', dataDir: dir })
    const b = stockClient(again.url, name)
    await synced(b.provider)
    await waitFor(() => b.text.toString() === 'last words')
  })

  test('/healthz and /readyz', async () => {
    const server = await startServer()
    const http = server.url.replace('ws:', 'http:')
    expect(await (await fetch(`${http}/healthz`)).json()).toEqual({ status: 'ok' })
    expect((await fetch(`${http}/readyz`)).status).toBe(200)
    expect((await fetch(`${http}/nope`)).status).toBe(404)
  })
})
