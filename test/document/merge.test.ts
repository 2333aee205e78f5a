import { describe, expect, test } from 'vitest'
import * as Y from 'yjs'
import * as prng from 'lib0/prng'
import { mergeUpdates } from '../../server/document/merge.js'

/** `count` updates by `authors` authors: inserts and deletions at random places, each author up to date. */
function edits (count: number, authors: number, seed: number): { updates: Uint8Array[], final: Y.Doc } {
  const gen = prng.create(seed)
  const random = (): number => prng.real53(gen)
  const docs = Array.from({ length: authors }, (_, i) => {
    const doc = new Y.Doc()
    doc.clientID = i + 1
    return doc
  })
  const final = new Y.Doc()
  const updates: Uint8Array[] = []
  for (let k = 0; k < count; k++) {
    const doc = docs[Math.floor(random() * authors)] as Y.Doc
    Y.applyUpdate(doc, Y.encodeStateAsUpdate(final, Y.encodeStateVector(doc)))
    const before = Y.encodeStateVector(doc)
    const text = doc.getText('t')
    if (text.length > 10 && random() < 0.3) text.delete(Math.floor(random() * (text.length - 3)), 3)
    else text.insert(Math.floor(random() * (text.length + 1)), `e${k}.`)
    const update = Y.encodeStateAsUpdate(doc, before)
    updates.push(update)
    Y.applyUpdate(final, update)
  }
  return { updates, final }
}

describe('mergeUpdates', () => {
  test('merging in rounds gives what one Y.mergeUpdates gives: the same document', () => {
    for (const [count, authors, seed] of [[2, 2, 1], [17, 3, 2], [300, 7, 3], [1_000, 50, 4]] as const) {
      const { updates, final } = edits(count, authors, seed)
      const merged = new Y.Doc()
      Y.applyUpdate(merged, mergeUpdates(updates))
      const flat = new Y.Doc()
      Y.applyUpdate(flat, Y.mergeUpdates(updates))
      expect(merged.getText('t').toString()).toBe(final.getText('t').toString())
      expect(merged.getText('t').toString()).toBe(flat.getText('t').toString())
      expect(Y.encodeStateVector(merged)).toEqual(Y.encodeStateVector(final))
      // nothing left pending: the merge is one complete update
      expect(merged.store.pendingStructs).toBeNull()
      expect(merged.store.pendingDs).toBeNull()
    }
  })

  test('updates merged out of order still make the whole document', () => {
    const { updates, final } = edits(200, 5, 5)
    const gen = prng.create(6)
    const shuffled = updates.map(update => ({ update, key: prng.real53(gen) })).sort((a, b) => a.key - b.key).map(({ update }) => update)
    const merged = new Y.Doc()
    Y.applyUpdate(merged, mergeUpdates(shuffled))
    expect(merged.getText('t').toString()).toBe(final.getText('t').toString())
  })

  test('one update is returned as it is; none is an error', () => {
    const { updates } = edits(1, 1, 7)
    expect(mergeUpdates(updates)).toBe(updates[0])
    expect(() => mergeUpdates([])).toThrow(/no updates/)
  })
})
