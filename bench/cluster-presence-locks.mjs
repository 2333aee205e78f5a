// Presence and locks across two instances sharing Redis, against the same on one instance.
// Both servers run in this process (one shared memory store: the point is Redis, not storage).
// Bounded: 100 rounds per figure, well under a minute.
//   npm run build && REDIS_URL=redis://127.0.0.1:6379 node bench/cluster-presence-locks.mjs
import { randomUUID } from 'node:crypto'
import WebSocket from 'ws'
import { createServer, MemoryStore } from '../dist/server/index.js'
import { TandemClient } from '../dist/client/index.js'

const ROUNDS = 100
const redis = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const prefix = `tandem-bench:${randomUUID().slice(0, 8)}:`
const store = new MemoryStore()
const start = async extra => await createServer({ port: 0, persistence: store, logLevel: 'silent', ...extra }).listen()
const single = await start({})
const [a, b] = [await start({ redis, redisPrefix: prefix }), await start({ redis, redisPrefix: prefix })]

const until = async (condition, timeoutMs = 10_000) => {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out')
    await new Promise(resolve => setImmediate(resolve))
  }
}
const pct = (samples, p) => [...samples].sort((x, y) => x - y)[Math.min(samples.length - 1, Math.floor(samples.length * p))]
const report = (what, samples) => console.log(`${what.padEnd(66)} n=${samples.length}  p50 ${pct(samples, 0.5).toFixed(2)} ms  p95 ${pct(samples, 0.95).toFixed(2)} ms`)
const connect = (server, doc, id) => new TandemClient({ url: server.url, document: doc, user: { id, name: id }, WebSocketPolyfill: WebSocket })

/** acquire → the other client sees it; release → the other's queued request is granted. */
async function locks (label, first, second) {
  const doc = `bench-${randomUUID()}`
  const [ada, bob] = [connect(first, doc, 'ada'), connect(second, doc, 'bob')]
  await Promise.all([ada.synced(), bob.synced()])
  const roundTrip = []
  const seen = []
  const handoff = []
  for (let i = 0; i < ROUNDS; i++) {
    let t = performance.now()
    const lock = await ada.locks.acquire(`r${i}`)
    roundTrip.push(performance.now() - t)
    await until(() => bob.locks.holder(`r${i}`) !== undefined)
    seen.push(performance.now() - t)
    const waiting = bob.locks.acquire(`r${i}`, { waitMs: 5_000 })
    // let the request reach the queue before the release
    await new Promise(resolve => setTimeout(resolve, 5))
    t = performance.now()
    await lock.release()
    const bobs = await waiting
    handoff.push(performance.now() - t)
    await bobs.release()
  }
  report(`${label}: acquire round trip`, roundTrip)
  report(`${label}: acquire sent to the other client seeing it`, seen)
  report(`${label}: release to the queued request granted`, handoff)
  ada.destroy()
  bob.destroy()
}

/** a client joins → a watcher sees it; it leaves → the watcher sees it leave. */
async function presence (label, first, second) {
  const doc = `bench-${randomUUID()}`
  const watcher = connect(second, doc, 'watcher')
  await watcher.synced()
  const joined = []
  const left = []
  for (let i = 0; i < ROUNDS / 4; i++) {
    const t = performance.now()
    const client = connect(first, doc, `u${i}`)
    await until(() => watcher.presence.list().some(e => e.userId === `u${i}`))
    joined.push(performance.now() - t)
    const t2 = performance.now()
    await client.leave()
    await until(() => !watcher.presence.list().some(e => e.userId === `u${i}`))
    left.push(performance.now() - t2)
  }
  report(`${label}: connect to the watcher seeing the join`, joined)
  report(`${label}: leave to the watcher seeing it`, left)
  watcher.destroy()
}

await locks('one instance, memory locks', single, single)
await locks('one instance, Redis locks', a, a)
await locks('two instances, Redis locks', a, b)
await presence('one instance', single, single)
await presence('two instances', a, b)
await Promise.all([single.close(), a.close(), b.close()])
