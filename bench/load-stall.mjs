// How long reading a big document from the store holds the event loop (a 1 ms timer's greatest
// lateness while `store.load` runs), on SQLite and PostgreSQL; the document is MiB of typed text
// (bench/big-doc.ts) stored as one row.
//   node bench/load-stall.mjs [MiB=10] [sqlite,postgres]
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SqliteStore } from '../dist/server/store/sqlite-store.js'
import { PostgresStore } from '../dist/server/store/postgres-store.js'
import { bigDocumentFile, BIG_SEED } from './dist/bench/big-doc.js'

const sizes = (process.argv[2] ?? '10').split(',').map(Number)
const kinds = (process.argv[3] ?? 'sqlite,postgres').split(',')
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))
const open = {
  sqlite: async () => await SqliteStore.open(mkdtempSync(join(tmpdir(), 'load-stall-'))),
  postgres: async () => await PostgresStore.open(process.env.TANDEM_BENCH_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432/test', { schema: `load_stall_${process.pid}_${Date.now()}` })
}
for (const kind of kinds) {
  for (const mib of sizes) {
    const { update } = bigDocumentFile(Math.round(mib * 1024 * 1024), BIG_SEED)
    const store = await open[kind]()
    await store.append([{ name: 'big', update }])
    for (let run = 0; run < 3; run++) {
      let worst = 0
      let done = false
      const started = performance.now()
      const loading = store.load('big').then(rows => { done = true; return rows })
      while (!done) {
        const t = performance.now()
        await sleep(1)
        worst = Math.max(worst, performance.now() - t - 1)
      }
      const rows = await loading
      const bytes = rows.reduce((sum, row) => sum + row.byteLength, 0)
      console.log(`${kind} ${mib} MiB: load ${(performance.now() - started).toFixed(0)} ms, event loop's longest stall ${worst.toFixed(1)} ms, ${bytes === update.byteLength ? 'bytes equal' : 'BYTES DIFFER'}`)
    }
    await store.close()
  }
}
