import { describe, expect, test } from 'vitest'
import * as Y from 'yjs'
import { MemoryStore } from '../../server/store/memory-store.js'
import { LocalHub } from '../../server/cluster/local-bus.js'
import { docName, startServer, stockClient, synced, waitFor } from '../support/helpers.js'

/** Two or more servers in this process sharing one store through an in-process bus. */
async function cluster (count = 2): Promise<Array<Awaited<ReturnType<typeof startServer>>>> {
  const hub = new LocalHub()
  const store = new MemoryStore()
  const servers = []
  for (let i = 0; i < count; i++) servers.push(await startServer({ persistence: store, bus: hub.bus() }))
  return servers
}

/** Client ids whose awareness state `client` sees, other than its own. */
function seen (client: ReturnType<typeof stockClient>): number[] {
  return [...client.provider.awareness.getStates().keys()].filter(id => id !== client.doc.clientID).sort()
}

describe('several servers sharing documents through an in-process bus', () => {
  test('stock clients on different servers converge', async () => {
    const [one, two] = await cluster()
    const name = docName()
    const a = stockClient(one!.url, name)
    const b = stockClient(two!.url, name)
    await Promise.all([synced(a.provider), synced(b.provider)])
    a.text.insert(0, 'hello')
    await waitFor(() => b.text.toString() === 'hello', 5_000, 'b sees a')
    b.text.insert(5, ' world')
    await waitFor(() => a.text.toString() === 'hello world', 5_000, 'a sees b')
  })

  test('a server loading a document catches up from its peer, including edits not stored yet', async () => {
    const [one, two] = await cluster()
    const name = docName()
    const a = stockClient(one!.url, name)
    await synced(a.provider)
    a.text.insert(0, 'abc')
    const b = stockClient(two!.url, name)
    await synced(b.provider)
    await waitFor(() => b.text.toString() === 'abc', 5_000, 'b catches up')
    expect(Y.encodeStateVector(b.doc)).toEqual(Y.encodeStateVector(a.doc))
  })

  test('awareness crosses servers and goes at once when a connection ends', async () => {
    const [one, two] = await cluster()
    const name = docName()
    const a = stockClient(one!.url, name)
    const b = stockClient(two!.url, name)
    await Promise.all([synced(a.provider), synced(b.provider)])
    a.provider.awareness.setLocalStateField('user', { name: 'Ada' })
    await waitFor(() => (b.provider.awareness.getStates().get(a.doc.clientID) as { user?: { name: string } } | undefined)?.user?.name === 'Ada', 5_000, 'b sees a')
    a.provider.ws?.close() // a drop: the stock client reconnects by itself
    await waitFor(() => !seen(b).includes(a.doc.clientID), 5_000, 'a removed on b')
    await waitFor(() => seen(b).includes(a.doc.clientID), 5_000, 'a seen again after reconnecting')
  })

  test('a client moving to another server is seen there at once', async () => {
    const [one, two] = await cluster()
    const name = docName()
    const watcher = stockClient(one!.url, name)
    const mover = stockClient(one!.url, name)
    await Promise.all([synced(watcher.provider), synced(mover.provider)])
    mover.provider.awareness.setLocalStateField('user', 'm')
    await waitFor(() => seen(watcher).includes(mover.doc.clientID), 5_000, 'watcher sees mover')
    mover.provider.destroy()
    await waitFor(() => !seen(watcher).includes(mover.doc.clientID), 5_000, 'mover gone')
    // same Y.Doc and awareness client id, other server; its own clock is behind the removal
    const moved = stockClient(two!.url, name, { doc: mover.doc })
    await synced(moved.provider)
    await waitFor(() => seen(watcher).includes(mover.doc.clientID), 5_000, 'watcher sees the mover again')
  })

  test('when a server stops, the others drop the awareness of its clients', async () => {
    const [one, two] = await cluster()
    const name = docName()
    const a = stockClient(one!.url, name)
    const b = stockClient(two!.url, name)
    await Promise.all([synced(a.provider), synced(b.provider)])
    a.provider.awareness.setLocalStateField('user', 'a')
    await waitFor(() => seen(b).includes(a.doc.clientID), 5_000, 'b sees a')
    a.provider.shouldConnect = false
    await one!.close()
    await waitFor(() => !seen(b).includes(a.doc.clientID), 5_000, 'a removed on b')
  })

  test('concurrent edits on two servers are all stored once', async () => {
    const hub = new LocalHub()
    const store = new MemoryStore()
    const one = await startServer({ persistence: store, bus: hub.bus() })
    const two = await startServer({ persistence: store, bus: hub.bus() })
    const name = docName()
    const a = stockClient(one.url, name)
    const b = stockClient(two.url, name)
    await Promise.all([synced(a.provider), synced(b.provider)])
    for (let i = 0; i < 50; i++) {
      a.text.insert(0, 'a')
      b.text.insert(0, 'b')
    }
    await waitFor(() => a.text.length === 100 && b.text.length === 100, 5_000, 'both see 100')
    await waitFor(async () => {
      const doc = new Y.Doc()
      for (const update of await store.load(name)) Y.applyUpdate(doc, update)
      return doc.getText('t').length === 100
    }, 5_000, 'store holds all 100')
  })
})
