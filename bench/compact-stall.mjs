// How much the compaction of one document holds up the others: appends of small updates to
// another document every 2 ms, their latency (p50, p99, max), and the event loop's longest stall,
// without and during the compaction (without a snapshot, as the registry asks for documents of
// 512 KiB or more) of a document of MiB typed text (bench/big-doc.ts) stored as a snapshot and
// one edit; on SQLite and PostgreSQL (TANDEM_BENCH_POSTGRES, default postgres://postgres@127.0.0.1:5432/test).
//   node bench/compact-stall.mjs [MiB=2,3.5] [sqlite,postgres]
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as Y from 'yjs'
import { SqliteStore } from '../dist/server/store/sqlite-store.js'
import { PostgresStore } from '../dist/server/store/postgres-store.js'
import { bigDocumentFile, BIG_SEED } from './dist/bench/big-doc.js'

const sizes = (process.argv[2] ?? '2,3.5').split(',').map(Number)
const kinds = (process.argv[3] ?? 'sqlite,postgres').split(',')
const open = {
  sqlite: async () => await SqliteStore.open(mkdtempSync(join(tmpdir(), 'compact-stall-'))),
  postgres: async () => await PostgresStore.open(process.env.TANDEM_BENCH_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432/test', { schema: `compact_stall_${process.pid}_${Date.now()}` })
}
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))
const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]

function smallUpdate (i) {
  const doc = new Y.Doc()
  doc.clientID = 1000 + i
  doc.getText('t').insert(0, 'x')
  return Y.encodeStateAsUpdate(doc)
}

/** Appends to `name` every 2 ms until `until` resolves; the latency of each. */
async function appendsWhile (store, name, until) {
  const latencies = []
  let done = false
  until.then(() => { done = true })
  for (let i = 0; !done; i++) {
    const started = performance.now()
    await store.append([{ name, update: smallUpdate(i) }])
    latencies.push(performance.now() - started)
    await sleep(2)
  }
  return latencies.sort((a, b) => a - b)
}

/** The event loop's longest stall (ms) until `until` resolves: a 1 ms timer's greatest lateness. */
async function stallWhile (until) {
  let worst = 0
  let done = false
  until.then(() => { done = true })
  while (!done) {
    const t = performance.now()
    await sleep(1)
    worst = Math.max(worst, performance.now() - t - 1)
  }
  return worst
}

const fmt = l => `n ${l.length}, p50 ${pct(l, 0.5).toFixed(2)} ms, p99 ${pct(l, 0.99).toFixed(2)} ms, max ${l[l.length - 1].toFixed(1)} ms`
for (const kind of kinds) {
  for (const mib of sizes) {
    const { update } = bigDocumentFile(Math.round(mib * 1024 * 1024), BIG_SEED)
    const store = await open[kind]()
    const big = `big-${mib}`
    await store.append([{ name: big, update }])
    await store.append([{ name: big, update: smallUpdate(1) }])
    const calm = sleep(1500)
    const [quiet, quietStall] = await Promise.all([appendsWhile(store, 'other', calm), stallWhile(calm)])
    let compactMs = 0
    const compacting = (async () => { await sleep(200); const t = performance.now(); await store.compact(big); compactMs = performance.now() - t; await sleep(200) })()
    const [during, duringStall] = await Promise.all([appendsWhile(store, 'other', compacting), stallWhile(compacting)])
    console.log(`${kind} ${mib} MiB (${update.byteLength} B): compaction ${compactMs.toFixed(0)} ms; event loop's longest stall ${quietStall.toFixed(1)} -> ${duringStall.toFixed(1)} ms; other document's appends without: ${fmt(quiet)}; during: ${fmt(during)}`)
    await store.close()
  }
}
