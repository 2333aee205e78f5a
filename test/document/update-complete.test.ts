import { describe, expect, test } from 'vitest'
import * as Y from 'yjs'
import { findMissingDependency } from '../../server/document/update-complete.js'

/** The update `edit` makes on a copy of `base` (the diff only). */
function diff (base: Y.Doc, edit: (doc: Y.Doc) => void, clientID?: number): Uint8Array {
  const doc = new Y.Doc()
  if (clientID !== undefined) doc.clientID = clientID
  Y.applyUpdate(doc, Y.encodeStateAsUpdate(base))
  const before = Y.encodeStateVector(doc)
  edit(doc)
  return Y.encodeStateAsUpdate(doc, before)
}

describe('findMissingDependency', () => {
  test('null for an update that integrates whole: new content, a full state, a stale repeat, deletes of known content', () => {
    const server = new Y.Doc()
    server.getText('t').insert(0, 'abc')
    const update = diff(server, doc => doc.getText('t').insert(1, 'x'))
    expect(findMissingDependency(server, Y.decodeUpdate(update))).toBeNull()
    expect(findMissingDependency(server, Y.decodeUpdate(Y.encodeStateAsUpdate(server)))).toBeNull()
    expect(findMissingDependency(server, Y.decodeUpdate(diff(server, doc => doc.getText('t').delete(0, 2))))).toBeNull()
    const fresh = new Y.Doc()
    fresh.getMap('m').set('k', 1)
    expect(findMissingDependency(server, Y.decodeUpdate(Y.encodeStateAsUpdate(fresh)))).toBeNull()
  })

  test('names a neighbour the document lacks', () => {
    const server = new Y.Doc()
    const elsewhere = new Y.Doc()
    elsewhere.getText('t').insert(0, 'abc')
    expect(findMissingDependency(server, Y.decodeUpdate(diff(elsewhere, doc => doc.getText('t').insert(2, 'x'))))).toMatch(/^item \d+:\d+$/)
  })

  test('names a gap in a client\'s clock', () => {
    const server = new Y.Doc()
    const author = new Y.Doc()
    author.getText('t').insert(0, 'a')
    const first = Y.encodeStateAsUpdate(author)
    const sv = Y.encodeStateVector(author)
    author.getText('t').insert(1, 'b')
    const second = Y.encodeStateAsUpdate(author, sv)
    expect(findMissingDependency(server, Y.decodeUpdate(second))).toMatch(/before clock 1/)
    Y.applyUpdate(server, first)
    expect(findMissingDependency(server, Y.decodeUpdate(second))).toBeNull()
  })

  test('names deleted content the document lacks', () => {
    const server = new Y.Doc()
    const elsewhere = new Y.Doc()
    elsewhere.getText('t').insert(0, 'abc')
    const deletion = diff(elsewhere, doc => doc.getText('t').delete(0, 1))
    expect(findMissingDependency(server, Y.decodeUpdate(deletion))).toMatch(/deleted by the update/)
  })
})
