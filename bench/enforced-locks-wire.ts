// Enforced locks over real sockets: the whole server's CPU per delivered update, with and
// without `y:` locks. `node bench/dist/bench/enforced-locks-wire.js [--seconds 8] [--rate 5]`.
//
// The server runs in this process (memory store, so that only the relay path is measured); the
// clients run in a forked child (raw `ws` sockets sending updates made beforehand by real Y.Docs,
// counting the sync updates they receive), so their CPU is never the server's. 10 documents × 20
// clients, each sending `rate` edits a second for `seconds`; each document has 5 guarded texts
// (held by its first five clients, Tandem sessions) and 5 free ones. Workloads as in
// enforced-locks.ts: `none` (no lock taken), `polite`, `blind`.
import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import * as Y from 'yjs'
import WebSocket from 'ws'
import { pino } from 'pino'
import { createServer } from '../server/index.js'
import { writeSyncUpdate, writeTandem, readFrame } from '../shared/messages.js'
import { prng } from './stats.js'

const DOCS = 10
const CLIENTS = 20
const GUARDED = ['g0', 'g1', 'g2', 'g3', 'g4']
const FREE = ['f0', 'f1', 'f2', 'f3', 'f4']
type Mode = 'none' | 'polite' | 'blind'
/** The text of every edit, `[client.edit]`: Yjs writes string content verbatim. */
const MARKER = /\[\d+\.\d+\]/g

function option (name: string, fallback: number): number {
  const index = process.argv.indexOf(`--${name}`)
  return index === -1 ? fallback : Number(process.argv[index + 1])
}

/** The child: connects, takes the locks, sends, counts, reports. */
async function clients (url: string, mode: Mode, seconds: number, rate: number): Promise<void> {
  const random = prng(7)
  const edits = seconds * rate
  let received = 0
  const closes = new Map<number, number>()
  const sockets: WebSocket[][] = []
  const updates: Uint8Array[][][] = []
  for (let d = 0; d < DOCS; d++) {
    const row: WebSocket[] = []
    const docUpdates: Uint8Array[][] = []
    for (let c = 0; c < CLIENTS; c++) {
      const doc = new Y.Doc()
      const list: Uint8Array[] = []
      doc.on('update', (update: Uint8Array) => list.push(update))
      for (let e = 0; e < edits; e++) {
        let name = random() < 0.5 ? GUARDED[Math.floor(random() * 5)]! : FREE[Math.floor(random() * 5)]!
        if (mode !== 'blind' && GUARDED.includes(name) && GUARDED.indexOf(name) !== c) name = FREE[GUARDED.indexOf(name)]!
        doc.getText(name).insert(doc.getText(name).length, `[${c}.${e}]`)
      }
      docUpdates.push(list)
      const tandem = c < 5 ? `?tandem=1&user=h${c}` : ''
      const ws = new WebSocket(`${url}/bench-${d}${tandem}`)
      ws.binaryType = 'nodebuffer'
      // a frame may carry several updates (merged): count the edits' markers in it
      ws.on('message', (data: Buffer) => { if (data[0] === 0 && data[1] === 2) received += data.toString('latin1').match(MARKER)?.length ?? 0 })
      ws.on('close', code => { closes.set(code, (closes.get(code) ?? 0) + 1) })
      row.push(ws)
    }
    sockets.push(row)
    updates.push(docUpdates)
  }
  await Promise.all(sockets.flat().map(ws => new Promise(resolve => ws.once('open', resolve))))
  if (mode !== 'none') {
    await Promise.all(sockets.flatMap(row => row.slice(0, 5).map((ws, c) => new Promise<void>((resolve, reject) => {
      ws.on('message', (data: Buffer) => {
        const frame = readFrame(data)
        if (frame.type !== 'tandem' || frame.message.type !== 'lock-reply') return
        if (frame.message.code === '') resolve()
        else reject(new Error(frame.message.code))
      })
      // after the welcome: the server reads Tandem messages once the session started
      setTimeout(() => ws.send(writeTandem({ type: 'lock-acquire', id: 1, resource: `y:${GUARDED[c]}`, ttlMs: 0, waitMs: 0 })), 200)
    }))))
  }
  process.send?.({ type: 'ready' })
  await new Promise<void>(resolve => process.once('message', () => resolve()))
  // every client at its own seeded phase, as people type
  const intervalMs = 1000 / rate
  const schedule: Array<{ at: number, d: number, c: number, e: number }> = []
  for (let d = 0; d < DOCS; d++) {
    for (let c = 0; c < CLIENTS; c++) {
      const phase = random() * intervalMs
      for (let e = 0; e < edits; e++) schedule.push({ at: phase + e * intervalMs, d, c, e })
    }
  }
  schedule.sort((a, b) => a.at - b.at)
  const start = Date.now()
  for (const { at, d, c, e } of schedule) {
    const wait = start + at - Date.now()
    if (wait > 1) await new Promise(resolve => setTimeout(resolve, wait))
    sockets[d]![c]!.send(writeSyncUpdate(updates[d]![c]![e]!))
  }
  // stragglers
  let last = -1
  while (last !== received) {
    last = received
    await new Promise(resolve => setTimeout(resolve, 500))
  }
  if (closes.size > 0) console.error('closed:', [...closes])
  process.send?.({ type: 'done', received, sent: DOCS * CLIENTS * edits })
  for (const ws of sockets.flat()) ws.terminate()
}

async function measure (mode: Mode, seconds: number, rate: number): Promise<{ cpuUs: number, received: number, sent: number }> {
  const server = createServer({ port: 0, persistence: 'memory', logger: pino({ level: 'silent' }), maxMessagesPerSecond: 0, maxConnectionsPerIp: 0 })
  await server.listen()
  const child = fork(fileURLToPath(import.meta.url), ['--child', server.url, mode, String(seconds), String(rate)])
  const result = await new Promise<{ cpuUs: number, received: number, sent: number }>((resolve, reject) => {
    let started: NodeJS.CpuUsage | undefined
    child.on('message', (message: { type: string, received?: number, sent?: number }) => {
      if (message.type === 'ready') {
        started = process.cpuUsage()
        child.send('go')
      } else if (message.type === 'done') {
        const used = process.cpuUsage(started)
        resolve({ cpuUs: used.user + used.system, received: message.received!, sent: message.sent! })
      }
    })
    child.on('exit', code => { if (code !== 0) reject(new Error(`clients exited with ${code}`)) })
  })
  child.kill()
  await server.close()
  return result
}

if (process.argv[2] === '--child') {
  await clients(process.argv[3]!, process.argv[4] as Mode, Number(process.argv[5]), Number(process.argv[6]))
} else {
  const seconds = option('seconds', 8)
  const rate = option('rate', 5)
  const runs = option('runs', 3)
  console.log(`enforced locks over sockets: ${DOCS} docs x ${CLIENTS} clients, ${rate} edits/s each for ${seconds} s, ${runs} runs (median)`)
  console.log('| workload | server CPU per delivered update | delivered | sent |')
  console.log('|---|---|---|---|')
  const figures = new Map<Mode, number[]>()
  const last = new Map<Mode, { received: number, sent: number }>()
  for (let r = 0; r < runs; r++) {
    for (const mode of ['none', 'polite', 'blind'] as const) {
      const result = await measure(mode, seconds, rate)
      figures.set(mode, [...figures.get(mode) ?? [], result.cpuUs / result.received])
      last.set(mode, result)
    }
  }
  for (const mode of ['none', 'polite', 'blind'] as const) {
    const sorted = [...figures.get(mode)!].sort((a, b) => a - b)
    const median = sorted[Math.floor(sorted.length / 2)]!
    console.log(`| ${mode} | ${median.toFixed(2)} µs (${sorted.map(v => v.toFixed(2)).join(', ')}) | ${last.get(mode)!.received.toLocaleString('en')} | ${last.get(mode)!.sent.toLocaleString('en')} |`)
  }
}
