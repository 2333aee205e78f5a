import { describe, expect, test } from 'vitest'
import * as Y from 'yjs'
import { DocumentRegistry } from '../../server/document/registry.js'
import { UpdateWriter } from '../../server/document/writer.js'
import { SqliteStore } from '../../server/store/sqlite-store.js'
import type { DocumentMember } from '../../server/document/document.js'
import { tempDir, testLogger, waitFor } from '../support/helpers.js'

/** The SQLite store, noting whether two compactions ever ran in the same event-loop turn. */
class WatchedStore extends SqliteStore {
  compactions = 0
  sameTurn = 0
  private inTurn = false

  override async compact (name: string, snapshot?: () => Uint8Array): Promise<void> {
    this.compactions++
    if (this.inTurn) this.sameTurn++
    this.inTurn = true
    setImmediate(() => { this.inTurn = false })
    await super.compact(name, snapshot)
  }
}

const member: DocumentMember = { send () {}, relay () {}, acknowledge () {}, hold: () => ({ done: false }), settle () {}, fail () {}, clientOwner: 'user', durableOwner: true }

describe('compaction', () => {
  test('documents that cross the threshold together are compacted one per turn, and keep their content', async () => {
    const store = new WatchedStore(tempDir())
    const writer = new UpdateWriter(store, testLogger)
    const registry = new DocumentRegistry(store, writer, { compactAfterUpdates: 5, compactAfterBytes: 1 << 30 }, testLogger)
    const authors = Array.from({ length: 20 }, () => new Y.Doc())
    const docs = await Promise.all(authors.map(async (_, i) => {
      const { doc, loaded } = registry.open(`doc-${i}`)
      await loaded
      doc.addMember(member)
      return doc
    }))
    const edit = (round: number): void => {
      authors.forEach((author, i) => {
        const before = Y.encodeStateVector(author)
        author.getText('t').insert(round, String(round % 10))
        ;(docs[i] as (typeof docs)[number]).applyUpdate(Y.encodeStateAsUpdate(author, before), member)
      })
    }
    // five stored updates each, then one more each in a single turn: all twenty cross together
    for (let round = 0; round < 5; round++) {
      edit(round)
      await writer.idle()
    }
    edit(5)
    await waitFor(() => store.compactions === 20, 5_000, 'twenty compactions')
    expect(store.sameTurn).toBe(0)
    await writer.idle()
    for (const [i, author] of authors.entries()) {
      const rows = await store.load(`doc-${i}`)
      expect(rows.length).toBeLessThanOrEqual(2)
      const restored = new Y.Doc()
      for (const row of rows) Y.applyUpdate(restored, row)
      expect(restored.getText('t').toString()).toBe(author.getText('t').toString())
    }
    await store.close()
  })
})
