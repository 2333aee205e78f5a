import { expect, onTestFinished, test } from 'vitest'
import * as Y from 'yjs'
import { SqliteStore } from '../../server/store/sqlite-store.js'
import { bigDocumentFile, BIG_SEED, BIG_TEXT } from '../../bench/big-doc.js'
import { docName, tempDir } from '../support/helpers.js'

const MiB = 1024 * 1024

/** The document that applying `updates` in order makes, as text (with formatting) and state vector. */
function contentOf (updates: readonly Uint8Array[]): string {
  const doc = new Y.Doc()
  for (const update of updates) Y.applyUpdate(doc, update)
  const states = [...Y.decodeStateVector(Y.encodeStateVector(doc))].sort((a, b) => a[0] - b[0])
  return JSON.stringify([states, doc.getText(BIG_TEXT).toDelta()])
}

test('compacting a big document without a snapshot folds the updates after its snapshot and keeps the snapshot; once they come to a quarter of it, one row', async () => {
  const { update: head } = bigDocumentFile(10 * MiB, BIG_SEED)
  const store = await SqliteStore.open(tempDir())
  onTestFinished(() => store.close())
  const name = docName('big')
  await store.append([{ name, update: head }])
  const doc = new Y.Doc()
  Y.applyUpdate(doc, head)
  const edits: Uint8Array[] = []
  doc.on('update', (update: Uint8Array) => edits.push(update))
  for (let i = 0; i < 20; i++) doc.getText(BIG_TEXT).insert(i * 7, `edit ${i} `)
  await store.append(edits.map(update => ({ name, update })))
  const before = contentOf(await store.load(name))

  await store.compact(name)
  const folded = await store.load(name)
  expect(folded).toHaveLength(2)
  expect(Buffer.compare(folded[0] as Uint8Array, head)).toBe(0)
  expect(contentOf(folded)).toBe(before)

  // past a quarter of the snapshot: everything merged into one row
  edits.length = 0
  doc.getText(BIG_TEXT).insert(0, 'x'.repeat(3 * MiB))
  await store.append(edits.map(update => ({ name, update })))
  const grown = contentOf(await store.load(name))
  await store.compact(name)
  const merged = await store.load(name)
  expect(merged).toHaveLength(1)
  expect(contentOf(merged)).toBe(grown)
}, 120_000)
