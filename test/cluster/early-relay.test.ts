import { describe, expect, onTestFinished } from 'vitest'
import * as Y from 'yjs'
import { MemoryStore } from '../../server/store/memory-store.js'
import type { Store } from '../../server/store/store.js'
import { RedisBus } from '../../server/cluster/redis-bus.js'
import { writeSyncUpdate } from '../../shared/messages.js'
import { docName, startServer, stockClient, synced, testLogger, updateOf, waitFor } from '../support/helpers.js'
import { tandemSocket } from '../support/tandem-helpers.js'
import { REDIS_URL, redisPrefix, redisUp, testWith } from '../support/services.js'

const it = testWith(redisUp)

/** The shared store, and a view of it whose commits wait until `open()` (one instance's store). */
function gatedStore (shared: MemoryStore): { store: Store, open: () => void, appends: () => number } {
  let open!: () => void
  const gate = new Promise<void>(resolve => { open = resolve })
  let appends = 0
  const store = new Proxy(shared, {
    get (target, prop, receiver) {
      if (prop === 'append') {
        return async (entries: Parameters<Store['append']>[0]) => {
          await gate
          appends++
          return await target.append(entries)
        }
      }
      const value = Reflect.get(target, prop, receiver) as unknown
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value
    }
  })
  onTestFinished(open)
  return { store, open, appends: () => appends }
}

/** Two servers on one Redis (a prefix of their own); the first one's commits wait for `open`. */
async function pair (): Promise<{ urls: [string, string], shared: MemoryStore, open: () => void, busOne: RedisBus }> {
  const shared = new MemoryStore()
  const gated = gatedStore(shared)
  const prefix = redisPrefix()
  // liveness 600 ms: a peer whose key is gone is reported down within a few hundred ms
  const bus = (): RedisBus => new RedisBus({ url: REDIS_URL, prefix, livenessMs: 600, logger: testLogger })
  const busOne = bus()
  const one = await startServer({ persistence: gated.store, bus: busOne })
  const two = await startServer({ persistence: shared, bus: bus() })
  return { urls: [one.url, two.url], shared, open: gated.open, busOne }
}

/** The text of a document as the shared store has it. */
async function storedText (store: MemoryStore, name: string): Promise<string> {
  const doc = new Y.Doc()
  for (const update of await store.load(name)) Y.applyUpdate(doc, update)
  return doc.getText('t').toString()
}

const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

/**
 * A writer on the first instance, a stock reader and a Tandem repeater on the second; the
 * writer's first update (`text` into `t`) sent once all are synced.
 */
async function writerAndReaders (urls: [string, string], name: string, text: string): Promise<{ reader: ReturnType<typeof stockClient>, repeater: Awaited<ReturnType<typeof tandemSocket>>, writer: Awaited<ReturnType<typeof tandemSocket>>, update: Uint8Array }> {
  const writer = await tandemSocket(urls[0], name)
  const reader = stockClient(urls[1], name)
  const repeater = await tandemSocket(urls[1], name)
  await synced(reader.provider)
  await sleep(100)
  const author = new Y.Doc()
  const update = updateOf(author, () => author.getText('t').insert(0, text))
  writer.ws.send(writeSyncUpdate(update))
  return { reader, repeater, writer, update }
}

describe('relaying to other instances before the store commit (real Redis)', () => {
  it('the other instance\'s clients get an update before its commit; acknowledgements and a new client\'s sync on both instances wait for it', async () => {
    const { urls, shared, open } = await pair()
    const name = docName()
    const { reader, repeater, writer, update } = await writerAndReaders(urls, name, 'early')
    // the first instance's commit is held: the reader on the other instance has it all the same
    await waitFor(() => reader.text.toString() === 'early', 5_000, 'the reader on the other instance gets the update')
    expect(await storedText(shared, name)).toBe('')
    // the same update sent on the other instance is a no-op there: acknowledged only once stored
    repeater.ws.send(writeSyncUpdate(update))
    // an edit on the other instance that builds on it: stored there, acknowledged only once the
    // update it builds on is stored too
    const author = new Y.Doc()
    Y.applyUpdate(author, update)
    const follow = updateOf(author, () => author.getText('t').insert(5, '!'))
    repeater.ws.send(writeSyncUpdate(follow))
    await waitFor(async () => (await shared.load(name)).length > 0, 5_000, 'the follow-up is stored by the other instance')
    // a client joining the other instance now is answered once what it would get is stored
    const late = stockClient(urls[1], name)
    await sleep(300)
    expect(writer.acks()).toBe(0)
    expect(repeater.acks()).toBe(0)
    expect(late.provider.synced).toBe(false)
    open()
    await waitFor(() => writer.acks() === 1 && repeater.acks() === 2, 5_000, 'both acknowledged once the first instance committed')
    await synced(late.provider)
    expect(late.text.toString()).toBe('early!')
    expect(await storedText(shared, name)).toBe('early!')
  })

  it('many updates from both instances: each reader gets every one, in an order it can apply at once', async () => {
    const { urls, shared, open } = await pair()
    open()
    const name = docName()
    const a = stockClient(urls[0], name)
    const b = stockClient(urls[1], name)
    const readers = [stockClient(urls[0], name), stockClient(urls[1], name)]
    await Promise.all([a, b, ...readers].map(client => synced(client.provider)))
    let outOfOrder = 0
    for (const reader of readers) {
      reader.doc.on('update', () => {
        const { store } = reader.doc
        if (store.pendingStructs !== null || store.pendingDs !== null) outOfOrder++
      })
    }
    const count = 150
    for (let i = 0; i < count; i++) {
      // each writer appends to its own array: one insert per edit, in order
      a.doc.getArray<string>('a').push([`a${i}`])
      b.doc.getArray<string>('b').push([`b${i}`])
      if (i % 10 === 9) await sleep(5)
    }
    const expectA = Array.from({ length: count }, (_, i) => `a${i}`)
    const expectB = Array.from({ length: count }, (_, i) => `b${i}`)
    for (const reader of readers) {
      await waitFor(() => reader.doc.getArray('a').length === count && reader.doc.getArray('b').length === count, 10_000, 'every edit arrives')
      expect(reader.doc.getArray('a').toArray()).toEqual(expectA)
      expect(reader.doc.getArray('b').toArray()).toEqual(expectB)
    }
    expect(outOfOrder).toBe(0)
    // and all of it is stored
    await waitFor(async () => {
      const doc = new Y.Doc()
      for (const update of await shared.load(name)) Y.applyUpdate(doc, update)
      return doc.getArray('a').length === count && doc.getArray('b').length === count
    }, 10_000, 'everything stored')
  })

  it('an instance gone before its commit: the other stores what it relayed, and acknowledges what waited', async () => {
    const { urls, shared, busOne } = await pair()
    const name = docName()
    const { reader, repeater, writer, update } = await writerAndReaders(urls, name, 'orphan')
    await waitFor(() => reader.text.toString() === 'orphan', 5_000, 'the reader on the other instance gets the update')
    repeater.ws.send(writeSyncUpdate(update))
    await sleep(200)
    expect(repeater.acks()).toBe(0)
    // the first instance leaves the bus (its liveness key goes) with its commit still held
    await busOne.close()
    await waitFor(() => repeater.acks() === 1, 5_000, 'the other instance stores it and acknowledges the repeat')
    expect(await storedText(shared, name)).toBe('orphan')
    expect(writer.acks()).toBe(0)
  })
})
