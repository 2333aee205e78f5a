import { describe, expect, test } from 'vitest'
import * as Y from 'yjs'
import fc from 'fast-check'
import { splitUpdate } from '../../client/split-update.js'
import { chunkSyncFrame } from '../../client/chunked-sync.js'
import { UnsyncedCounter } from '../../client/unsynced.js'
import { readFrame, writeAwareness, writeSyncStep2, writeSyncUpdate } from '../../shared/messages.js'

/** A document edited by `clients` peers that exchanged updates, as seen by the first. */
function editedDoc (seed: number, clients: number, edits: number): Y.Doc[] {
  let state = seed >>> 0
  const random = (n: number): number => {
    state = (state * 1_103_515_245 + 12_345) >>> 0
    return state % n
  }
  const docs = Array.from({ length: clients }, () => new Y.Doc())
  for (let i = 0; i < edits; i++) {
    const doc = docs[random(clients)] as Y.Doc
    const text = doc.getText('t')
    const op = random(6)
    if (op === 0 && text.length > 0) text.delete(random(text.length), Math.min(1 + random(20), text.length))
    else if (op === 1) doc.getMap('m').set(`k${random(50)}`, { n: random(1000), s: 'x'.repeat(random(300)) })
    else if (op === 2) doc.getArray('a').insert(0, [random(100), 'y'.repeat(random(200))])
    else if (op === 3) doc.getMap('m').set(`nested${random(5)}`, new Y.Map([['inner', new Y.Text('z'.repeat(random(100)))]]))
    else text.insert(random(text.length + 1), `ab😀cd${'e'.repeat(random(400))}`)
    // exchange now and then, so items reference other peers' items
    if (random(5) === 0) {
      const from = docs[random(clients)] as Y.Doc
      const to = docs[random(clients)] as Y.Doc
      Y.applyUpdate(to, Y.encodeStateAsUpdate(from, Y.encodeStateVector(to)))
    }
  }
  return docs
}

function sameContent (a: Y.Doc, b: Y.Doc): void {
  expect(b.getText('t').toString()).toBe(a.getText('t').toString())
  expect(b.getMap('m').toJSON()).toEqual(a.getMap('m').toJSON())
  expect(b.getArray('a').toJSON()).toEqual(a.getArray('a').toJSON())
  expect(Y.encodeStateVector(b)).toEqual(Y.encodeStateVector(a))
}

describe('splitUpdate', () => {
  test('a small update is returned as it is', () => {
    const doc = new Y.Doc()
    doc.getText('t').insert(0, 'hello')
    const update = Y.encodeStateAsUpdate(doc)
    expect(splitUpdate(update, 1024)).toEqual([update])
  })

  test('parts applied one by one, each on its own, rebuild the document with nothing pending, each within the limit', () => {
    let split = 0
    fc.assert(fc.property(fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 256, max: 4096 }), (seed, clients, maxBytes) => {
      const docs = editedDoc(seed, clients, 150)
      const source = docs[0] as Y.Doc
      for (const other of docs.slice(1)) Y.applyUpdate(source, Y.encodeStateAsUpdate(other))
      // the receiver has part of it already: the split is of a diff, as a step 2 is
      const receiver = new Y.Doc()
      Y.applyUpdate(receiver, Y.encodeStateAsUpdate(docs[docs.length - 1] as Y.Doc))
      const diff = Y.encodeStateAsUpdate(source, Y.encodeStateVector(receiver))
      const parts = splitUpdate(diff, maxBytes)
      if (parts.length > 2) split++
      for (const part of parts) {
        // a part holds at most one item that could not be cut further (maps' JSON values here)
        if (part.byteLength > maxBytes) expect(Y.decodeUpdate(part).structs.length).toBeLessThanOrEqual(1)
        Y.applyUpdate(receiver, part)
        // every part's dependencies came before it
        expect(receiver.store.pendingStructs).toBeNull()
      }
      expect(receiver.store.pendingDs).toBeNull()
      sameContent(source, receiver)
    }), { seed: Number(process.env.FUZZ_SEED ?? 23), numRuns: 40 })
    expect(split).toBeGreaterThan(20)
  })

  test('one huge text insert is cut into parts, never inside a surrogate pair', () => {
    const doc = new Y.Doc()
    doc.getText('t').insert(0, '😀'.repeat(100_000) + 'x'.repeat(100_001))
    const parts = splitUpdate(Y.encodeStateAsUpdate(doc), 16 * 1024)
    expect(parts.length).toBeGreaterThan(10)
    const receiver = new Y.Doc()
    for (const part of parts) {
      expect(part.byteLength).toBeLessThanOrEqual(16 * 1024)
      Y.applyUpdate(receiver, part)
    }
    expect(receiver.getText('t').toString()).toBe(doc.getText('t').toString())
  })
})

describe('chunkSyncFrame and the unsynced count', () => {
  test('a large step 2 or update becomes frames of its own sync type within the limit; other frames stay whole', () => {
    const doc = new Y.Doc()
    doc.getText('t').insert(0, 'k'.repeat(20_000))
    const update = Y.encodeStateAsUpdate(doc)
    for (const [write, kind] of [[writeSyncStep2, 'sync-step2'], [writeSyncUpdate, 'sync-update']] as const) {
      const frames = chunkSyncFrame(write(update), 4096)
      expect(frames.length).toBeGreaterThan(4)
      const rebuilt = new Y.Doc()
      for (const frame of frames) {
        expect(frame.byteLength).toBeLessThanOrEqual(4096)
        const decoded = readFrame(frame)
        expect(decoded.type).toBe(kind)
        if (decoded.type === 'sync-step2' || decoded.type === 'sync-update') Y.applyUpdate(rebuilt, decoded.update)
      }
      expect(rebuilt.getText('t').toString() === doc.getText('t').toString()).toBe(true)
    }
    const awareness = writeAwareness(new Uint8Array(10_000))
    expect(chunkSyncFrame(awareness, 4096)).toEqual([awareness])
    const small = writeSyncUpdate(Uint8Array.of(0, 0))
    expect(chunkSyncFrame(small, 4096)).toEqual([small])
  })

  test('a change sent in several frames is settled with the last of them', () => {
    const counter = new UnsyncedCounter()
    const socket = {}
    counter.unsent()
    counter.frameSent(socket, writeSyncStep2(Uint8Array.of(0, 0)), 3)
    counter.frameSent(socket, writeSyncUpdate(Uint8Array.of(0, 0)), 2)
    counter.frameSent(socket, writeAwareness(Uint8Array.of(0)), 1)
    expect(counter.count).toBe(2)
    expect(counter.settled(2)).toBe(0)
    expect(counter.settled(1)).toBe(1) // the step 2's last frame
    expect(counter.settled(1)).toBe(0)
    expect(counter.count).toBe(1)
    expect(counter.settled(1)).toBe(1) // the update's last frame
    expect(counter.count).toBe(0)
  })
})
