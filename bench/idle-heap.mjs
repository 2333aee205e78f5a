// Heap and RSS per idle connection of one build, in process: N connections (sync step 1 and
// one awareness state each, 50 per document) to a server of that build, after 100 that come and
// go first. Prints the figures before and after full collections.
//   node bench/idle-heap.mjs <dist> [N=2000] [sqlite|memory] [prefix]
// With `floor` for <dist>: the bare ws relay of floor-server.ts, in process, for comparison; with
// `floor-awareness` the same relay keeping each socket's last awareness message (its AWARENESS=1).
// With a prefix: heap snapshots <prefix>-before/-after.heapsnapshot (diff them by constructor)
// and <prefix>.heapprofile, the sampled allocations (garbage included) while the N connect
// (the sampling itself inflates that run's RSS figures: compare RSS from runs without a prefix).
import { fork } from 'node:child_process'
import { createRequire } from 'node:module'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const require = createRequire(join(here, '..', 'package.json'))
const WebSocket = require('ws')
const encoding = require('lib0/encoding')

const [dist, n = '2000', store = 'sqlite', prefix] = process.argv.slice(2)
const count = Number(n)
const child = fork(join(here, 'idle-heap-server.mjs'), [resolve(dist), store], { execArgv: ['--expose-gc'] })
const ask = msg => new Promise(resolve => { child.once('message', resolve); if (msg !== undefined) child.send(msg) })
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))
const { port } = await ask()

function frame (write) {
  const encoder = encoding.createEncoder()
  write(encoder)
  return encoding.toUint8Array(encoder)
}
const step1 = frame(e => { encoding.writeVarUint(e, 0); encoding.writeVarUint(e, 0); encoding.writeVarUint8Array(e, new Uint8Array([0])) })
const awareness = (clientId, i) => frame(e => {
  encoding.writeVarUint(e, 1)
  encoding.writeVarUint8Array(e, frame(inner => {
    encoding.writeVarUint(inner, 1)
    encoding.writeVarUint(inner, clientId)
    encoding.writeVarUint(inner, 1)
    encoding.writeVarString(inner, JSON.stringify({ user: { name: `User ${i}`, color: '#' + (clientId & 0xffffff).toString(16).padStart(6, '0') }, cursor: { anchor: i % 997, head: i % 997 } }))
  }))
})

async function open (i, prefix) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/${prefix}-${Math.floor(i / 50)}`)
  ws.on('message', () => {})
  ws.on('error', () => {})
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
  ws.send(step1)
  ws.send(awareness(1000 + i, i))
  return ws
}
async function crowd (size, prefix) {
  const sockets = []
  for (let b = 0; b < size; b += 50) sockets.push(...await Promise.all(Array.from({ length: Math.min(50, size - b) }, (_, k) => open(b + k, prefix))))
  return sockets
}

for (const ws of await crowd(100, 'warm')) ws.close()
await sleep(1500)
if (prefix !== undefined) await ask({ cmd: 'snapshot', file: `${prefix}-before.heapsnapshot` })
const before = await ask({ cmd: 'memory' })
if (prefix !== undefined) await ask({ cmd: 'sample' })
const sockets = await crowd(count, 'idle')
await sleep(3000)
if (prefix !== undefined) await ask({ cmd: 'sampled', file: `${prefix}.heapprofile` })
const after = await ask({ cmd: 'memory' })
if (prefix !== undefined) await ask({ cmd: 'snapshot', file: `${prefix}-after.heapsnapshot` })
const per = key => Math.round((after[key] - before[key]) / count)
// where the collected RSS grew: each heap space's pages in memory, and outside the heap
const spaces = Object.fromEntries(Object.keys(after.spaces).map(name => [name, Math.round((after.spaces[name] - (before.spaces[name] ?? 0)) / count)]))
console.log(JSON.stringify({ dist, connections: count, store, heapPerConnection: per('heap'), rssPerConnection: per('rss'), rawHeapPerConnection: per('rawHeap'), rawRssPerConnection: per('rawRss'), externalPerConnection: per('external'), spacesPerConnection: spaces }))
child.send({ cmd: 'exit' })
for (const ws of sockets) ws.terminate()
process.exit(0)
