import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { mkdirSync, writeFileSync } from 'node:fs'
import { splitUpdate } from '../shared/split-update.js'
import { SYNC_PIECE_BYTES } from '../server/session/state-sync.js'
import { join, dirname } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import Database from 'better-sqlite3'
import { bigDocumentFile, BIG_SEED } from './big-doc.js'
import { startServer, ROOT, type ServerSpec, type RunningServer } from './servers.js'
import { FanoutGroup, type Target } from './workloads.js'
import { percentile } from './stats.js'
import type { LoaderResult, LoaderSpec } from './big-loader.js'

const here = dirname(fileURLToPath(import.meta.url))
const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

/** The `big` workload's settings (bench/options.ts). */
export interface BigOptions {
  /** Document sizes, MiB. */
  sizes: number[]
  /** Other documents × clients each, editing while the big one loads; per-client edits/s. */
  docs: number
  perDoc: number
  rate: number
  /** Length of the fan-out measured before the load (its p99 is the reference), ms. */
  baselineMs: number
  /** Fan-out measured after the loading client left (the server stores, compacts, unloads), ms. */
  afterMs: number
  /** The most one open may take. */
  timeoutMs: number
}

/** What one server did with one big document. */
export interface BigResult {
  bytes: number
  /** The first client: connect to holding the whole document (null: never). */
  openMs: number | null
  reconnects: number
  largestMessage: number
  messages: number
  /** The edit made during the first load was in the document a second client opened later. */
  editKept: boolean | null
  secondOpenMs: number | null
  secondReconnects: number
  /** Server RSS with the document loaded, less before; and that over the encoded size. */
  rssDelta: number
  memoryRatio: number
  /** Highest RSS seen during the load, less before. */
  rssPeakDelta: number
  /** Other documents' fan-out p99 (ms): before, during the load, after the loader left. */
  p99Base: number
  p99Load: number
  p99After: number
  /** Tandem's garbage collection during the load (its /metrics), or null. */
  gcLoad: string | null
  errors: string[]
}

/**
 * Stores a document of `bytes` in a server's own storage before it starts, as that server stores
 * documents: Tandem's SQLite store (one row, as after a compaction), y-leveldb for the y-websocket
 * server, the Hocuspocus bench server's SQLite table.
 */
async function seed (spec: ServerSpec, dataDir: string, name: string, update: Uint8Array): Promise<void> {
  if (spec.key.startsWith('tandem')) {
    const { SqliteStore } = await import(pathToFileURL(join(ROOT, 'dist', 'server', 'store', 'sqlite-store.js')).href) as typeof import('../server/store/sqlite-store.js')
    const store = await SqliteStore.open(dataDir)
    await store.append([{ name, update }])
    await store.close()
  } else if (spec.key === 'y-websocket') {
    // y-leveldb's types are not reachable through its package exports: its two methods, typed here
    const { LeveldbPersistence } = await import('y-leveldb' as string) as {
      LeveldbPersistence: new (dir: string) => { storeUpdate (name: string, update: Uint8Array): Promise<unknown>, destroy (): Promise<void> }
    }
    const ldb = new LeveldbPersistence(dataDir)
    await ldb.storeUpdate(name, update)
    await ldb.destroy()
  } else if (spec.key === 'hocuspocus') {
    mkdirSync(dataDir, { recursive: true })
    const db = new Database(join(dataDir, 'hocuspocus.sqlite'))
    db.exec('CREATE TABLE IF NOT EXISTS documents (name TEXT PRIMARY KEY, data BLOB NOT NULL)')
    db.prepare('INSERT INTO documents (name, data) VALUES (?, ?)').run(name, update)
    db.close()
  } else if (spec.key === 'floor') {
    // the floor stores nothing: the pieces it hands out, split as Tandem splits a big document
    const pieces = splitUpdate(update, SYNC_PIECE_BYTES)
    const bytes = Buffer.alloc(pieces.reduce((sum, piece) => sum + 4 + piece.byteLength, 0))
    let at = 0
    for (const piece of pieces) {
      bytes.writeUInt32LE(piece.byteLength, at)
      bytes.set(piece, at + 4)
      at += 4 + piece.byteLength
    }
    writeFileSync(join(dataDir, `${name}.pieces`), bytes)
  } else {
    throw new Error(`no way to seed ${spec.key}'s storage`)
  }
}

/** Tandem's garbage collection so far, from its /metrics: seconds and pauses over 100 ms, by kind. */
async function gcOf (spec: ServerSpec, url: string): Promise<Map<string, { seconds: number, count: number, over100ms: number }> | null> {
  if (!spec.key.startsWith('tandem')) return null
  const text = await (await fetch(`${url.replace(/^ws/, 'http')}/metrics`)).text()
  const kinds = new Map<string, { seconds: number, count: number, over100ms: number }>()
  const of = (kind: string): { seconds: number, count: number, over100ms: number } => {
    let entry = kinds.get(kind)
    if (entry === undefined) kinds.set(kind, entry = { seconds: 0, count: 0, over100ms: 0 })
    return entry
  }
  for (const line of text.split('\n')) {
    const match = /^nodejs_gc_duration_seconds_(sum|count|bucket)\{(?:le="([^"]+)",)?kind="(\w+)"\} ([\d.e+-]+)$/.exec(line)
    if (match === null) continue
    const [, field, le, kind, value] = match as unknown as [string, string, string | undefined, string, string]
    const entry = of(kind)
    if (field === 'sum') entry.seconds = Number(value)
    else if (field === 'count') entry.count = Number(value)
    else if (le === '0.1') entry.over100ms = -Number(value)
  }
  for (const entry of kinds.values()) entry.over100ms += entry.count
  return kinds
}

/** What the collector did between two readings, one line. */
function gcDuring (before: Awaited<ReturnType<typeof gcOf>>, after: Awaited<ReturnType<typeof gcOf>>): string | null {
  if (before === null || after === null) return null
  const parts: string[] = []
  for (const [kind, end] of after) {
    const start = before.get(kind) ?? { seconds: 0, count: 0, over100ms: 0 }
    if (end.count === start.count) continue
    parts.push(`${kind} ${end.count - start.count} pauses, ${((end.seconds - start.seconds) * 1000).toFixed(0)} ms, ${end.over100ms - start.over100ms} over 100 ms`)
  }
  return parts.join('; ')
}

/** The floor speaks no protocol: the stock client opens the pieces it hands out. */
function loaderDialect (spec: ServerSpec): LoaderSpec['dialect'] {
  return spec.dialect === 'raw' ? 'y-websocket' : spec.dialect
}

/** A loader process (big-loader.ts): resolves with its result once it holds the document; `leave()` ends it. */
function startLoader (spec: LoaderSpec, cpus: string | undefined): { result: Promise<LoaderResult>, leave: () => Promise<void> } {
  const command = [process.execPath, join(here, 'big-loader.js'), JSON.stringify(spec)]
  if (cpus !== undefined) command.unshift('taskset', '-c', cpus)
  const child = spawn(command[0] as string, command.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] })
  const exited = new Promise<void>(resolve => child.once('exit', () => resolve()))
  const result = new Promise<LoaderResult>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout })
    lines.once('line', line => resolve(JSON.parse(line) as LoaderResult))
    child.once('exit', code => reject(new Error(`loader exited with ${String(code)} before reporting`)))
  })
  const leave = async (): Promise<void> => {
    child.stdin.end('leave\n')
    await Promise.race([exited, sleep(10_000)])
    if (child.exitCode === null) child.kill('SIGKILL')
  }
  return { result, leave }
}

/** Resolves once `rss()` grew by less than 1% over the last 3 s (at most 120 s). */
async function settle (rss: () => number): Promise<void> {
  const samples: number[] = []
  for (const end = performance.now() + 120_000; performance.now() < end; await sleep(500)) {
    samples.push(rss())
    if (samples.length > 6 && (samples[samples.length - 1] as number) < (samples[samples.length - 7] as number) * 1.01) return
  }
}

/** Runs fan-out phases back to back until `until` settles; every delivery's latency, ms. */
async function fanoutDuring (group: FanoutGroup, rate: number, until: Promise<unknown>, seed: number): Promise<number[]> {
  let done = false
  until.then(() => { done = true }, () => { done = true })
  const latencies: number[] = []
  for (let phase = 0; !done; phase++) {
    await group.phase(rate, 0, 1_000, 300, seed + phase)
    latencies.push(...group.lastLatencies)
  }
  return latencies
}

/**
 * One server, one document size: the document is in the server's storage as it starts; other
 * documents' clients edit at a steady rate throughout. A stock client opens the big document and
 * edits it while it loads; then it leaves (the server stores and compacts or unloads), and a
 * second client opens it from storage and looks for the edit.
 */
export async function bigDocument (spec: ServerSpec, mib: number, options: BigOptions, seedValue: number, cpus: { server?: string, loader?: string }): Promise<BigResult> {
  const { file, update } = bigDocumentFile(Math.round(mib * 1024 * 1024), BIG_SEED)
  const name = `big-${mib}`
  let server: RunningServer | undefined
  const errors: string[] = []
  try {
    server = await startServer(spec, spec.key.startsWith('tandem') ? (process.env.BENCH_TANDEM_NODE_ARGS ?? '').split(' ').filter(Boolean) : [], cpus.server, dir => seed(spec, dir, name, update))
    const target: Target = { url: server.url, dialect: spec.dialect, pid: server.child.pid }
    const group = new FanoutGroup(target, options.docs, options.perDoc, `other-${mib}`, seedValue)
    await group.connect()
    const base = await group.phase(options.rate, 500, options.baselineMs, 500, seedValue)
    const rssBefore = server.rss()
    const gcBefore = await gcOf(spec, server.url)
    const edit = `edit-during-load-${mib}`
    const timeoutMs = options.timeoutMs
    const first = startLoader({ url: server.url, dialect: loaderDialect(spec), document: name, file, edit, expect: null, timeoutMs }, cpus.loader)
    let rssPeak = rssBefore
    const sampler = setInterval(() => { rssPeak = Math.max(rssPeak, server?.rss() ?? 0) }, 100)
    // the load lasts until the client holds the document and the server's memory stopped growing:
    // a server may go on building its copy after the client has it
    const running = server
    const settled = first.result.then(async () => await settle(() => running.rss()))
    const loadLatencies = await fanoutDuring(group, options.rate, settled, seedValue + 100)
    const loaded = await first.result
    await settled
    const gcLoad = gcDuring(gcBefore, await gcOf(spec, server.url))
    const rssLoaded = Math.min(server.rss(), (await sleep(300), server.rss()))
    clearInterval(sampler)
    if (loaded.error !== null) errors.push(`first client: ${loaded.error}`)
    // the client leaves: the server stores the edit, compacts or unloads
    const left = first.leave().then(() => sleep(options.afterMs))
    const afterLatencies = await fanoutDuring(group, options.rate, left, seedValue + 200)
    // a second client looks for the edit, unless the first never got the document
    let reopened: LoaderResult = { openMs: null, reconnects: 0, largestMessage: 0, messages: 0, found: null, error: null }
    if (loaded.openMs !== null && spec.storage) {
      const second = startLoader({ url: server.url, dialect: loaderDialect(spec), document: name, file, edit: null, expect: edit, timeoutMs }, cpus.loader)
      reopened = await second.result
      await second.leave()
      if (reopened.error !== null) errors.push(`second client: ${reopened.error}`)
    }
    await group.close()
    return {
      bytes: update.byteLength,
      openMs: loaded.openMs,
      reconnects: loaded.reconnects,
      largestMessage: loaded.largestMessage,
      messages: loaded.messages,
      editKept: reopened.found,
      secondOpenMs: reopened.openMs,
      secondReconnects: reopened.reconnects,
      rssDelta: rssLoaded - rssBefore,
      memoryRatio: (rssLoaded - rssBefore) / update.byteLength,
      rssPeakDelta: rssPeak - rssBefore,
      p99Base: base.p99,
      p99Load: percentile(loadLatencies, 0.99),
      p99After: percentile(afterLatencies, 0.99),
      gcLoad,
      errors
    }
  } finally {
    await server?.stop()
  }
}

/** The workload's own table: one row per size and server. */
export function renderBig (rows: Array<{ spec: ServerSpec, mib: number, result: BigResult | null, error: string | null }>, options: BigOptions): string[] {
  const ms = (value: number | null): string => value === null || !Number.isFinite(value) ? 'n/a' : value.toFixed(value < 10 ? 1 : 0)
  const lines = [
    `Big documents: a stock y-websocket client opens a document stored before the server started, and edits it while it loads; other documents: ${options.docs} × ${options.perDoc} clients at ${options.rate} edits/s each. Memory: server RSS with the document loaded, less before, over the encoded size. "During the load": until the client holds the document and the server's RSS grew by under 1% over 3 s (a server may go on building its copy).`,
    '',
    '| document | server | open, ms | reconnects | largest message, MB | edit kept | memory ÷ encoded size (peak, MiB) | other documents\' p99, ms: before / during the load / after the client left (ratio during ÷ before) |',
    '|---|---|---|---|---|---|---|---|'
  ]
  for (const { spec, mib, result, error } of rows) {
    if (result === null) {
      lines.push(`| ${mib} MiB | ${spec.label} | failed: ${error ?? ''} | | | | | |`)
      continue
    }
    const open = result.openMs === null ? `never (${result.errors.join('; ')})` : ms(result.openMs)
    lines.push(`| ${mib} MiB (${(result.bytes / 1e6).toFixed(1)} MB) | ${spec.label} | ${open} | ${result.reconnects} | ${(result.largestMessage / 1e6).toFixed(1)} | ${result.editKept === null ? 'n/a' : result.editKept ? 'yes' : 'no'} | ${result.memoryRatio.toFixed(2)}× (+${(result.rssPeakDelta / 2 ** 20).toFixed(0)}) | ${ms(result.p99Base)} / ${ms(result.p99Load)} / ${ms(result.p99After)} (${(result.p99Load / result.p99Base).toFixed(2)}×) |`)
  }
  lines.push('')
  for (const { spec, mib, result } of rows) {
    if (result?.gcLoad != null) lines.push(`- ${spec.label}, ${mib} MiB: garbage collection during the load: ${result.gcLoad}`)
  }
  lines.push('')
  return lines
}
