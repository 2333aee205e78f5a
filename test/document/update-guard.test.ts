import { describe, expect, test } from 'vitest'
import * as fc from 'fast-check'
import * as Y from 'yjs'
import { findInconsistency } from '../../server/document/update-guard.js'
import { updateOf } from '../support/helpers.js'

describe('findInconsistency', () => {
  test('refuses an item that overlaps the document\'s items of another type (a forged client id)', () => {
    const server = new Y.Doc()
    const honest = new Y.Doc()
    honest.clientID = 13
    Y.applyUpdate(server, updateOf(honest, () => honest.getMap('m').set('k', 1)))
    const forger = new Y.Doc()
    forger.clientID = 13 // same id, other content: clock 0 is a map entry on the server, text here
    const forged = updateOf(forger, () => forger.getText('t').insert(0, 'abc'))
    expect(findInconsistency(server, Y.decodeUpdate(forged))).toMatch(/overlaps/)
  })

  test('accepts what honest peers send, stale diffs and whole states included (seeded)', () => {
    const seed = Number(process.env.FUZZ_SEED ?? 20261121)
    const op = fc.record({
      peer: fc.nat({ max: 2 }),
      kind: fc.constantFrom('text', 'delete', 'map', 'array', 'nested', 'sync', 'send-diff', 'send-stale', 'send-all'),
      n: fc.nat({ max: 1000 }),
      s: fc.string({ maxLength: 6 })
    })
    fc.assert(fc.property(fc.array(op, { minLength: 1, maxLength: 60 }), ops => {
      const server = new Y.Doc()
      const peers = [1, 2, 3].map(id => { const d = new Y.Doc(); d.clientID = id; return d })
      const staleSv = peers.map(() => Y.encodeStateVector(server))
      const send = (update: Uint8Array): void => {
        expect(findInconsistency(server, Y.decodeUpdate(update))).toBeNull()
        Y.applyUpdate(server, update)
      }
      for (const { peer, kind, n, s } of ops) {
        const doc = peers[peer]!
        const text = doc.getText('t')
        switch (kind) {
          case 'text': text.insert(n % (text.length + 1), s || 'x'); break
          case 'delete': if (text.length > 0) text.delete(n % text.length, 1 + (n % 3)); break
          case 'map': doc.getMap('m').set(s, n); break
          case 'array': doc.getArray('a').insert(0, [n, s]); break
          case 'nested': {
            const inner = new Y.Map<unknown>()
            doc.getArray('a').insert(0, [inner])
            inner.set('k', s)
            break
          }
          case 'sync': {
            const other = peers[(peer + 1) % 3]!
            Y.applyUpdate(doc, Y.encodeStateAsUpdate(other, Y.encodeStateVector(doc)))
            break
          }
          case 'send-diff': send(Y.encodeStateAsUpdate(doc, Y.encodeStateVector(server))); staleSv[peer] = Y.encodeStateVector(server); break
          case 'send-stale': send(Y.encodeStateAsUpdate(doc, staleSv[peer])); break
          case 'send-all': send(Y.encodeStateAsUpdate(doc)); break
        }
      }
      for (const doc of peers) send(Y.encodeStateAsUpdate(doc))
    }), { seed, numRuns: 300 })
  })
})
