import { describe, expect, test } from 'vitest'
import type { ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { startServer, waitFor, docName, tempDir } from '../support/helpers.js'
import { tandemClient, dropSocket } from '../support/tandem-helpers.js'
import { MemoryStore } from '../../server/store/memory-store.js'
import type { StoreEntry } from '../../server/store/store.js'
import { startTandem, type TandemProcess } from '../support/cli.js'

/** A real MemoryStore whose writes wait until the test opens the gate. */
class GatedStore extends MemoryStore {
  appended = 0
  private gate: Promise<void> | null = null
  private open: () => void = () => {}

  close_ (): void {
    this.gate = new Promise(resolve => { this.open = resolve })
  }

  open_ (): void {
    this.gate = null
    this.open()
  }

  override async append (entries: readonly StoreEntry[]): Promise<void> {
    if (this.gate !== null) await this.gate
    await super.append(entries)
    this.appended += entries.length
  }
}

/**
 * With `store` shut, `client`'s one unstored change stays unacknowledged even after the server
 * handled every frame the client sent (a lock reply comes after all of them); once the store
 * opens, it is acknowledged.
 */
async function expectAcknowledgedOnlyOnceStored (client: ReturnType<typeof tandemClient>, store: GatedStore): Promise<void> {
  let flushed = false
  const done = client.flushed().then(() => { flushed = true })
  await client.locks.acquire('barrier')
  await new Promise(resolve => setImmediate(resolve))
  expect(flushed).toBe(false)
  expect(client.unsyncedChanges).toBe(1)
  expect(store.appended).toBe(0)
  store.open_()
  await done
}

/** Starts the built `tandem` binary with SQLite in `dataDir`. */
async function spawnServer (dataDir: string): Promise<TandemProcess> {
  return await startTandem(['--persistence', 'sqlite', '--data', dataDir])
}

async function sigkill (child: ChildProcess): Promise<void> {
  const exited = once(child, 'exit')
  child.kill('SIGKILL')
  await exited
}

describe('durable acknowledgements', () => {
  test('flushed() then SIGKILL of the server loses nothing', async () => {
    const dataDir = tempDir()
    const name = docName()
    const first = await spawnServer(dataDir)
    const writer = tandemClient(first.url, name, { user: { id: 'writer' } })
    await writer.synced()
    const text = writer.doc.getText('t')
    for (let i = 0; i < 200; i++) text.insert(text.length, `line ${i}\n`)
    writer.doc.getMap('m').set('answer', 42)
    expect(writer.unsyncedChanges).toBeGreaterThan(0)
    await writer.flushed()
    expect(writer.unsyncedChanges).toBe(0)
    await sigkill(first.child)
    writer.destroy()

    const second = await spawnServer(dataDir)
    const reader = tandemClient(second.url, name, { user: { id: 'reader' } })
    await reader.synced()
    expect(reader.doc.getText('t').toString()).toBe(text.toString())
    expect(reader.doc.getMap('m').get('answer')).toBe(42)
  })

  test('leave() right after an edit loses nothing, even with a SIGKILL right after', async () => {
    const dataDir = tempDir()
    const name = docName()
    const first = await spawnServer(dataDir)
    const writer = tandemClient(first.url, name, { user: { id: 'writer' } })
    await writer.synced()
    writer.doc.getText('t').insert(0, 'last words')
    await writer.leave()
    await sigkill(first.child)

    const second = await spawnServer(dataDir)
    const reader = tandemClient(second.url, name, { user: { id: 'reader' } })
    await reader.synced()
    expect(reader.doc.getText('t').toString()).toBe('last words')
  })

  test('unsyncedChanges counts edits made offline and through a drop, and flushed() waits for them', async () => {
    const server = await startServer({ reconnectGraceMs: 5_000 })
    const name = docName()
    const client = tandemClient(server.url, name, { user: { id: 'ada' }, maxBackoffTimeMs: 100 })
    await client.synced()
    const text = client.doc.getText('t')
    text.insert(0, 'a')
    // frames in flight when the socket drops are covered by the step 2 after reconnecting
    dropSocket(client)
    text.insert(1, 'b')
    expect(client.unsyncedChanges).toBeGreaterThan(0)
    await client.flushed()
    expect(server.documents.get(name)?.ydoc.getText('t').toString()).toBe('ab')

    client.provider.disconnect()
    text.insert(2, 'c')
    text.insert(3, 'd')
    expect(client.unsyncedChanges).toBe(2)
    let flushed = false
    const done = client.flushed().then(() => { flushed = true })
    await waitFor(() => client.status === 'disconnected', 5_000)
    expect(flushed).toBe(false)
    client.connect()
    await done
    expect(client.unsyncedChanges).toBe(0)
    expect(server.documents.get(name)?.ydoc.getText('t').toString()).toBe('abcd')
  })

  test('an update is relayed at once and acknowledged only once it is stored', async () => {
    const store = new GatedStore()
    const server = await startServer({ persistence: store })
    const name = docName()
    const ada = tandemClient(server.url, name, { user: { id: 'ada' } })
    const bob = tandemClient(server.url, name, { user: { id: 'bob' } })
    await Promise.all([ada.synced(), bob.synced()])
    await Promise.all([ada.flushed(), bob.flushed()])
    store.close_()
    ada.doc.getText('t').insert(0, 'hello')
    await waitFor(() => bob.doc.getText('t').toString() === 'hello', 5_000, 'bob sees it while the store is shut')
    await expectAcknowledgedOnlyOnceStored(ada, store)
    expect(ada.unsyncedChanges).toBe(0)
    expect(store.appended).toBe(1)
  })

  test('after a reconnect, a step 2 that repeats an unstored update is acknowledged only once that is stored', async () => {
    const store = new GatedStore()
    const server = await startServer({ persistence: store, reconnectGraceMs: 5_000 })
    const name = docName()
    const watcher = tandemClient(server.url, name, { user: { id: 'watcher' } })
    watcher.awareness.setLocalStateField('here', true)
    const client = tandemClient(server.url, name, { user: { id: 'ada' }, maxBackoffTimeMs: 50 })
    await Promise.all([watcher.synced(), client.synced()])
    const seesWatcher = (): boolean => client.awareness.getStates().get(watcher.doc.clientID)?.here === true
    await waitFor(seesWatcher, 5_000, 'ada sees the watcher')
    store.close_()
    client.doc.getText('t').insert(0, 'precious')
    // the server has applied it (and the writer holds it) but not stored it
    await waitFor(() => server.documents.get(name)?.ydoc.getText('t').toString() === 'precious', 5_000, 'applied')
    const before = client.provider.ws
    dropSocket(client)
    // the awareness states come right after the server's step 1: once they are back, the client
    // has answered with its step 2, which changes nothing on the server
    await waitFor(() => client.provider.ws !== before && client.provider.wsconnected && seesWatcher(), 5_000, 'reconnected')
    await expectAcknowledgedOnlyOnceStored(client, store)
    expect((await store.load(name)).length).toBeGreaterThan(0)
  })

  test('leave() gives up waiting after its timeout when the server is gone', async () => {
    const server = await startServer()
    const name = docName()
    const client = tandemClient(server.url, name, { user: { id: 'ada' } })
    await client.synced()
    await server.close()
    await waitFor(() => client.status !== 'connected', 5_000)
    client.doc.getText('t').insert(0, 'stranded')
    expect(client.unsyncedChanges).toBe(1)
    await client.leave({ timeoutMs: 100 })
    expect(client.status).toBe('disconnected')
    await expect(client.synced()).resolves.toBeUndefined()
    await expect(client.flushed()).rejects.toMatchObject({ code: 'TANDEM_ERR_DESTROYED' })
  })
})
