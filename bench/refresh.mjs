// In-band token refresh under load: 5,000 Tandem connections refresh their tokens within one
// second while one writer's edits fan out to 20 readers of another document. Reports the fan-out
// latency before, during and after the refresh burst, and how long the burst took.
//   npm run build && node bench/refresh.mjs [connections=5000] [readers=20] [mode=1000]
// mode: a number of ms: the load generator sends every connection's `refresh` itself, evenly
// spread over that many ms (0: all in one go), about 8 s after the connections are open; `warned`:
// each connection refreshes when the server warns it (`token-expiring`), with tokens sharing one
// exp (the server spreads those warnings: see PROTOCOL.md; this waits about 80 s for them).
// The server is its own process (dist/server/cli.js); this process is the load generator.
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import WebSocket from 'ws'
import * as Y from 'yjs'
import { SignJWT } from 'jose'
import { readFrame, writeTandem, writeSyncUpdate } from '../dist/shared/messages.js'

const CONNECTIONS = Number(process.argv[2] ?? 5_000)
const READERS = Number(process.argv[3] ?? 20)
const WARNED = process.argv[4] === 'warned'
const SPREAD_MS = WARNED ? 0 : Number(process.argv[4] ?? 1_000)
const SECRET = 'bench-refresh-secret'
const EDITS_PER_SECOND = 50
// the server warns 60 s to 45 s before exp tokens with over 120 s left when they connect (20 s
// to connect them all); in the other modes, the tokens outlive the run
const LIFETIME_S = WARNED ? 140 : 3_600

const key = new TextEncoder().encode(SECRET)
const sign = (sub, exp) => new SignJWT({ sub }).setProtectedHeader({ alg: 'HS256' }).setIssuedAt().setExpirationTime(exp).sign(key)

const server = spawn(process.execPath, [...(process.env.PROFILE_DIR ? ['--cpu-prof', '--cpu-prof-dir', process.env.PROFILE_DIR] : []), 'dist/server/cli.js', '--port', '0', '--persistence', 'memory', '--auth-secret', SECRET,
  '--max-connections-per-ip', '0', '--max-messages-per-second', '0', '--log-level', 'info'], { stdio: ['ignore', 'pipe', 'inherit'] })
const url = await new Promise((resolve, reject) => {
  createInterface({ input: server.stdout }).on('line', line => {
    const match = /listening on (ws:\/\/[^"\s]+)/.exec(line)
    if (match !== null) resolve(match[1])
  })
  server.once('exit', code => reject(new Error(`server exited with ${code}`)))
})

const open = (path) => new Promise((resolve, reject) => {
  const ws = new WebSocket(`${url}/${path}`)
  ws.binaryType = 'nodebuffer'
  ws.once('open', () => resolve(ws))
  ws.once('error', reject)
})

// the 5,000: 100 documents of 50; each answers `token-expiring` with a pre-signed token
const exp = Math.floor(Date.now() / 1000) + LIFETIME_S
const refreshes = { warned: [], sent: [], refreshed: [] }
const sockets = []
const connectOne = async (i) => {
  const sub = `user-${i}`
  const [first, second] = await Promise.all([sign(sub, exp), sign(sub, exp + 600)])
  const ws = await open(`refresh-${i % 100}?tandem=1&token=${first}`)
  ws.on('message', data => {
    if (data[0] !== 100) return
    const frame = readFrame(data)
    if (frame.message.type === 'token-expiring') {
      refreshes.warned.push(performance.now())
      if (WARNED) ws.send(writeTandem({ type: 'refresh', token: second }))
    } else if (frame.message.type === 'refreshed') {
      refreshes.refreshed.push(performance.now())
    }
  })
  ws.on('close', (code, reason) => { closes.set(`${code} ${reason}`, (closes.get(`${code} ${reason}`) ?? 0) + 1) })
  sockets.push(ws)
  refreshers.push(() => {
    refreshes.sent.push(performance.now())
    ws.send(writeTandem({ type: 'refresh', token: second }))
  })
}
const refreshers = []
const closes = new Map()
const connectStarted = performance.now()
for (let i = 0; i < CONNECTIONS; i += 100) {
  await Promise.all(Array.from({ length: Math.min(100, CONNECTIONS - i) }, (_, j) => connectOne(i + j)))
}
console.log(`${CONNECTIONS} connections open in ${((performance.now() - connectStarted) / 1000).toFixed(1)} s; ` +
  (WARNED ? `tokens warned from about ${new Date((exp - 60) * 1000).toISOString()}` : `refreshing ${CONNECTIONS} within ${SPREAD_MS} ms`))

// the fan-out probe: readers first, then one writer stamping the send time into a map
const samples = []
const probeToken = await sign('probe', exp + 3600)
for (let r = 0; r < READERS; r++) {
  const doc = new Y.Doc()
  const ws = await open(`probe?token=${probeToken}`)
  ws.on('message', data => {
    if (data[0] !== 0) return
    const frame = readFrame(data)
    if (frame.type !== 'sync-update' && frame.type !== 'sync-step2') return
    Y.applyUpdate(doc, frame.update)
    const sent = doc.getMap('m').get('t')
    if (frame.type === 'sync-update' && typeof sent === 'number') samples.push({ at: performance.now(), ms: performance.now() + performance.timeOrigin - sent })
  })
  sockets.push(ws)
}
const writerDoc = new Y.Doc()
const writer = await open(`probe?token=${probeToken}`)
writerDoc.on('update', update => writer.send(writeSyncUpdate(update)))
const ticker = setInterval(() => writerDoc.getMap('m').set('t', performance.now() + performance.timeOrigin), 1000 / EDITS_PER_SECOND)

if (WARNED) {
  await new Promise(resolve => setTimeout(resolve, Math.max(0, (exp - 60) * 1000 - Date.now())))
} else {
  // 8 s of fan-out first; then the burst, in steps of 10 ms
  await new Promise(resolve => setTimeout(resolve, 8_000))
  const steps = Math.max(1, Math.floor(SPREAD_MS / 10))
  for (let step = 0; step < steps; step++) {
    const from = Math.floor(step * refreshers.length / steps)
    const to = Math.floor((step + 1) * refreshers.length / steps)
    for (let i = from; i < to; i++) refreshers[i]()
    if (step < steps - 1) await new Promise(resolve => setTimeout(resolve, SPREAD_MS / steps))
  }
}
const deadline = Date.now() + (WARNED ? 30_000 : 15_000)
while (refreshes.refreshed.length < CONNECTIONS && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 100))
// a few seconds after, for the comparison
await new Promise(resolve => setTimeout(resolve, 3_000))
clearInterval(ticker)

const burstStart = Math.min(...(WARNED ? refreshes.warned : refreshes.sent))
const burstEnd = Math.max(...refreshes.refreshed)
const pct = (values, p) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN
}
const show = (what, values) => console.log(`${what.padEnd(40)} n=${String(values.length).padStart(4)}  p50 ${pct(values, 0.5).toFixed(2)} ms  p99 ${pct(values, 0.99).toFixed(2)} ms  max ${Math.max(...values).toFixed(2)} ms`)
if (closes.size > 0) console.log('closed early:', Object.fromEntries(closes))
const span = values => values.length === 0 ? 0 : (Math.max(...values) - Math.min(...values)).toFixed(0)
console.log(`refreshes: ${refreshes.warned.length} warned within ${span(refreshes.warned)} ms, ${refreshes.sent.length} sent unwarned within ${span(refreshes.sent)} ms, ` +
  `${refreshes.refreshed.length} refreshed within ${span(refreshes.refreshed)} ms; first ${WARNED ? 'warning' : 'sent'} to last refreshed ${(burstEnd - burstStart).toFixed(0)} ms`)
show('fan-out latency, before the burst', samples.filter(s => s.at < burstStart - 500 && s.at > burstStart - 10_500).map(s => s.ms))
show('fan-out latency, during the burst', samples.filter(s => s.at >= burstStart && s.at <= burstEnd).map(s => s.ms))
show('fan-out latency, after the burst', samples.filter(s => s.at > burstEnd + 500).map(s => s.ms))

for (const ws of sockets) ws.terminate()
writer.terminate()
server.kill('SIGTERM')
