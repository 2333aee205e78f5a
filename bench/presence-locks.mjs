// Presence, locks and acknowledgements, measured against a real server on loopback.
// Bounded: 20 clients, a few hundred operations, well under a minute.
//   npm run build && node bench/presence-locks.mjs
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import WebSocket from 'ws'
import { createServer } from '../dist/server/index.js'
import { TandemClient } from '../dist/client/index.js'

const CLIENTS = 20
const OPS = 200
const RESUMES = 10

const dir = mkdtempSync(join(tmpdir(), 'tandem-bench-'))
const server = createServer({ port: 0, persistence: 'sqlite', dataDir: dir, logLevel: 'silent', reconnectGraceMs: 10_000 })
await server.listen()
const doc = `bench-${Date.now()}`
const connect = (id, extra = {}) => new TandemClient({ url: server.url, document: doc, user: { id, name: id }, WebSocketPolyfill: WebSocket, ...extra })

const until = async (condition, timeoutMs = 10_000) => {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out')
    await new Promise(resolve => setTimeout(resolve, 1))
  }
}
const pct = (samples, p) => {
  const sorted = [...samples].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]
}
const report = (what, samples) => console.log(`${what.padEnd(44)} n=${String(samples.length).padStart(3)}  p50 ${pct(samples, 0.5).toFixed(2)} ms  p95 ${pct(samples, 0.95).toFixed(2)} ms  max ${Math.max(...samples).toFixed(2)} ms`)

let t = performance.now()
const clients = Array.from({ length: CLIENTS }, (_, i) => connect(`user-${i}`))
await Promise.all(clients.map(c => c.synced()))
await until(() => clients.every(c => c.presence.list().length === CLIENTS))
console.log(`${CLIENTS} clients joined and all see ${CLIENTS} users: ${(performance.now() - t).toFixed(1)} ms`)

const [a, ...others] = clients
const lockRoundTrips = []
for (let i = 0; i < OPS; i++) {
  t = performance.now()
  const lock = await a.locks.acquire(`block:${i % 10}`)
  await lock.release()
  lockRoundTrips.push(performance.now() - t)
}
report('acquire + release (uncontended)', lockRoundTrips)

const handoffs = []
const first = await a.locks.acquire('hot')
const queue = others.slice(0, 10).map(c => c.locks.acquire('hot', { waitMs: 30_000 }))
// let the ten requests reach the queue (peeking into the in-memory lock table)
await until(() => server.collaboration.locks.docs.get(doc)?.get('hot')?.waiters.length === 10)
let previous = first
for (const pending of queue) {
  t = performance.now()
  await previous.release()
  previous = await pending
  handoffs.push(performance.now() - t)
}
await previous.release()
report('FIFO hand-off (release -> next granted)', handoffs)

const flushes = []
const text = a.doc.getText('t')
for (let i = 0; i < OPS; i++) {
  t = performance.now()
  text.insert(text.length, `${i} `)
  await a.flushed()
  flushes.push(performance.now() - t)
}
report('edit -> flushed() (SQLite, durable ack)', flushes)

const watcher = clients[CLIENTS - 1]
const resumer = connect('resumer', { maxBackoffTimeMs: 50 })
await resumer.synced()
await until(() => watcher.presence.list().some(u => u.userId === 'resumer'))
const resumes = []
for (let i = 0; i < RESUMES; i++) {
  const status = () => watcher.presence.list().find(u => u.userId === 'resumer')?.status
  t = performance.now()
  resumer.provider.ws.terminate()
  await until(() => status() === 'reconnecting')
  await until(() => status() === 'active')
  resumes.push(performance.now() - t)
}
report('drop -> resumed, seen by another client', resumes)

for (const c of [...clients, resumer]) c.destroy()
await server.close()
rmSync(dir, { recursive: true, force: true })
