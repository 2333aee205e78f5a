// Server CPU of hostile and large updates, applied in process to a Document as a session would
// (guard, dependency check, integrate). Not a test: run after `npx tsc -p tsconfig.json`:
//   node bench/pending-cost.mjs [10k|flood|frame|all]
import * as Y from 'yjs'
import { pino } from 'pino'
import { Document } from '../dist/server/document/document.js'

const logger = pino({ level: 'silent' })
const member = () => ({ send () {}, relay () {}, acknowledge () {}, hold: () => ({ done: false }), settle () {}, fail () {} })

function docWith () {
  return new Document('bench', logger, () => {})
}

function cpu (fn) {
  const start = process.cpuUsage()
  const wall = performance.now()
  let error = null
  try { fn() } catch (err) { error = err }
  const used = process.cpuUsage(start)
  return { cpuMs: Math.round((used.user + used.system) / 1000), wallMs: Math.round(performance.now() - wall), error: error?.message?.slice(0, 80) ?? null }
}

/** One update of `n` one-character inserts at position 0 in one transaction. */
function inserts (n) {
  const doc = new Y.Doc()
  let update
  doc.on('update', u => { update = u })
  doc.transact(() => { for (let i = 0; i < n; i++) doc.getText('t').insert(0, 'x') })
  return update
}

/** `count` tiny updates of a client that build on an update the server never gets. */
function pendingUpdates (count, clientID) {
  const doc = new Y.Doc()
  doc.clientID = clientID
  const missing = new Y.Doc()
  missing.clientID = clientID + 1_000_000
  missing.getText('t').insert(0, 'hidden')
  Y.applyUpdate(doc, Y.encodeStateAsUpdate(missing))
  const updates = []
  doc.on('update', u => updates.push(u))
  for (let i = 0; i < count; i++) doc.getText('t').insert(1 + (i % 4), 'y')
  return updates
}

/** One frame of `n` items depending on content the server lacks. */
function pendingFrame (n) {
  const doc = new Y.Doc()
  const missing = new Y.Doc()
  missing.getText('t').insert(0, 'hidden')
  Y.applyUpdate(doc, Y.encodeStateAsUpdate(missing))
  let update
  doc.on('update', u => { update = u })
  doc.transact(() => { for (let i = 0; i < n; i++) doc.getText('t').insert(1 + (i % 5), 'z') })
  return update
}

/** One frame of `n` items, each of its own client, each next to content the server lacks. */
function pendingClientsFrame (n) {
  const missing = new Y.Doc()
  missing.getText('t').insert(0, 'hidden')
  const base = Y.encodeStateAsUpdate(missing)
  const updates = []
  for (let i = 0; i < n; i++) {
    const doc = new Y.Doc()
    doc.clientID = 10 + i
    Y.applyUpdate(doc, base)
    doc.on('update', u => updates.push(u))
    doc.getText('t').insert(1 + (i % 5), 'z')
  }
  return Y.mergeUpdates(updates)
}

/** `count` updates that only delete content the server lacks (delete sets of an unknown client). */
function pendingDeletes (count) {
  const author = new Y.Doc()
  author.getText('t').insert(0, 'x'.repeat(count * 2))
  const doc = new Y.Doc()
  Y.applyUpdate(doc, Y.encodeStateAsUpdate(author))
  const updates = []
  doc.on('update', u => updates.push(u))
  for (let i = 0; i < count; i++) doc.getText('t').delete(i, 1)
  return updates
}

const which = process.argv[2] ?? 'all'
if (which === 'clients' || which === 'all') {
  for (const n of [5_000, 20_000]) {
    const update = pendingClientsFrame(n)
    const doc = docWith()
    const r = cpu(() => doc.applyUpdate(update, member()))
    console.log(`pending frame of ${n} items of distinct clients: bytes=${update.byteLength} cpu=${r.cpuMs} ms wall=${r.wallMs} ms ${r.error ?? ''}`)
  }
}
if (which === 'deletes' || which === 'all') {
  const updates = pendingDeletes(3_000)
  let bytes = 0
  for (const u of updates) bytes += u.byteLength
  const doc = docWith()
  const sender = member()
  let refused = 0
  const r = cpu(() => { for (const u of updates) { try { doc.applyUpdate(u, sender) } catch { refused++ } } })
  console.log(`3,000 delete-only updates of content the server lacks: bytes=${bytes} cpu=${r.cpuMs} ms wall=${r.wallMs} ms refused=${refused}`)
}
if (which === '10k' || which === 'all') {
  for (const n of [2_500, 10_000, 20_000]) {
    const update = inserts(n)
    const doc = docWith()
    const r = cpu(() => doc.applyUpdate(update, member()))
    console.log(`inserts at 0, one transaction: n=${n} bytes=${update.byteLength} cpu=${r.cpuMs} ms wall=${r.wallMs} ms ${r.error ?? ''}`)
  }
}
if (which === 'flood' || which === 'all') {
  const doc = docWith()
  const senders = Array.from({ length: 6 }, member)
  const floods = senders.map((_, i) => pendingUpdates(990, 100 + i))
  let bytes = 0
  for (const f of floods) for (const u of f) bytes += u.byteLength
  let refused = 0
  const r = cpu(() => {
    for (let i = 0; i < 990; i++) for (let s = 0; s < 6; s++) {
      try { doc.applyUpdate(floods[s][i], senders[s]) } catch (err) { refused++; if (refused === 1) console.log("  first refusal:", err.message.slice(0, 160)) }
    }
  })
  console.log(`pending flood, 6 x 990 tiny updates: bytes=${bytes} cpu=${r.cpuMs} ms wall=${r.wallMs} ms refused=${refused} ${r.error ?? ''}`)
  const after = new Y.Doc()
  const bystander = cpu(() => { for (let i = 0; i < 100; i++) { after.getText('t').insert(0, 'b') } })
  void bystander
  const honest = new Y.Doc()
  let u
  honest.on('update', x => { u = x })
  honest.getText('t').insert(0, 'h')
  const one = cpu(() => doc.applyUpdate(u, member()))
  console.log(`  one honest update afterwards: cpu=${one.cpuMs} ms`)
}
if (which === 'frame' || which === 'all') {
  const update = pendingFrame(60_000)
  const doc = docWith()
  const r = cpu(() => doc.applyUpdate(update, member()))
  console.log(`pending frame of 60,000 items: bytes=${update.byteLength} cpu=${r.cpuMs} ms wall=${r.wallMs} ms ${r.error ?? ''}`)
  const snapshot = cpu(() => Y.encodeStateAsUpdate(doc.ydoc))
  console.log(`  Y.encodeStateAsUpdate afterwards: ${Y.encodeStateAsUpdate(doc.ydoc).byteLength} bytes`)
  void snapshot
}
