import { readFileSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import WebSocket from 'ws'
import * as Y from 'yjs'
import { pathToFileURL } from 'node:url'
import { ROOT } from './servers.js'

// the build in dist/ (npm run build), whose SQLite worker file sits beside it
const { createServer } = await import(pathToFileURL(join(ROOT, 'dist', 'server', 'index.js')).href) as typeof import('../server/index.js')
const { SqliteStore } = await import(pathToFileURL(join(ROOT, 'dist', 'server', 'store', 'sqlite-store.js')).href) as typeof import('../server/store/sqlite-store.js')

/**
 * `node --expose-gc bench/dist/bench/big-inprocess.js FILE`: a Tandem server in this process
 * over a SQLite store holding FILE (a Yjs update, e.g. from bench/big-doc.ts's cache), and one
 * raw client that asks for it. Prints when the document is built (ready), and the event loop's
 * longest stall (1 ms timer) while the document loads, while its pieces go out, while it sits loaded, and while it unloads after an
 * edit (compaction), and while the store merges a third of its size more into it (a full
 * compaction in the SQLite worker); then the server's heap and RSS with the document loaded, over the encoded
 * size, beside a bare Y.Doc of the same update. Run it on a quiet machine: other processes'
 * bursts show up as stalls too.
 */
const file = process.argv[2]
if (file === undefined) throw new Error('usage: node --expose-gc big-inprocess.js FILE')
const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) throw new Error('run with --expose-gc')
const update = new Uint8Array(readFileSync(file))
const size = update.byteLength
const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

const dir = mkdtempSync(join(tmpdir(), 'big-inprocess-'))
const store = await SqliteStore.open(dir)
await store.append([{ name: 'big', update }])
await store.close()
const server = createServer({ port: 0, persistence: 'sqlite', dataDir: dir, logLevel: 'warn' })
await server.listen()
gc(); gc()
const base = process.memoryUsage()
const ratio = (label: string): void => {
  gc(); gc()
  const now = process.memoryUsage()
  console.log(`${label}: heap ${((now.heapUsed - base.heapUsed) / size).toFixed(2)}×, RSS ${((now.rss - base.rss) / size).toFixed(2)}× the encoded size`)
}

let phase = 'load'
const stalls = new Map<string, { max: number, over50: number }>()
let last = performance.now()
let built = 0
const timer = setInterval(() => {
  const now = performance.now()
  const gap = now - last
  last = now
  let stall = stalls.get(phase)
  if (stall === undefined) stalls.set(phase, stall = { max: 0, over50: 0 })
  stall.max = Math.max(stall.max, gap)
  if (gap > 50) stall.over50++
  if (built === 0 && server.documents.get('big')?.status === 'ready') {
    built = now - started
    console.log(`document built after ${built.toFixed(0)} ms`)
  }
}, 1)

const started = performance.now()
const ws = new WebSocket(`${server.url}/big`, { maxPayload: 2 ** 31 - 1 })
let pieces = 0
let synced = false
ws.on('open', () => ws.send(Uint8Array.of(0, 0, 1, 0))) // sync step 1, empty state vector
ws.on('message', (data: Buffer) => {
  if (data[0] !== 0) return
  if (data[1] === 2 && data.length > 1024 && pieces++ === 0) {
    phase = 'pieces'
    console.log(`first piece after ${(performance.now() - started).toFixed(0)} ms`)
  }
  if (data[1] === 1) synced = true
})
while (!synced) await sleep(20)
console.log(`whole document after ${(performance.now() - started).toFixed(0)} ms, ${pieces} pieces before the step 2`)
phase = 'loaded'
await sleep(1_000)
// the forced collections stall the loop themselves: not counted
phase = 'measuring'
ratio('server with the document loaded')
// an edit (another client's), then both leave: the document is stored, compacted and unloaded
const editor = new Y.Doc()
editor.getText('text').insert(0, 'an edit')
const other = new WebSocket(`${server.url}/big`)
await new Promise(resolve => other.once('open', resolve))
const frame = Y.encodeStateAsUpdate(editor)
other.send(Uint8Array.from([0, 2, ...varUint(frame.length), ...frame]))
await sleep(500)
phase = 'unload'
ws.close()
other.close()
await sleep(6_000)
await server.close()
// a full compaction: updates past a quarter of the snapshot make the worker merge the two
phase = 'measuring'
const writer = await SqliteStore.open(dir)
const paste = new Y.Doc()
paste.getText('text').insert(0, 'p'.repeat(Math.ceil(size / 3)))
await writer.append([{ name: 'big', update: Y.encodeStateAsUpdate(paste) }])
phase = 'compact'
const compactStarted = performance.now()
await writer.compact('big')
console.log(`full compaction in the worker: ${(performance.now() - compactStarted).toFixed(0)} ms`)
await writer.close()
clearInterval(timer)
stalls.delete('measuring')
for (const [name, stall] of stalls) console.log(`${name}: longest stall ${stall.max.toFixed(0)} ms, ${stall.over50} over 50 ms`)
rmSync(dir, { recursive: true, force: true })

gc(); gc()
const bare = process.memoryUsage()
const doc = new Y.Doc()
Y.applyUpdate(doc, update)
gc(); gc()
const applied = process.memoryUsage()
console.log(`a bare Y.Doc: heap ${((applied.heapUsed - bare.heapUsed) / size).toFixed(2)}× the encoded size`)
process.exit(0)

function varUint (n: number): number[] {
  const bytes: number[] = []
  while (n > 0x7f) {
    bytes.push(0x80 | (n & 0x7f))
    n = Math.floor(n / 128)
  }
  bytes.push(n)
  return bytes
}
