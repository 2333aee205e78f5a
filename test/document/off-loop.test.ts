import { expect, test } from 'vitest'
import * as Y from 'yjs'
import { foldRows, offLoopLoad, piecesOffLoop, FOLD_INLINE_BYTES } from '../../server/document/off-loop.js'

/** Rows of one document: `count` updates of about 40 KiB of text each, from one client. */
function rows (count: number, seed: number): { rows: Uint8Array[], text: string } {
  const doc = new Y.Doc()
  doc.clientID = seed
  const out: Uint8Array[] = []
  doc.on('update', (update: Uint8Array) => out.push(update))
  for (let i = 0; i < count; i++) doc.getText('t').insert(0, `${seed}:${i} `.repeat(4000))
  return { rows: out, text: doc.getText('t').toString() }
}

const textOf = (update: Uint8Array): string => {
  const doc = new Y.Doc()
  Y.applyUpdate(doc, update)
  return doc.getText('t').toString()
}

test('folds run in worker threads, two at a time, the rest in turn; each gives the document its rows build', { timeout: 60_000 }, async () => {
  const documents = Array.from({ length: 6 }, (_, i) => rows(4, 100 + i))
  for (const { rows } of documents) expect(rows.reduce((sum, row) => sum + row.byteLength, 0)).toBeGreaterThan(FOLD_INLINE_BYTES)
  const expected = documents.map(({ text }) => text)
  let most = 0
  let sawWaiting = false
  const folds = documents.map(({ rows }, i) => foldRows(rows, i % 2 === 0 ? 'snapshot' : 'merge'))
  const all = Promise.all(folds)
  let done = false
  void all.finally(() => { done = true })
  while (!done) {
    const { running, waiting } = offLoopLoad()
    most = Math.max(most, running)
    if (waiting > 0) sawWaiting = true
    await new Promise(resolve => setTimeout(resolve, 1))
  }
  expect((await all).map(textOf)).toEqual(expected)
  expect(most).toBe(2)
  expect(sawWaiting).toBe(true)
  expect(offLoopLoad()).toEqual({ running: 0, waiting: 0 })
})

test('a build waiting for a worker goes before the folds that wait, and is dropped when no longer wanted by its turn', { timeout: 60_000 }, async () => {
  const documents = Array.from({ length: 5 }, (_, i) => rows(4, 200 + i))
  const folds = documents.map(({ rows }) => foldRows(rows, 'merge'))
  // two folds run; three wait; then a build that is wanted and one that no longer is
  expect(offLoopLoad()).toEqual({ running: 2, waiting: 3 })
  const build = rows(4, 300)
  // asked when the build gets its worker: what waits then shows whom it went before
  let waitingAtStart = -1
  const wanted = piecesOffLoop(build.rows, 16 * 1024, () => {
    waitingAtStart = offLoopLoad().waiting
    return true
  })
  let stillWanted = true
  const dropped = piecesOffLoop(build.rows, 16 * 1024, () => stillWanted)
  stillWanted = false
  await Promise.all(folds)
  expect(await dropped).toBeNull()
  // it started at the first free worker, the three folds and the dropped build still waiting
  expect(waitingAtStart).toBe(4)
  const built = new Y.Doc()
  for (const piece of await wanted as Uint8Array[]) Y.applyUpdate(built, piece)
  expect(built.getText('t').toString()).toBe(build.text)
  expect(offLoopLoad()).toEqual({ running: 0, waiting: 0 })
})
