/**
 * Cross-instance update latency against single-instance latency, loopback only.
 *
 * Starts two real `tandem` processes (dist/server/cli.js) sharing one PostgreSQL schema (created
 * and dropped here) and one Redis (a unique key prefix), connects stock y-websocket clients, and
 * times one edit at a time from a writer's insert to the moment a reader's document has it:
 * reader on the writer's instance (single-instance path: store, then relay) and reader on the
 * other instance (store, publish, Redis, apply, relay), alternating so that both paths see the
 * same machine load. Bounded: SAMPLES edits per path, 60 s. With BENCH_PERSISTENCE=memory each
 * instance keeps its own memory store, which isolates what the bus adds.
 *
 *   npm run build && npx tsc -p bench/tsconfig.cross-instance.json
 *   node dist/bench-cross-instance/bench/cross-instance.js
 *
 * Environment: BENCH_POSTGRES (postgres://postgres@127.0.0.1:5432/test), BENCH_REDIS
 * (redis://127.0.0.1:6379), BENCH_SAMPLES (300), BENCH_PERSISTENCE (postgres | memory),
 * BENCH_CLI (dist/server/cli.js: another build's, for an A/B).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { randomUUID } from 'node:crypto'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'
import pg from 'pg'

const POSTGRES = process.env.BENCH_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432/test'
const REDIS = process.env.BENCH_REDIS ?? 'redis://127.0.0.1:6379'
const SAMPLES = Math.min(2_000, Number(process.env.BENCH_SAMPLES ?? 300))
const PERSISTENCE = process.env.BENCH_PERSISTENCE === 'memory' ? 'memory' : 'postgres'
const DEADLINE = Date.now() + 60_000
const CLI = process.env.BENCH_CLI ?? 'dist/server/cli.js'

const children: ChildProcess[] = []

async function tandem (args: string[]): Promise<string> {
  const child = spawn(process.execPath, [CLI, '--port', '0', '--log-level', 'info', ...args], { stdio: ['ignore', 'pipe', 'inherit'] })
  children.push(child)
  return await new Promise((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', line => {
      const match = /listening on (ws:\/\/[^"\s]+)/.exec(line)
      if (match !== null) resolve(match[1] as string)
    })
    child.once('exit', code => reject(new Error(`tandem exited with ${code}`)))
  })
}

function client (url: string, name: string): { doc: Y.Doc, provider: WebsocketProvider } {
  const doc = new Y.Doc()
  const provider = new WebsocketProvider(url, name, doc, { WebSocketPolyfill: WebSocket as unknown as typeof globalThis.WebSocket, disableBc: true })
  return { doc, provider }
}

function until (condition: () => boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = (): void => {
      if (condition()) return resolve()
      if (Date.now() > DEADLINE) return reject(new Error('bench deadline passed'))
      setImmediate(check)
    }
    check()
  })
}

/** Times one edit from the writer's insert to the reader having it. */
async function once (writer: Y.Doc, reader: Y.Doc): Promise<number> {
  const rText = reader.getText('t')
  const want = rText.length + 1
  const arrived = new Promise<number>(resolve => {
    const onUpdate = (): void => {
      if (rText.length < want) return
      reader.off('update', onUpdate)
      resolve(performance.now())
    }
    reader.on('update', onUpdate)
  })
  const started = performance.now()
  writer.getText('t').insert(0, 'x')
  const done = await arrived
  return done - started
}

/** Alternates single- and cross-instance edits, `count` of each. */
async function measure (writer: Y.Doc, local: Y.Doc, remote: Y.Doc, count: number): Promise<{ single: number[], cross: number[] }> {
  const single: number[] = []
  const cross: number[] = []
  for (let i = 0; i < count && Date.now() < DEADLINE; i++) {
    single.push(await once(writer, local))
    await until(() => remote.getText('t').length === writer.getText('t').length)
    cross.push(await once(writer, remote))
    await until(() => local.getText('t').length === writer.getText('t').length)
  }
  return { single, cross }
}

function percentile (sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN
}

function report (label: string, times: number[]): void {
  const sorted = [...times].sort((a, b) => a - b)
  console.log(`${label.padEnd(16)} n=${String(sorted.length).padEnd(5)} p50=${percentile(sorted, 0.5).toFixed(2)} ms  p99=${percentile(sorted, 0.99).toFixed(2)} ms  max=${(sorted.at(-1) ?? NaN).toFixed(2)} ms`)
}

async function main (): Promise<void> {
  const schema = `tandem_bench_${randomUUID().replace(/-/g, '').slice(0, 12)}`
  const prefix = `tandem-bench:${randomUUID().slice(0, 8)}:`
  const persistence = PERSISTENCE === 'memory' ? 'memory' : `${POSTGRES}?schema=${schema}`
  const common = ['--persistence', persistence, '--redis', REDIS, '--redis-prefix', prefix]
  try {
    const [one, two] = [await tandem(common), await tandem(common)]
    const name = `bench-${randomUUID()}`
    const writer = client(one, name)
    const local = client(one, name)
    const remote = client(two, name)
    await until(() => writer.provider.synced && local.provider.synced && remote.provider.synced)
    await measure(writer.doc, local.doc, remote.doc, 20) // warm-up
    const { single, cross } = await measure(writer.doc, local.doc, remote.doc, SAMPLES)
    console.log(`update latency, stock y-websocket clients, ${PERSISTENCE} store, Redis bus, loopback (node ${process.version})`)
    report('single-instance', single)
    report('cross-instance', cross)
    for (const c of [writer, local, remote]) c.provider.destroy()
  } finally {
    await Promise.all(children.map(child => new Promise(resolve => {
      if (child.exitCode !== null) return resolve(null)
      child.once('exit', resolve)
      child.kill('SIGTERM')
    })))
    const db = new pg.Client({ connectionString: POSTGRES })
    await db.connect()
    await db.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
    await db.end()
  }
}

main().then(() => process.exit(0), (err: unknown) => {
  console.error(err)
  for (const child of children) child.kill('SIGKILL')
  process.exit(1)
})
