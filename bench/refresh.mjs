// In-band token refresh under load: 5,000 Tandem connections refresh their tokens within one
// second while one writer's edits fan out to 20 readers of another document. Reports the fan-out
// latency before, during and after the refresh burst, and how long the burst took.
//   npm run build && node bench/refresh.mjs [connections=5000] [readers=20] [mode=1000]
// mode: a number of ms: the 5,000 send their `refresh` unasked, evenly spread over that many ms
// (0: all in one go), about 8 s after they are all open; `warned`: each refreshes when the server
// warns it (`token-expiring`), all tokens sharing one exp (the server spreads those warnings over
// a quarter of the warning time: see PROTOCOL.md; this waits about 80 s for them).
// Three processes: the server (dist/server/cli.js), the 5,000 connections (this file, forked
// with `connections`), and the probe (this process), which measures the fan-out latency and is
// never busy with the 5,000. PROFILE_DIR=dir profiles the server (--cpu-prof). The server's
// presence turns users idle after 10 minutes, not 60 s: the 5,000 turning idle together is a
// burst of its own (bench/NOTES.md), which would fall among the warnings of the `warned` mode.
import { fork, spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import WebSocket from 'ws'
import * as Y from 'yjs'
import { SignJWT } from 'jose'
import { readFrame, writeTandem, writeSyncUpdate } from '../dist/shared/messages.js'

const SECRET = 'bench-refresh-secret'
const EDITS_PER_SECOND = 50
const key = new TextEncoder().encode(SECRET)
const sign = (sub, exp) => new SignJWT({ sub }).setProtectedHeader({ alg: 'HS256' }).setIssuedAt().setExpirationTime(exp).sign(key)
const now = () => performance.timeOrigin + performance.now()
/** CPU ms (user + system) of a process, or of one of its threads (Linux /proc; 10 ms ticks). */
const cpuMs = (pid, tid) => {
  try {
    const stat = readFileSync(tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) * 10
  } catch {
    return NaN
  }
}
const open = (url) => new Promise((resolve, reject) => {
  const ws = new WebSocket(url)
  ws.binaryType = 'nodebuffer'
  ws.once('open', () => resolve(ws))
  ws.once('error', reject)
})

if (process.argv[2] === 'connections') await connections(JSON.parse(process.argv[3]))
else await probe()

/** The child: opens the connections, refreshes when told (or warned), reports the times. */
async function connections ({ url, count, exp, warned, spreadMs }) {
  // 100 documents of `count / 100`; each connection holds a second, longer token to refresh with
  const times = { warned: [], sent: [], refreshed: [] }
  const closes = {}
  const refreshers = []
  const connectOne = async (i) => {
    const sub = `user-${i}`
    const [first, second] = await Promise.all([sign(sub, exp), sign(sub, exp + 600)])
    const ws = await open(`${url}/refresh-${i % 100}?tandem=1&token=${first}`)
    const refresh = () => {
      times.sent.push(now())
      ws.send(writeTandem({ type: 'refresh', token: second }))
    }
    ws.on('message', data => {
      if (data[0] !== 100) return
      const frame = readFrame(data)
      if (frame.message.type === 'token-expiring') {
        times.warned.push(now())
        if (warned) refresh()
      } else if (frame.message.type === 'refreshed') {
        times.refreshed.push(now())
      }
    })
    ws.on('close', (code, reason) => { closes[`${code} ${reason}`] = (closes[`${code} ${reason}`] ?? 0) + 1 })
    refreshers.push(refresh)
  }
  for (let i = 0; i < count; i += 100) {
    await Promise.all(Array.from({ length: Math.min(100, count - i) }, (_, j) => connectOne(i + j)))
  }
  process.send({ open: true })
  process.on('message', async message => {
    if (message.burst) {
      // in steps of 10 ms
      const steps = Math.max(1, Math.floor(spreadMs / 10))
      const started = now()
      for (let step = 0; step < steps; step++) {
        const from = Math.floor(step * refreshers.length / steps)
        const to = Math.floor((step + 1) * refreshers.length / steps)
        for (let i = from; i < to; i++) refreshers[i]()
        const next = started + (step + 1) * spreadMs / steps
        if (step < steps - 1) await new Promise(resolve => setTimeout(resolve, Math.max(0, next - now())))
      }
    }
    if (message.report) {
      // exit once the report is written: a large one may take more than one write
      process.send({ times, closes }, () => process.exit(0))
    }
  })
}

/** The parent: starts the server and the connections, probes the fan-out, reports. */
async function probe () {
  const count = Number(process.argv[2] ?? 5_000)
  const readers = Number(process.argv[3] ?? 20)
  const warned = process.argv[4] === 'warned'
  const spreadMs = warned ? 0 : Number(process.argv[4] ?? 1_000)
  // warned: the server warns tokens with over 120 s left 60 s to 45 s before their exp; else the
  // tokens outlive the run
  const exp = Math.floor(Date.now() / 1000) + (warned ? 140 : 3_600)

  const server = spawn(process.execPath, [...(process.env.PROFILE_DIR ? ['--cpu-prof', '--cpu-prof-dir', process.env.PROFILE_DIR] : []), 'dist/server/cli.js', '--port', '0', '--persistence', 'memory', '--auth-secret', SECRET,
    '--max-connections-per-ip', '0', '--max-messages-per-second', '0', '--idle-after', '600000', '--log-level', 'info'], { stdio: ['ignore', 'pipe', 'inherit'] })
  const url = await new Promise((resolve, reject) => {
    createInterface({ input: server.stdout }).on('line', line => {
      const match = /listening on (ws:\/\/[^"\s]+)/.exec(line)
      if (match !== null) resolve(match[1])
    })
    server.once('exit', code => reject(new Error(`server exited with ${code}`)))
  })

  const connectStarted = now()
  const child = fork(new URL(import.meta.url).pathname, ['connections', JSON.stringify({ url, count, exp, warned, spreadMs })])
  const next = () => new Promise(resolve => child.once('message', resolve))
  await next()
  console.log(`${count} connections open in ${((now() - connectStarted) / 1000).toFixed(1)} s; ` +
    (warned ? `tokens warned from about ${new Date((exp - 60) * 1000).toISOString()}` : `refreshing ${count} within ${spreadMs} ms`))

  // the fan-out probe: readers first, then one writer stamping the send time into a map
  const samples = []
  const sockets = []
  const probeToken = await sign('probe', exp + 3600)
  for (let r = 0; r < readers; r++) {
    const doc = new Y.Doc()
    const ws = await open(`${url}/probe?token=${probeToken}`)
    ws.on('message', data => {
      if (data[0] !== 0) return
      const frame = readFrame(data)
      if (frame.type !== 'sync-update' && frame.type !== 'sync-step2') return
      Y.applyUpdate(doc, frame.update)
      const sent = doc.getMap('m').get('t')
      if (frame.type === 'sync-update' && typeof sent === 'number') samples.push({ at: now(), ms: now() - sent })
    })
    sockets.push(ws)
  }
  const writerDoc = new Y.Doc()
  const writer = await open(`${url}/probe?token=${probeToken}`)
  writerDoc.on('update', update => writer.send(writeSyncUpdate(update)))
  const ticker = setInterval(() => writerDoc.getMap('m').set('t', now()), 1000 / EDITS_PER_SECOND)

  // the server's CPU: its event loop's thread (the main thread's id is the pid), and the process
  const cpu = () => ({ at: now(), loop: cpuMs(server.pid, server.pid), all: cpuMs(server.pid) })
  let idle, burst
  if (warned) {
    // the warnings spread over 15 s, then a few seconds for the last refreshes
    await new Promise(resolve => setTimeout(resolve, Math.max(0, (exp - 40) * 1000 - Date.now())))
  } else {
    // 8 s of fan-out first (the last 3 s: the CPU it costs); then the burst and 8 s after it (its
    // CPU: over the first 5 s after the last refresh was sent)
    await new Promise(resolve => setTimeout(resolve, 5_000))
    idle = [cpu()]
    await new Promise(resolve => setTimeout(resolve, 3_000))
    idle.push(cpu())
    burst = [cpu()]
    child.send({ burst: true })
    await new Promise(resolve => setTimeout(resolve, spreadMs + 5_000))
    burst.push(cpu())
    await new Promise(resolve => setTimeout(resolve, 3_000))
  }
  clearInterval(ticker)
  const reported = next()
  child.send({ report: true })
  const { times, closes } = await reported

  const burstStart = Math.min(...(warned ? times.warned : times.sent))
  const burstEnd = Math.max(...times.refreshed)
  const pct = (values, p) => {
    const sorted = [...values].sort((a, b) => a - b)
    return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN
  }
  const show = (what, values) => console.log(`${what.padEnd(40)} n=${String(values.length).padStart(4)}  p50 ${pct(values, 0.5).toFixed(2)} ms  p99 ${pct(values, 0.99).toFixed(2)} ms  max ${Math.max(...values).toFixed(2)} ms`)
  if (Object.keys(closes).length > 0) console.log('closed early:', closes)
  const span = values => values.length === 0 ? 0 : (Math.max(...values) - Math.min(...values)).toFixed(0)
  console.log(`refreshes: ${times.warned.length} warned within ${span(times.warned)} ms, ${times.sent.length} sent within ${span(times.sent)} ms, ` +
    `${times.refreshed.length} refreshed within ${span(times.refreshed)} ms; first ${warned ? 'warning' : 'sent'} to last refreshed ${(burstEnd - burstStart).toFixed(0)} ms`)
  if (!warned) {
    // the burst's own CPU: the burst window's less the fan-out's alone over as long
    const rate = (span, key) => (span[1][key] - span[0][key]) / (span[1].at - span[0].at)
    const ms = key => ((rate(burst, key) - rate(idle, key)) * (burst[1].at - burst[0].at)).toFixed(0)
    console.log(`server CPU for the burst (beyond the fan-out's): event loop ${ms('loop')} ms, whole process ${ms('all')} ms`)
  }
  show('fan-out latency, before the burst', samples.filter(s => s.at < burstStart - 500 && s.at > burstStart - 10_500).map(s => s.ms))
  show('fan-out latency, during the burst', samples.filter(s => s.at >= burstStart && s.at <= burstEnd).map(s => s.ms))
  show('fan-out latency, after the burst', samples.filter(s => s.at > burstEnd + 500).map(s => s.ms))

  for (const ws of sockets) ws.terminate()
  writer.terminate()
  server.kill('SIGTERM')
}
