import { expect, test } from 'vitest'
import * as Y from 'yjs'
import { StatePieces } from '../../server/document/state-pieces.js'

/** A document of several authors: text typed at both ends and in the middle, a map, nested types. */
function authoredDocument (): Y.Doc {
  const doc = new Y.Doc({ gc: true })
  const text = doc.getText('t')
  const list = doc.getArray<Y.Map<unknown>>('list')
  for (let round = 0; round < 60; round++) {
    doc.clientID = 100 + (round % 5)
    text.insert(round % 3 === 0 ? 0 : round % 3 === 1 ? text.length : Math.floor(text.length / 2), `round ${round} `.repeat(20))
    const entry = new Y.Map<unknown>()
    list.insert(round % 2 === 0 ? list.length : 0, [entry])
    entry.set('n', round)
    entry.set('body', new Y.Text(`body ${round}`))
  }
  return doc
}

/** Everything a peer ends with: text, list (as JSON) and the state vector. */
function content (doc: Y.Doc): string {
  const states = [...Y.decodeStateVector(Y.encodeStateVector(doc))].sort((a, b) => a[0] - b[0])
  return JSON.stringify([doc.getText('t').toString(), doc.getArray('list').toJSON(), states])
}

test('pieces in causal order: each applies whole when it comes, and all of them make the document', () => {
  const source = authoredDocument()
  const pieces = new StatePieces(source, Y.encodeStateVector(new Y.Doc()), 2_000)
  const peer = new Y.Doc()
  let count = 0
  for (let piece = pieces.next(); piece !== null; piece = pieces.next()) {
    expect(piece.byteLength).toBeLessThan(2_000 + 1_500) // a piece ends past the size by one struct at most
    Y.applyUpdate(peer, piece)
    // nothing left waiting for a later piece
    expect(peer.store.pendingStructs).toBeNull()
    count++
  }
  Y.applyUpdate(peer, pieces.last())
  expect(count).toBeGreaterThan(3)
  expect(content(peer)).toBe(content(source))
})

test('the document may change between pieces (edits, deletions that garbage-collect and merge structs): the pieces and the edits made meanwhile make it', () => {
  const source = authoredDocument()
  const relays: Uint8Array[] = []
  source.on('update', (update: Uint8Array) => relays.push(update))
  const pieces = new StatePieces(source, Y.encodeStateVector(new Y.Doc()), 1_500)
  const peer = new Y.Doc()
  let step = 0
  for (let piece = pieces.next(); piece !== null; piece = pieces.next()) {
    Y.applyUpdate(peer, piece)
    // what the server relays to every member meanwhile reaches the peer too, in between pieces
    for (const relay of relays.splice(0)) Y.applyUpdate(peer, relay)
    source.clientID = 100 + (step % 5)
    const text = source.getText('t')
    if (step % 2 === 0 && text.length > 200) text.delete(Math.floor(text.length / 3), 150)
    else text.insert(Math.floor(text.length / 2), `meanwhile ${step} `)
    if (step === 2) source.getArray('list').delete(0, 5)
    step++
  }
  Y.applyUpdate(peer, pieces.last())
  for (const relay of relays.splice(0)) Y.applyUpdate(peer, relay)
  expect(step).toBeGreaterThan(3)
  expect(peer.store.pendingStructs).toBeNull()
  expect(content(peer)).toBe(content(source))
})

test('only what the peer lacks: a peer holding part of the document gets the rest', () => {
  const source = authoredDocument()
  const peer = new Y.Doc()
  Y.applyUpdate(peer, Y.encodeStateAsUpdate(source))
  source.clientID = 999
  source.getText('t').insert(5, 'later '.repeat(500))
  const pieces = new StatePieces(source, Y.encodeStateVector(peer), 1_000)
  let bytes = 0
  for (let piece = pieces.next(); piece !== null; piece = pieces.next()) {
    bytes += piece.byteLength
    Y.applyUpdate(peer, piece)
  }
  Y.applyUpdate(peer, pieces.last())
  expect(bytes).toBeLessThan(4_000)
  expect(content(peer)).toBe(content(source))
})
