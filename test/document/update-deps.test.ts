import { describe, expect, test } from 'vitest'
import * as fc from 'fast-check'
import * as Y from 'yjs'
import { CyclicUpdateError, findNeeds } from '../../server/document/update-deps.js'
import { findInconsistency } from '../../server/document/update-guard.js'
import { updateOf } from '../support/helpers.js'

/** True when applying `update` to a copy of `doc` leaves something pending in Yjs. */
function yjsLeavesPending (doc: Y.Doc, update: Uint8Array): boolean {
  const copy = new Y.Doc()
  Y.applyUpdate(copy, Y.encodeStateAsUpdate(doc))
  Y.applyUpdate(copy, update)
  return copy.store.pendingStructs !== null || copy.store.pendingDs !== null
}

describe('findNeeds', () => {
  test('agrees with Yjs on what would go pending, for honest updates delivered in any order (seeded)', () => {
    const seed = Number(process.env.FUZZ_SEED ?? 20261206)
    const op = fc.record({
      peer: fc.nat({ max: 2 }),
      kind: fc.constantFrom('text', 'delete', 'map', 'nested', 'nested-set', 'sync'),
      n: fc.nat({ max: 1000 })
    })
    fc.assert(fc.property(fc.array(op, { minLength: 1, maxLength: 40 }), fc.array(fc.nat(), { minLength: 40, maxLength: 40 }), (ops, order) => {
      const peers = [1, 2, 3].map(id => { const d = new Y.Doc(); d.clientID = id; return d })
      const sent: Uint8Array[] = []
      for (const { peer, kind, n } of ops) {
        const doc = peers[peer]!
        const text = doc.getText('t')
        const update = updateOf(doc, () => {
          switch (kind) {
            case 'text': text.insert(n % (text.length + 1), 'ab'); break
            case 'delete': if (text.length > 0) text.delete(n % text.length, 1); break
            case 'map': doc.getMap('m').set(String(n % 5), n); break
            case 'nested': doc.getArray('a').insert(0, [new Y.Map()]); break
            case 'nested-set': { const inner = doc.getArray('a').get(0); if (inner instanceof Y.Map) inner.set('k', n); break }
            case 'sync': Y.applyUpdate(doc, Y.encodeStateAsUpdate(peers[(peer + 1) % 3]!)); break
          }
        })
        if (kind !== 'sync' && update.byteLength > 2) sent.push(update)
      }
      // the server gets them in a shuffled order, holds what needs more, and applies it once it can
      const shuffled = sent.map((u, i) => ({ u, k: order[i % order.length]! })).sort((a, b) => a.k - b.k).map(x => x.u)
      const server = new Y.Doc()
      let held: Uint8Array[] = []
      const offer = (update: Uint8Array): boolean => {
        const needs = findNeeds(server, Y.decodeUpdate(update))
        expect(needs.size > 0).toBe(yjsLeavesPending(server, update))
        if (needs.size > 0) return false
        Y.applyUpdate(server, update)
        expect(server.store.pendingStructs).toBeNull()
        expect(server.store.pendingDs).toBeNull()
        return true
      }
      for (const update of shuffled) {
        if (!offer(update)) { held.push(update); continue }
        for (let progress = true; progress;) {
          const before = held.length
          held = held.filter(h => !offer(h))
          progress = held.length < before
        }
      }
      expect(held).toEqual([])
      const expected = new Y.Doc()
      for (const update of sent) Y.applyUpdate(expected, update)
      expect(Y.encodeStateVector(server)).toEqual(Y.encodeStateVector(expected))
    }), { seed, numRuns: 60 })
  })

  test('items that refer to each other in a loop are refused (they would wait in Yjs for ever)', () => {
    const a = new Y.Doc()
    a.clientID = 1
    const b = new Y.Doc()
    b.clientID = 2
    const decoded = Y.decodeUpdate(Y.mergeUpdates([
      updateOf(a, () => a.getText('t').insert(0, 'a')),
      updateOf(b, () => b.getText('t').insert(0, 'b'))
    ]))
    const items = decoded.structs as Y.Item[]
    items.find(item => item.id.client === 1)!.origin = new Y.ID(2, 0)
    items.find(item => item.id.client === 2)!.origin = new Y.ID(1, 0)
    expect(() => findNeeds(new Y.Doc(), decoded)).toThrow(CyclicUpdateError)
  })

  test('a delete set of an unknown client, or past what the document holds, needs that content', () => {
    const doc = new Y.Doc()
    const text = doc.getText('t')
    updateOf(doc, () => text.insert(0, 'abc'))
    const server = new Y.Doc()
    const forged = new Y.Doc()
    Y.applyUpdate(forged, Y.encodeStateAsUpdate(doc))
    const deleting = updateOf(forged, () => forged.getText('t').delete(0, 3))
    // the server has nothing of `doc`: the deletion waits for clock 3 of doc's client
    const decoded = Y.decodeUpdate(deleting)
    expect(findNeeds(server, decoded)).toEqual(new Map([[doc.clientID, 3]]))
    Y.applyUpdate(server, Y.encodeStateAsUpdate(doc))
    expect(findNeeds(server, decoded).size).toBe(0)
  })

  test('deep nesting and long chains resolve without recursion: 20,000 nested maps, 20,000 inserts at 0', () => {
    const nested = new Y.Doc()
    const deep = updateOf(nested, () => nested.transact(() => {
      let map = nested.getMap('root')
      for (let i = 0; i < 20_000; i++) {
        const inner = new Y.Map<unknown>()
        map.set('child', inner)
        map = inner
      }
    }))
    const chain = new Y.Doc()
    const inserts = updateOf(chain, () => chain.transact(() => { for (let i = 0; i < 20_000; i++) chain.getText('t').insert(0, 'x') }))
    for (const update of [deep, inserts]) {
      const server = new Y.Doc()
      const decoded = Y.decodeUpdate(update)
      expect(findInconsistency(server, decoded)).toBeNull()
      expect(findNeeds(server, decoded).size).toBe(0)
    }
  })
})

describe('findInconsistency follows a chain of references to its end', () => {
  test('a forged item at the end of a 1,000-item chain, between two types, is refused', () => {
    const doc = new Y.Doc()
    doc.clientID = 5
    const update = updateOf(doc, () => doc.transact(() => {
      doc.getMap('m').set('k', 'v')
      for (let i = 0; i < 1_000; i++) doc.getText('t').insert(0, 'x')
      doc.getText('t').insert(0, 'y')
    }))
    const decoded = Y.decodeUpdate(update)
    const items = decoded.structs.filter((s): s is Y.Item => s instanceof Y.Item)
    const last = items[items.length - 1]!
    // its right neighbour is the first insert's chain (text t, 1,000 deep); its left, the map entry
    last.origin = items[0]!.id
    expect(findInconsistency(new Y.Doc(), decoded)).toMatch(/neighbours in different types/)
  })
})
