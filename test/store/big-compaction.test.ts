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

/** A document built from `head`, and the updates of the edits made to it from then on. */
function editing (head: Uint8Array): { doc: Y.Doc, edits: Uint8Array[] } {
  const doc = new Y.Doc()
  Y.applyUpdate(doc, head)
  const edits: Uint8Array[] = []
  doc.on('update', (update: Uint8Array) => edits.push(update))
  return { doc, edits }
}

test('compacting a big document without a snapshot folds the updates after its snapshot and keeps the snapshot; once they come to a quarter of it, one row', async () => {
  const { update: head } = bigDocumentFile(10 * MiB, BIG_SEED)
  const store = await SqliteStore.open(tempDir())
  onTestFinished(() => store.close())
  const name = docName('big')
  await store.append([{ name, update: head }])
  const { doc, edits } = editing(head)
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

test('a document compacted without a snapshot is folded off the SQLite worker: other documents commit meanwhile, and an update appended during the fold is kept', async () => {
  // 2 MiB of typed text and an edit: folded into a snapshot (a Y.Doc), 0.1-0.5 s of work
  const { update: head } = bigDocumentFile(2 * MiB, BIG_SEED)
  const store = await SqliteStore.open(tempDir())
  onTestFinished(() => store.close())
  const name = docName('big')
  const { doc, edits } = editing(head)
  doc.getText(BIG_TEXT).insert(0, 'first ')
  await store.append([{ name, update: head }, { name, update: edits[0] as Uint8Array }])

  const order: string[] = []
  const compacted = store.compact(name).then(() => order.push('compacted'))
  // sent to the worker after the compaction: before, they waited for its whole fold
  doc.getText(BIG_TEXT).insert(0, 'during ')
  const during = store.append([{ name, update: edits[1] as Uint8Array }]).then(() => order.push('same document'))
  const other = store.append([{ name: docName('other'), update: Y.encodeStateAsUpdate(new Y.Doc()) }]).then(() => order.push('other document'))
  await Promise.all([compacted, during, other])
  expect(order.indexOf('other document')).toBeLessThan(order.indexOf('compacted'))
  expect(order.indexOf('same document')).toBeLessThan(order.indexOf('compacted'))

  // the rows read were folded into one; the update appended meanwhile is its own row, after it
  const rows = await store.load(name)
  expect(rows).toHaveLength(2)
  expect(contentOf(rows)).toBe(contentOf([head, ...edits]))
  expect(doc.getText(BIG_TEXT).toString().startsWith('during first ')).toBe(true)
}, 120_000)

test('two connections to the file compacting the same document at once leave it as one row: the second finds the rows it read replaced', async () => {
  const { update: head } = bigDocumentFile(2 * MiB, BIG_SEED)
  const dir = tempDir()
  const one = await SqliteStore.open(dir)
  onTestFinished(() => one.close())
  const two = await SqliteStore.open(dir)
  onTestFinished(() => two.close())
  const name = docName('big')
  const { doc, edits } = editing(head)
  doc.getText(BIG_TEXT).insert(0, 'edit ')
  await one.append([{ name, update: head }, { name, update: edits[0] as Uint8Array }])
  // both read the same two rows; the second to finish finds them replaced and stores nothing
  await Promise.all([one.compact(name), two.compact(name)])
  const rows = await one.load(name)
  expect(rows).toHaveLength(1)
  expect(contentOf(rows)).toBe(contentOf([head, ...edits]))
}, 120_000)
