import { describe, expect, test } from 'vitest'
import * as Y from 'yjs'
import { integrate } from '../../server/document/integrate.js'

/** The updates a doc emits while `edit` runs, one per transaction. */
function emitted (doc: Y.Doc, edit: () => void): Uint8Array[] {
  const updates: Uint8Array[] = []
  const listener = (update: Uint8Array): void => { updates.push(update) }
  doc.on('update', listener)
  edit()
  doc.off('update', listener)
  return updates
}

/** Applies `update` to the server doc through `integrate`, and what it returns to the replica. */
function relay (server: Y.Doc, replica: Y.Doc, update: Uint8Array): Uint8Array | null {
  const result = integrate(server, update, Y.decodeUpdate(update).structs, 'client')
  if (result !== null) Y.applyUpdate(replica, result)
  return result
}

/** Two authors' docs: `a` with "a" and then "x" at its end; `b` typed "b" after "x". */
function twoAuthors (): { first: Uint8Array, tail: Uint8Array, fromB: Uint8Array } {
  const a = new Y.Doc()
  const b = new Y.Doc()
  const [first] = emitted(a, () => a.getText('t').insert(0, 'a'))
  const [x] = emitted(a, () => a.getText('t').insert(1, 'x'))
  Y.applyUpdate(b, Y.encodeStateAsUpdate(a))
  const [fromB] = emitted(b, () => b.getText('t').insert(2, 'b'))
  Y.applyUpdate(a, fromB!)
  const [y] = emitted(a, () => a.getText('t').insert(3, 'y'))
  // one run of a's structs: "x" (after its own "a") and "y" (after b's "b")
  return { first: first!, tail: Y.mergeUpdates([x!, y!]), fromB: fromB! }
}

describe('integrate', () => {
  test('an update that continues its author is returned as it came, in its own copy', () => {
    const author = new Y.Doc()
    const server = new Y.Doc()
    const replica = new Y.Doc()
    for (let i = 0; i < 20; i++) {
      const [update] = emitted(author, () => author.getText('t').insert(i, String.fromCharCode(97 + i)))
      const received = new Uint8Array(update!.byteLength + 8)
      received.set(update!, 4)
      const view = received.subarray(4, 4 + update!.byteLength)
      const result = relay(server, replica, view)
      expect(result).toEqual(update)
      expect(result!.buffer).not.toBe(received.buffer)
    }
    expect(server.getText('t').toString()).toBe('abcdefghijklmnopqrst')
    expect(replica.getText('t').toString()).toBe('abcdefghijklmnopqrst')
  })

  test('bytes after the end of an update are neither relayed nor stored', () => {
    const author = new Y.Doc()
    const server = new Y.Doc()
    const replica = new Y.Doc()
    const [update] = emitted(author, () => author.getText('t').insert(0, 'hello'))
    const padded = new Uint8Array(update!.byteLength + 100).fill(7)
    padded.set(update!)
    expect(relay(server, replica, padded)).toEqual(update)
    expect(replica.getText('t').toString()).toBe('hello')
  })

  test('an update the document already has changes nothing', () => {
    const author = new Y.Doc()
    const server = new Y.Doc()
    const [update] = emitted(author, () => author.getText('t').insert(0, 'hello'))
    expect(relay(server, new Y.Doc(), update!)).not.toBeNull()
    expect(relay(server, new Y.Doc(), update!)).toBeNull()
    expect(relay(server, new Y.Doc(), Y.encodeStateAsUpdate(author))).toBeNull()
  })

  test('a deletion is returned, and deleting again changes nothing', () => {
    const author = new Y.Doc()
    const server = new Y.Doc()
    const replica = new Y.Doc()
    const [insert] = emitted(author, () => author.getText('t').insert(0, 'hello'))
    const [remove] = emitted(author, () => author.getText('t').delete(1, 3))
    relay(server, replica, insert!)
    expect(relay(server, replica, remove!)).not.toBeNull()
    expect(replica.getText('t').toString()).toBe('ho')
    expect(relay(server, replica, remove!)).toBeNull()
  })

  test('what goes pending is left out, and returned with the update that completes it', () => {
    const { first, tail, fromB } = twoAuthors()
    const server = new Y.Doc()
    const replica = new Y.Doc()
    relay(server, replica, first)
    // "x" integrates; "y" waits for b's "b", which the server does not have
    const partial = relay(server, replica, tail)
    expect(partial).not.toBeNull()
    expect(server.store.pendingStructs).not.toBeNull()
    expect(server.getText('t').toString()).toBe('ax')
    expect(replica.getText('t').toString()).toBe('ax')
    expect(replica.store.pendingStructs).toBeNull()
    // b's update completes it: the result carries "b" and the "y" that was waiting
    relay(server, replica, fromB)
    expect(server.store.pendingStructs).toBeNull()
    expect(server.getText('t').toString()).toBe('axby')
    expect(replica.getText('t').toString()).toBe('axby')
  })

  test('an update that leaves all of itself pending changes nothing', () => {
    const author = new Y.Doc()
    const [one] = emitted(author, () => author.getText('t').insert(0, 'one'))
    const [two] = emitted(author, () => author.getText('t').insert(3, 'two'))
    const server = new Y.Doc()
    expect(relay(server, new Y.Doc(), two!)).toBeNull()
    const replica = new Y.Doc()
    relay(server, replica, one!)
    expect(replica.getText('t').toString()).toBe('onetwo')
  })

  test('random edits by three authors, delivered late and out of order: the replica ends equal', () => {
    let seed = 7
    const random = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31
      return seed % n
    }
    const authors = [new Y.Doc(), new Y.Doc(), new Y.Doc()]
    const outbox: Uint8Array[] = []
    for (const doc of authors) doc.on('update', (update: Uint8Array, origin: unknown) => { if (origin !== 'sync') outbox.push(update) })
    const server = new Y.Doc()
    const replica = new Y.Doc()
    for (let step = 0; step < 400; step++) {
      const doc = authors[random(3)]!
      const text = doc.getText('t')
      if (text.length > 0 && random(4) === 0) text.delete(random(text.length), 1 + random(Math.min(3, text.length)))
      else text.insert(random(text.length + 1), 'abc'.slice(0, 1 + random(3)))
      // authors hear of each other now and then
      if (random(5) === 0) for (const other of authors) Y.applyUpdate(other, Y.encodeStateAsUpdate(doc), 'sync')
      // the server gets updates late, sometimes swapped
      if (outbox.length > 3) {
        const i = random(2)
        relay(server, replica, outbox.splice(i, 1)[0]!)
      }
    }
    for (const update of outbox.splice(0)) relay(server, replica, update)
    for (const doc of authors) relay(server, replica, Y.encodeStateAsUpdate(doc))
    expect(server.store.pendingStructs).toBeNull()
    expect(replica.getText('t').toString()).toBe(server.getText('t').toString())
    expect(Y.encodeStateVector(replica)).toEqual(Y.encodeStateVector(server))
  })
})
