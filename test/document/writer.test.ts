import { describe, expect, onTestFinished, test } from 'vitest'
import { UpdateWriter, type WriterSource } from '../../server/document/writer.js'
import { SqliteStore } from '../../server/store/sqlite-store.js'
import type { StoreEntry } from '../../server/store/store.js'
import { tempDir, testLogger } from '../support/helpers.js'

/** The SQLite store, noting the size of every append and when it was called. */
class CountingStore extends SqliteStore {
  appends: Array<{ size: number, at: number }> = []

  override async append (entries: readonly StoreEntry[]): Promise<void> {
    this.appends.push({ size: entries.length, at: performance.now() })
    await super.append(entries)
  }
}

/** A document as the writer sees it: updates queued by `add`, and the ones reported stored. */
class Source implements WriterSource<Uint8Array[]> {
  private queue: Uint8Array[] = []
  /** What the writer reported stored, in order. */
  done: Uint8Array[] = []

  constructor (readonly name: string) {}

  add (update: Uint8Array): void {
    this.queue.push(update)
  }

  takePending (): { entries: Uint8Array[], batch: Uint8Array[] } | null {
    if (this.queue.length === 0) return null
    const batch = this.queue
    this.queue = []
    return { entries: batch, batch }
  }

  stored (batch: Uint8Array[]): void {
    this.done.push(...batch)
  }

  requeue (batch: Uint8Array[]): void {
    this.queue = batch.concat(this.queue)
  }
}

const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

/** A writer over a new SQLite store, with `delayMs` for light load; both closed after the test. */
async function openWriter (delayMs: number): Promise<{ store: CountingStore, writer: UpdateWriter }> {
  const store = new CountingStore(tempDir())
  await store.ready
  const writer = new UpdateWriter(store, testLogger, {}, delayMs)
  onTestFinished(async () => {
    writer.close()
    await store.close()
  })
  return { store, writer }
}

describe('update writer', () => {
  test('under light load, updates a few ms apart share one commit, and none is reported stored before it', async () => {
    const { store, writer } = await openWriter(200)
    const sources = [new Source('a'), new Source('b'), new Source('c')]
    for (const [i, source] of sources.entries()) {
      source.add(new Uint8Array([i]))
      writer.schedule(source)
      await sleep(20)
    }
    // 40 ms after the first, still inside its 200 ms wait: nothing written, nothing reported
    expect(store.appends).toEqual([])
    expect(sources.every(source => source.done.length === 0)).toBe(true)
    await writer.idle()
    expect(store.appends.map(append => append.size)).toEqual([3])
    for (const [i, source] of sources.entries()) {
      expect(source.done).toEqual([new Uint8Array([i])])
      expect(await store.load(source.name)).toEqual([new Uint8Array([i])])
    }
  })

  test('after a big write the next one does not wait', async () => {
    const { store, writer } = await openWriter(600)
    const source = new Source('doc')
    // the first write waits (nothing was written yet, so the load looks light)
    for (let i = 0; i < 20; i++) source.add(new Uint8Array([i]))
    writer.schedule(source)
    await writer.idle()
    source.add(new Uint8Array([20]))
    const scheduled = performance.now()
    writer.schedule(source)
    await writer.idle()
    expect(store.appends.map(append => append.size)).toEqual([20, 1])
    expect((store.appends[1] as { at: number }).at - scheduled).toBeLessThan(300)
    // and after that small one, the next waits again
    source.add(new Uint8Array([21]))
    writer.schedule(source)
    await sleep(100)
    expect(store.appends).toHaveLength(2)
  })

  test('with no delay, the updates of one turn share a commit at its end', async () => {
    const { store, writer } = await openWriter(0)
    const a = new Source('a')
    const b = new Source('b')
    a.add(new Uint8Array([1]))
    writer.schedule(a)
    b.add(new Uint8Array([2]))
    writer.schedule(b)
    expect(store.appends).toEqual([])
    await writer.idle()
    expect(store.appends.map(append => append.size)).toEqual([2])
    expect(a.done).toEqual([new Uint8Array([1])])
    expect(b.done).toEqual([new Uint8Array([2])])
  })
})
