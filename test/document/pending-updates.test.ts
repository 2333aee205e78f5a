import { describe, expect, test } from 'vitest'
import * as Y from 'yjs'
import type WebSocket from 'ws'
import { startServer, stockClient, synced, waitFor, docName, rawClient, opened, closed, tempDir, updateOf, bystanderRoundTrip } from '../support/helpers.js'
import { collectFrames } from '../support/security-helpers.js'
import { writeSyncUpdate, writeSyncStep2, type Frame } from '../../shared/messages.js'
import { MemoryStore } from '../../server/store/memory-store.js'
import { SqliteStore } from '../../server/store/sqlite-store.js'
import type { Store } from '../../server/store/store.js'
import { parsePrometheusText, sampleValue } from '../observability/prometheus-text.js'

/** A client's update that depends on `missing`, content the server never got. */
interface Dependent {
  missing: Uint8Array
  dependent: Uint8Array
}

/** The shapes of "depends on content the server lacks" (the family of finding 2 and 3). */
const shapes: Array<[string, () => Dependent]> = [
  ['an insert next to content the server lacks', () => {
    const doc = new Y.Doc()
    const missing = updateOf(doc, () => doc.getText('t').insert(0, 'hidden'))
    return { missing, dependent: updateOf(doc, () => doc.getText('t').insert(3, 'X')) }
  }],
  ['a deletion of content the server lacks (a delete set of an unknown client)', () => {
    const author = new Y.Doc()
    const missing = updateOf(author, () => author.getText('t').insert(0, 'hidden'))
    const doc = new Y.Doc()
    Y.applyUpdate(doc, missing)
    return { missing, dependent: updateOf(doc, () => doc.getText('t').delete(1, 2)) }
  }],
  ['an entry of a nested type the server lacks', () => {
    const author = new Y.Doc()
    const missing = updateOf(author, () => author.getArray('a').insert(0, [new Y.Map()]))
    const doc = new Y.Doc()
    Y.applyUpdate(doc, missing)
    return { missing, dependent: updateOf(doc, () => (doc.getArray('a').get(0) as Y.Map<number>).set('k', 1)) }
  }],
  ['an author\'s edit after a gap in its own clock', () => {
    const doc = new Y.Doc()
    const missing = updateOf(doc, () => doc.getMap('m').set('a', 'first'))
    return { missing, dependent: updateOf(doc, () => doc.getMap('m').set('b', 'second')) }
  }]
]

/** Everything `store` holds for `name`, applied to a fresh document. */
async function storedDoc (store: Store, name: string): Promise<Y.Doc> {
  const doc = new Y.Doc()
  for (const update of await store.load(name)) Y.applyUpdate(doc, update)
  return doc
}

function acks (frames: Frame[]): number {
  let count = 0
  for (const frame of frames) if (frame.type === 'tandem' && frame.message.type === 'ack') count += frame.message.count
  return count
}

async function tandemSocket (url: string, name: string): Promise<{ ws: WebSocket, frames: Frame[] }> {
  const ws = rawClient(`${url}/${encodeURIComponent(name)}?tandem=1`)
  const { all } = collectFrames(ws)
  await opened(ws)
  return { ws, frames: all }
}

/** A client id and text edit that integrates anywhere: to see that the server went on. */
function independentEdit (text: string): Uint8Array {
  const doc = new Y.Doc()
  return updateOf(doc, () => doc.getMap('free').set(text, text))
}

describe('updates that depend on content the server lacks (issue 23, findings 2 and 3)', () => {
  test.each(shapes)('%s: held, not acknowledged, relayed or stored; the sender is asked; all lands once the content comes', async (_, make) => {
    const store = new MemoryStore()
    const server = await startServer({ persistence: store })
    const name = docName()
    const observer = stockClient(server.url, name)
    await synced(observer.provider)
    const { ws, frames } = await tandemSocket(server.url, name)
    await waitFor(() => frames.some(f => f.type === 'sync-step1'), 5_000, 'greeting step 1')
    const { missing, dependent } = make()

    const later = independentEdit('after')
    ws.send(writeSyncUpdate(dependent))
    ws.send(writeSyncUpdate(later))
    // the frame after it is applied, relayed and stored...
    await waitFor(() => observer.doc.getMap('free').get('after') === 'after', 5_000, 'the later frame relayed')
    const doc = server.documents.get(name)!
    await doc.whenStored()
    // ...but not acknowledged: acknowledgements follow the frames' order, and the first waits
    expect(acks(frames)).toBe(0)
    expect(doc.heldUpdates).toBe(1)
    // the sender was asked for what is missing: a second sync step 1, with the server's state
    await waitFor(() => frames.filter(f => f.type === 'sync-step1').length === 2, 5_000, 'the server asks for the missing content')
    const asked = frames.filter((f): f is Extract<Frame, { type: 'sync-step1' }> => f.type === 'sync-step1')[1]!
    // a client answering it sends the missing content
    expect(Y.decodeUpdate(Y.diffUpdate(missing, asked.stateVector)).structs.length).toBeGreaterThan(0)
    // nothing of it is in the document, the observer's copy or the store, and Yjs keeps nothing pending
    expect(doc.ydoc.store.pendingStructs).toBeNull()
    expect(doc.ydoc.store.pendingDs).toBeNull()
    const before = await storedDoc(store, name)
    expect(before.store.pendingStructs).toBeNull()
    expect(before.store.pendingDs).toBeNull()
    expect(Y.encodeStateVector(before)).toEqual(Y.encodeStateVector(observer.doc))

    // the client answers as the stock client would: a step 2 with what the server lacks
    ws.send(writeSyncStep2(missing))
    await waitFor(() => acks(frames) === 3, 5_000, 'all three frames acknowledged')
    expect(doc.heldUpdates).toBe(0)
    const expected = new Y.Doc()
    Y.applyUpdate(expected, missing)
    Y.applyUpdate(expected, dependent)
    Y.applyUpdate(expected, later)
    await waitFor(() => Y.encodeStateVector(observer.doc).toString() === Y.encodeStateVector(expected).toString(), 5_000, 'the observer has it all')
    const after = await storedDoc(store, name)
    expect(after.store.pendingStructs).toBeNull()
    expect(Y.encodeStateAsUpdate(after)).toEqual(Y.encodeStateAsUpdate(expected))
  })

  test('the stock client, asked for what its edit depends on, sends it; every client then converges', async () => {
    const server = await startServer()
    const name = docName()
    const observer = stockClient(server.url, name)
    const writer = stockClient(server.url, name)
    await synced(observer.provider)
    await synced(writer.provider)
    const author = new Y.Doc()
    author.getText('t').insert(0, 'content the server never got')
    // applied with the provider as origin: the provider does not send it (as if sent on a socket that dropped)
    Y.applyUpdate(writer.doc, Y.encodeStateAsUpdate(author), writer.provider)
    writer.text.insert(7, ' typed')
    await waitFor(() => observer.text.toString() === writer.text.toString(), 5_000, 'the observer converges')
    expect(observer.text.toString()).toBe('content typed the server never got')
    expect(server.documents.get(name)!.heldUpdates).toBe(0)
  })

  test('a frame over the held bound is refused with 1013; the document stays as it was and a bystander document is served', async () => {
    const store = new MemoryStore()
    const server = await startServer({ persistence: store })
    const name = docName()
    const observer = stockClient(server.url, name)
    await synced(observer.provider)
    observer.text.insert(0, 'intact')
    await waitFor(async () => (await store.load(name)).length > 0, 5_000, 'stored')
    const stateBefore = Y.encodeStateAsUpdate(server.documents.get(name)!.ydoc)

    // 80,000 items (about 330 KB) after content the server lacks, in one frame
    const doc = new Y.Doc()
    updateOf(doc, () => doc.getText('t').insert(0, 'hidden'))
    const frame = updateOf(doc, () => doc.transact(() => { for (let i = 0; i < 80_000; i++) doc.getText('t').insert(1 + (i % 5), 'z') }))
    expect(frame.byteLength).toBeGreaterThan(256 * 1024)
    const attacker = rawClient(`${server.url}/${encodeURIComponent(name)}`)
    await opened(attacker)
    const closing = closed(attacker)
    attacker.send(writeSyncUpdate(frame))

    await bystanderRoundTrip(server.url)

    const { code, reason } = await closing
    expect(code).toBe(1013)
    expect(reason).toBe('TANDEM_ERR_UPDATE_INCOMPLETE')
    const live = server.documents.get(name)!
    expect(Y.encodeStateAsUpdate(live.ydoc)).toEqual(stateBefore)
    expect(live.heldUpdates).toBe(0)
    expect(observer.text.toString()).toBe('intact')
    expect(observer.provider.wsconnected).toBe(true)
  })

  test('many tiny dependent updates from six sockets: each socket is refused with 1013 past its bound, the others are served, nothing is kept', async () => {
    const server = await startServer()
    const name = docName()
    const observer = stockClient(server.url, name)
    const other = stockClient(server.url, name)
    await synced(observer.provider)
    await synced(other.provider)
    const attackers = await Promise.all(Array.from({ length: 6 }, async () => {
      const ws = rawClient(`${server.url}/${encodeURIComponent(name)}`)
      await opened(ws)
      return { ws, closing: closed(ws, 30_000) }
    }))
    attackers.forEach(({ ws }, n) => {
      const doc = new Y.Doc()
      updateOf(doc, () => doc.getText('t').insert(0, 'hidden'))
      for (let i = 0; i < 300; i++) ws.send(writeSyncUpdate(updateOf(doc, () => doc.getText('t').insert(1 + ((i + n) % 4), 'y'))))
    })
    other.text.insert(0, 'served')
    await waitFor(() => observer.text.toString() === 'served', 10_000, 'an edit in the same document delivered')
    for (const { closing } of attackers) expect(await closing).toEqual({ code: 1013, reason: 'TANDEM_ERR_UPDATE_INCOMPLETE' })
    const doc = server.documents.get(name)!
    await waitFor(() => doc.heldUpdates === 0, 5_000, 'held updates dropped with their sockets')
    expect(doc.ydoc.store.pendingStructs).toBeNull()
    expect(doc.ydoc.store.pendingDs).toBeNull()
    expect(doc.ydoc.getText('t').toString()).toBe('served')
    // each socket closed for incomplete updates counts once; each held frame once
    const res = await fetch(`http://127.0.0.1:${server.address.port}/metrics`)
    const metrics = parsePrometheusText(await res.text())
    expect(sampleValue(metrics, 'tandem_updates_refused_total', { reason: 'incomplete' })).toBe(6)
    expect(sampleValue(metrics, 'tandem_updates_held_total')).toBeGreaterThanOrEqual(256)
  })

  test('after a restart, the snapshot holds no pending content and every acknowledged edit', async () => {
    const dataDir = tempDir()
    const name = docName()
    {
      const server = await startServer({ persistence: 'sqlite', dataDir, compactAfterUpdates: 2 })
      const writer = stockClient(server.url, name)
      await synced(writer.provider)
      const attacker = rawClient(`${server.url}/${encodeURIComponent(name)}`)
      const { all } = collectFrames(attacker)
      await opened(attacker)
      const doc = new Y.Doc()
      updateOf(doc, () => doc.getText('t').insert(0, 'hidden'))
      for (let i = 0; i < 50; i++) attacker.send(writeSyncUpdate(updateOf(doc, () => doc.getText('t').insert(1, 'y'))))
      // frames of a socket are handled in order: once the query is answered, the 50 were handled
      attacker.send(Uint8Array.of(3))
      for (const word of ['one ', 'two ', 'three ']) writer.text.insert(writer.text.length, word)
      await waitFor(() => all.some(f => f.type === 'awareness'), 5_000, 'the attacker\'s frames handled')
      await waitFor(() => server.documents.get(name)?.ydoc.getText('t').toString() === 'one two three ', 5_000, 'the edits applied')
      // the last member leaves: the document is stored, compacted into a snapshot and unloaded
      attacker.close()
      writer.provider.destroy()
      await waitFor(() => server.documents.get(name) === undefined, 10_000, 'unloaded')
      await server.close()
    }
    const store = new SqliteStore(dataDir)
    try {
      const rows = await store.load(name)
      expect(rows.length).toBe(1) // compacted
      const doc = await storedDoc(store, name)
      expect(doc.store.pendingStructs).toBeNull()
      expect(doc.store.pendingDs).toBeNull()
      expect(doc.getText('t').toString()).toBe('one two three ')
    } finally {
      await store.close()
    }
  })
})

describe('a large honest update costs linear time in the guard (issue 23, finding 1)', () => {
  test('one update of 10,000 inserts at position 0 is applied and relayed, and a bystander document is served meanwhile', async () => {
    const server = await startServer()
    const name = docName()
    const observer = stockClient(server.url, name)
    await synced(observer.provider)
    const doc = new Y.Doc()
    const update = updateOf(doc, () => doc.transact(() => { for (let i = 0; i < 10_000; i++) doc.getText('t').insert(0, String(i % 10)) }))
    const sender = rawClient(`${server.url}/${encodeURIComponent(name)}`)
    await opened(sender)
    sender.send(writeSyncUpdate(update))
    await bystanderRoundTrip(server.url)
    await waitFor(() => observer.text.length === 10_000, 10_000, 'the big update relayed')
    expect(observer.text.toString()).toBe(doc.getText('t').toString())
  })
})
