import { mkdirSync, writeFileSync } from 'node:fs'
import { execFileSync } from 'node:child_process'
import os from 'node:os'
import { join } from 'node:path'
import { parseArgs, type BenchOptions } from './options.js'
import { serverSpecs, startServer, ROOT, type ServerSpec, type RunningServer } from './servers.js'
import { LoadGenerator } from './loadgen-client.js'
import { describeMachine, type Machine } from './machine.js'
import { summarise } from './stats.js'
import { STEAL_LIMIT, type FanoutResult } from './workloads.js'
import { hostTimes, stolenBetween, cpuMicros } from './procfs.js'
import type { StormShare } from './storm.js'
import { runAdversarial, renderAdversarial, FAMILIES } from './adversarial.js'
import { runBalancer } from './balancer-workload.js'
import { heapAfterGc } from './inspector.js'
import { bigDocument, renderBig, type BigResult } from './big.js'

/**
 * `npm run bench`: starts each server in turn on loopback, drives the same workloads from one
 * load-generator process, and prints a markdown table (median, min-max over the runs, ratios of
 * Tandem to the better Yjs peer and to the bare ws floor). Results also go to bench/results/.
 */

interface Metric {
  key: string
  workload: string
  label: string
  better: 'lower' | 'higher'
  digits: number
}

const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

/** The most tries of one fixed-rate fan-out run while the host's CPU is stolen past STEAL_LIMIT. */
const FANOUT_TRIES = 3

/** A share as a percentage, e.g. "12%". */
const pct = (share: number | undefined): string => share === undefined ? '?' : `${Math.round(share * 100)}%`

class Results {
  readonly metrics: Metric[] = []
  readonly values = new Map<string, Map<string, number[]>>()
  readonly notes: string[] = []
  /** Tables of their own (the adversarial cost bench), printed after the main one. */
  readonly extra: string[] = []
  /** p99 (ms) at each step of each rate ladder: shape → edits/s in all → server → one per run. */
  readonly ladderP99 = new Map<string, Map<number, Map<string, number[]>>>()

  metric (metric: Metric): void {
    if (!this.metrics.some(m => m.key === metric.key)) this.metrics.push(metric)
  }

  /** The p99 of a ladder step; a step tried twice counts its first try. */
  addStep (shape: string, total: number, server: string, p99: number): void {
    let byTotal = this.ladderP99.get(shape)
    if (byTotal === undefined) this.ladderP99.set(shape, byTotal = new Map())
    let byServer = byTotal.get(total)
    if (byServer === undefined) byTotal.set(total, byServer = new Map())
    let list = byServer.get(server)
    if (list === undefined) byServer.set(server, list = [])
    list.push(p99)
  }

  add (metric: string, server: string, value: number): void {
    let byServer = this.values.get(metric)
    if (byServer === undefined) this.values.set(metric, byServer = new Map())
    let list = byServer.get(server)
    if (list === undefined) byServer.set(server, list = [])
    list.push(value)
  }
}

function log (line: string): void {
  process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`)
}

/** The servers of one run in a rotated order, so that drift in the machine's load falls on each in turn. */
function rotated<T> (items: readonly T[], by: number): T[] {
  const k = by % items.length
  return [...items.slice(k), ...items.slice(0, k)]
}

/** With --pin: the CPU every server runs on, and the one the runner and load generator share. */
const SERVER_CPU = '0'
const LOADGEN_CPU = '1'

async function withServer<T> (spec: ServerSpec, options: BenchOptions, work: (server: RunningServer) => Promise<T>, nodeArgs: string[] = []): Promise<T> {
  const server = await startServer(spec, nodeArgs, options.pin ? SERVER_CPU : undefined)
  try {
    return await work(server)
  } catch (err) {
    throw new Error(`${(err as Error).message}\n--- ${spec.label} said:\n${server.tail()}`)
  } finally {
    await server.stop()
  }
}

/** A latency for the log; none measured (NaN, sent as null through IPC) shows as n/a. */
function ms (value: number | null, digits: number): string {
  return typeof value === 'number' && Number.isFinite(value) ? value.toFixed(digits) : 'n/a'
}

async function main (): Promise<void> {
  let options: BenchOptions
  try {
    options = parseArgs(process.argv.slice(2))
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`)
    process.exitCode = 1
    return
  }
  if (options.nice !== undefined) os.setPriority(options.nice)
  // before pinning, which would make the machine look like one CPU
  const machine = describeMachine()
  // the runner's CPU is inherited by the load generator it forks; servers are started on their own
  if (options.pin) execFileSync('taskset', ['-a', '-p', '-c', LOADGEN_CPU, String(process.pid)], { stdio: 'ignore' })
  const specs = serverSpecs().filter(spec => options.servers.includes(spec.key))
  const unknown = options.servers.filter(key => !specs.some(spec => spec.key === key))
  if (unknown.length > 0) throw new Error(`unknown server ${unknown.join(', ')}`)
  const started = Date.now()
  const results = new Results()
  const loadgen = await LoadGenerator.start()
  log(`bench ${options.quick ? 'quick' : 'full'}: ${options.runs} run(s), servers ${specs.map(s => s.key).join(', ')}`)

  let host = hostTimes()
  /** A workload starts: its steal is counted from now; returns the load average to note. */
  const begin = (): number => {
    host = hostTimes()
    return os.loadavg()[0]!
  }
  const loadNote = (what: string, before: number): void => {
    const now = hostTimes()
    results.notes.push(`${what}: load average (1 min) ${before.toFixed(2)} at the start, ${os.loadavg()[0]!.toFixed(2)} at the end; ${pct(stolenBetween(host, now))} of the host's CPU time stolen by other guests meanwhile`)
    host = now
  }

  const attempt = async (what: string, spec: ServerSpec, work: () => Promise<void>): Promise<void> => {
    try {
      await work()
    } catch (err) {
      const message = (err as Error).message.split('\n').slice(0, 3).join(' / ')
      results.notes.push(`${what}, ${spec.label}: failed: ${message}`)
      log(`  ${spec.key}: FAILED ${message}`)
    }
  }

  try {
    if (options.workloads.includes('fanout')) {
      const load = begin()
      for (const [docs, perDoc] of options.shapes) {
        const name = `fan-out ${docs}×${perDoc}`
        const workload = `${name}, ${options.rate} edits/s per client`
        const p50 = `fanout-${docs}x${perDoc}-p50`
        const p99 = `fanout-${docs}x${perDoc}-p99`
        const delivered = `fanout-${docs}x${perDoc}-delivered`
        results.metric({ key: p50, workload, label: 'p50 latency, ms', better: 'lower', digits: 2 })
        results.metric({ key: p99, workload, label: 'p99 latency, ms', better: 'lower', digits: 2 })
        results.metric({ key: delivered, workload, label: 'updates delivered/s', better: 'higher', digits: 0 })
        const cpu = `fanout-${docs}x${perDoc}-cpu`
        results.metric({ key: cpu, workload, label: 'server CPU per delivered update, µs', better: 'lower', digits: 2 })
        for (let run = 0; run < options.runs; run++) {
          log(`${name} run ${run + 1}/${options.runs}`)
          for (const spec of rotated(specs, run)) {
            await attempt(name, spec, () => withServer(spec, options, async server => {
              // a run whose window lost more than STEAL_LIMIT of the host's CPU to other guests
              // is tried again, up to FANOUT_TRIES times; the least stolen try counts
              let result: FanoutResult | undefined
              for (let tries = 0; tries < FANOUT_TRIES && (result === undefined || result.steal > STEAL_LIMIT); tries++) {
                const tried = await loadgen.run<FanoutResult>({
                  cmd: 'fanout',
                  target: { url: server.url, dialect: spec.dialect, pid: server.child.pid },
                  spec: { docs, perDoc, rate: options.rate, ...options.fanout, seed: options.seed + run, prefix: `fanout-${docs}x${perDoc}-${run}-${tries}` }
                })
                if (tries > 0) log(`  ${spec.key.padEnd(12)} tried again (${pct(result?.steal)} stolen): ${pct(tried.steal)} stolen this time`)
                if (result === undefined || tried.steal < result.steal) result = tried
              }
              if (result === undefined) throw new Error('no fan-out run')
              results.add(p50, spec.key, result.p50)
              results.add(p99, spec.key, result.p99)
              results.add(delivered, spec.key, result.deliveredPerSec)
              const cpuPerDelivery = result.cpuPerDelivery
              results.add(cpu, spec.key, cpuPerDelivery)
              if (result.lost > 0 || result.duplicates > 0) results.notes.push(`${name} run ${run + 1}, ${spec.label}: ${result.lost} of ${result.expected} deliveries lost, ${result.duplicates} duplicated`)
              log(`  ${spec.key.padEnd(12)} p50 ${ms(result.p50, 2)} ms  p99 ${ms(result.p99, 2)} ms  delivered ${Math.round(result.deliveredPerSec)}/s  sent ${Math.round(result.sentPerSec)}/s  lost ${result.lost}  CPU ${cpuPerDelivery.toFixed(2)} µs/delivery  stolen ${pct(result.steal)}`)
            }))
          }
        }
      }
      loadNote('fan-out', load)
    }

    if (options.workloads.includes('ladder')) {
      const load = begin()
      const { totals, limitMs, ...phases } = options.ladder
      for (const [docs, perDoc] of options.shapes) {
        const shape = `${docs}x${perDoc}`
        const clients = docs * perDoc
        const workload = `highest sustained rate, fan-out ${docs}×${perDoc} (p99 ≤ ${limitMs} ms, nothing lost; ${totals.join(', ')} edits/s in all)`
        results.metric({ key: `ladder-sent-${shape}`, workload, label: 'edits/s sent (all clients)', better: 'higher', digits: 0 })
        results.metric({ key: `ladder-delivered-${shape}`, workload, label: 'updates delivered/s', better: 'higher', digits: 0 })
        for (let run = 0; run < options.runs; run++) {
          log(`rate ladder ${docs}×${perDoc} run ${run + 1}/${options.runs}`)
          for (const spec of rotated(specs, run)) {
            await attempt(`rate ladder ${docs}×${perDoc}`, spec, () => withServer(spec, options, async server => {
              const { best, steps } = await loadgen.run<{ best: FanoutResult | null, steps: FanoutResult[] }>({
                cmd: 'ladder',
                target: { url: server.url, dialect: spec.dialect, pid: server.child.pid },
                spec: { docs, perDoc, rates: totals.map(total => total / clients), ...phases, limitMs, seed: options.seed + run, prefix: `ladder-${shape}-${run}` }
              })
              results.add(`ladder-sent-${shape}`, spec.key, best === null ? 0 : best.rate * clients)
              results.add(`ladder-delivered-${shape}`, spec.key, best === null ? 0 : best.deliveredPerSec)
              const tried = new Set<number>()
              for (const step of steps) {
                const total = Math.round(step.rate * clients)
                if (!tried.has(total)) results.addStep(`${docs}×${perDoc}`, total, spec.key, step.p99)
                tried.add(total)
              }
              if (best !== null && best.rate * clients === totals[totals.length - 1]) results.notes.push(`rate ladder ${docs}×${perDoc} run ${run + 1}, ${spec.label}: passed the top rate (${totals[totals.length - 1]} edits/s); its limit is higher`)
              log(`  ${spec.key.padEnd(12)} ${steps.map(s => `${Math.round(s.rate * clients)}/s: p99 ${ms(s.p99, 1)} lost ${s.lost} sent ${Math.round(s.sentPerSec)} stolen ${pct(s.steal)}`).join(' | ')}`)
            }))
          }
        }
      }
      loadNote('rate ladders', load)
    }

    if (options.workloads.includes('idle')) {
      const load = begin()
      const { connections, perDoc, quietMs, maxWaitMs } = options.idle
      const workload = `${connections} idle connections holding awareness states (${perDoc} per document)`
      const half = Math.floor(connections / 2)
      results.metric({ key: 'idle-kib', workload, label: 'server RSS per connection, KiB', better: 'lower', digits: 1 })
      results.metric({ key: 'idle-slope-kib', workload, label: `server RSS per connection from ${half.toLocaleString('en-US')} to ${connections.toLocaleString('en-US')} (slope), KiB`, better: 'lower', digits: 1 })
      results.metric({ key: 'idle-heap-kib', workload, label: 'server V8 heap per connection after full GC (another start of the server, with --inspect), KiB', better: 'lower', digits: 2 })
      for (let run = 0; run < options.runs; run++) {
        log(`idle memory run ${run + 1}/${options.runs}`)
        for (const spec of rotated(specs, run)) {
          await attempt('idle memory', spec, () => withServer(spec, options, async server => {
            const target = { url: server.url, dialect: spec.dialect }
            // warm the server's code paths, so the baseline already includes what any first client costs
            await loadgen.run({ cmd: 'idle-open', target, count: perDoc, perDoc, quietMs: 200, maxWaitMs: 3_000, prefix: `warm-${run}`, seed: options.seed })
            await loadgen.run({ cmd: 'idle-close' })
            await sleep(1_000)
            const rss = async (): Promise<number> => {
              const samples: number[] = []
              for (let i = 0; i < 3; i++) { samples.push(server.rss()); await sleep(200) }
              return summarise(samples).median
            }
            const before = server.rss()
            // in two halves, RSS sampled between them: the growth over the second half is what
            // each more connection costs once the young generation and the allocator's arenas
            // have grown to their working size (the first figure includes that fixed growth)
            const first = await loadgen.run<{ connected: number, openMs: number }>({ cmd: 'idle-open', target, count: connections, perDoc, quietMs, maxWaitMs, prefix: `idle-${run}`, seed: options.seed + run, upTo: half })
            const middle = await rss()
            const opened = await loadgen.run<{ connected: number, openMs: number }>({ cmd: 'idle-more', quietMs, maxWaitMs })
            const after = await rss()
            await loadgen.run({ cmd: 'idle-close' })
            if (opened.connected < connections) results.notes.push(`idle memory run ${run + 1}, ${spec.label}: only ${opened.connected} of ${connections} connections stayed open`)
            const kib = (after - before) / opened.connected / 1024
            const slope = (after - middle) / Math.max(1, opened.connected - first.connected) / 1024
            results.add('idle-kib', spec.key, kib)
            results.add('idle-slope-kib', spec.key, slope)
            log(`  ${spec.key.padEnd(12)} ${kib.toFixed(1)} KiB/connection, ${slope.toFixed(1)} over the second half (RSS ${(before / 2 ** 20).toFixed(0)} → ${(middle / 2 ** 20).toFixed(0)} → ${(after / 2 ** 20).toFixed(0)} MiB, ${opened.connected} open in ${Math.round(first.openMs + opened.openMs)} ms)`)
          }))
          // the live heap, in a server of its own: the forced collections would change what the
          // RSS figures above measure
          await attempt('idle memory (heap)', spec, () => withServer(spec, options, async server => {
            const target = { url: server.url, dialect: spec.dialect }
            const inspector = server.inspector
            if (inspector === undefined) throw new Error('no inspector URL in the server\'s output')
            await loadgen.run({ cmd: 'idle-open', target, count: perDoc, perDoc, quietMs: 200, maxWaitMs: 3_000, prefix: `warm-${run}`, seed: options.seed })
            await loadgen.run({ cmd: 'idle-close' })
            await sleep(1_000)
            const before = await heapAfterGc(inspector)
            const opened = await loadgen.run<{ connected: number, openMs: number }>({ cmd: 'idle-open', target, count: connections, perDoc, quietMs, maxWaitMs, prefix: `heap-${run}`, seed: options.seed + run })
            const after = await heapAfterGc(inspector)
            await loadgen.run({ cmd: 'idle-close' })
            const kib = (after - before) / opened.connected / 1024
            results.add('idle-heap-kib', spec.key, kib)
            log(`  ${spec.key.padEnd(12)} ${kib.toFixed(2)} KiB/connection of V8 heap after full GC (${(before / 2 ** 20).toFixed(1)} → ${(after / 2 ** 20).toFixed(1)} MiB)`)
          }, ['--inspect=127.0.0.1:0']))
        }
      }
      loadNote('idle memory', load)
    }

    if (options.workloads.includes('storm')) {
      const load = begin()
      const { clients, perDoc, generators, timeoutMs } = options.storm
      const workload = `connection storm: ${clients.toLocaleString('en-US')} clients opened at once (${perDoc} per document) from ${generators} load-generator processes, each sending sync step 1 and its awareness state`
      results.metric({ key: 'storm-rate', workload, label: 'connections synced per second', better: 'higher', digits: 0 })
      results.metric({ key: 'storm-cpu', workload, label: 'server CPU per connection, µs', better: 'lower', digits: 0 })
      results.metric({ key: 'storm-failed', workload, label: `clients failed or not synced within ${timeoutMs / 1000} s`, better: 'lower', digits: 0 })
      // the first generator is the bench's own; the others share the clients, so that one
      // process's event loop does not bound the rate (the floor shows where the harness is)
      const extra = await Promise.all(Array.from({ length: generators - 1 }, async () => await LoadGenerator.start()))
      const pool = [loadgen, ...extra]
      const shareOf = (i: number): { count: number, offset: number } => {
        const offset = Math.floor(clients * i / pool.length)
        return { count: Math.floor(clients * (i + 1) / pool.length) - offset, offset }
      }
      try {
        for (let run = 0; run < options.runs; run++) {
          log(`connection storm run ${run + 1}/${options.runs}`)
          for (const spec of rotated(specs, run)) {
            await attempt('connection storm', spec, () => withServer(spec, options, async server => {
              const target = { url: server.url, dialect: spec.dialect }
              const pid = server.child.pid as number
              // warm the server's code paths with one document's clients
              await loadgen.run({ cmd: 'storm-open', target, spec: { count: perDoc, offset: 0, perDoc, startAt: 0, timeoutMs, prefix: `warm-${run}` } })
              await loadgen.run({ cmd: 'storm-close' })
              await sleep(500)
              const cpuBefore = cpuMicros(pid)
              const hostBefore = hostTimes()
              const startAt = Date.now() + 300
              const shares = await Promise.all(pool.map(async (generator, i) => await generator.run<StormShare>({
                cmd: 'storm-open', target, spec: { ...shareOf(i), perDoc, startAt, timeoutMs, prefix: `storm-${run}` }
              })))
              const cpu = cpuMicros(pid) - cpuBefore
              const steal = stolenBetween(hostBefore, hostTimes())
              await Promise.all(pool.map(async generator => await generator.run({ cmd: 'storm-close' })))
              const synced = shares.reduce((sum, share) => sum + share.synced, 0)
              const failed = shares.reduce((sum, share) => sum + share.failed + share.timedOut, 0)
              const seconds = (Math.max(...shares.map(share => share.last)) - Math.min(...shares.map(share => share.first))) / 1000
              const rate = synced / seconds
              results.add('storm-rate', spec.key, rate)
              results.add('storm-cpu', spec.key, cpu / synced)
              results.add('storm-failed', spec.key, failed)
              const errors = new Map<string, number>()
              for (const share of shares) for (const [kind, n] of Object.entries(share.errors)) errors.set(kind, (errors.get(kind) ?? 0) + n)
              if (failed > 0) results.notes.push(`connection storm run ${run + 1}, ${spec.label}: ${failed} of ${clients} clients failed (${[...errors].map(([kind, n]) => `${n}× ${kind}`).join('; ')})`)
              log(`  ${spec.key.padEnd(12)} ${Math.round(rate)} connections/s (${synced} synced in ${seconds.toFixed(2)} s, ${failed} failed), CPU ${Math.round(cpu / synced)} µs/connection, stolen ${pct(steal)}`)
            }))
          }
        }
      } finally {
        for (const generator of extra) generator.stop()
      }
      loadNote('connection storm', load)
    }

    if (options.workloads.includes('sync')) {
      const load = begin()
      const workload = `new client syncs a ${Math.round(options.sync.bytes / 1024)} KiB document from storage (server restarted the document)`
      results.metric({ key: 'sync-ms', workload, label: 'connect to document received, ms', better: 'lower', digits: 1 })
      for (let run = 0; run < options.runs; run++) {
        log(`sync from storage run ${run + 1}/${options.runs}`)
        for (const spec of rotated(specs, run)) {
          if (!spec.storage) continue
          await attempt('sync from storage', spec, () => withServer(spec, options, async server => {
            const result = await loadgen.run<{ ms: number, docBytes: number, frameBytes: number }>({
              cmd: 'sync', target: { url: server.url, dialect: spec.dialect, pid: server.child.pid }, spec: { ...options.sync, seed: options.seed, prefix: `sync-${run}` }
            })
            results.add('sync-ms', spec.key, result.ms)
            log(`  ${spec.key.padEnd(12)} ${result.ms.toFixed(1)} ms (document ${result.docBytes} bytes, frame ${result.frameBytes} bytes)`)
          }))
        }
      }
      loadNote('sync from storage', load)
    }

    if (options.workloads.includes('storage')) {
      const load = begin()
      const workload = `storage throughput: one writer (${options.storage.authors} Yjs authors), ${options.storage.window} edits in flight, one observer`
      results.metric({ key: 'storage-rate', workload, label: 'edits/s acknowledged as stored (Tandem) or relayed (peers)', better: 'higher', digits: 0 })
      results.metric({ key: 'storage-cpu', workload, label: 'server CPU per edit, µs', better: 'lower', digits: 1 })
      for (let run = 0; run < options.runs; run++) {
        log(`storage throughput run ${run + 1}/${options.runs}`)
        for (const spec of rotated(specs, run)) {
          await attempt('storage throughput', spec, () => withServer(spec, options, async server => {
            const result = await loadgen.run<{ perSec: number, cpuPerEdit: number, steal: number }>({
              cmd: 'storage', target: { url: server.url, dialect: spec.dialect, pid: server.child.pid, acks: spec.acks }, spec: { ...options.storage, seed: options.seed + run, prefix: `storage-${run}` }
            })
            results.add('storage-rate', spec.key, result.perSec)
            const cpuPerEdit = result.cpuPerEdit
            results.add('storage-cpu', spec.key, cpuPerEdit)
            log(`  ${spec.key.padEnd(12)} ${Math.round(result.perSec)} edits/s, CPU ${cpuPerEdit.toFixed(1)} µs/edit, stolen ${pct(result.steal)}`)
          }))
        }
      }
      loadNote('storage throughput', load)
      for (const spec of specs) results.notes.push(`storage, ${spec.label}: ${spec.durability}`)
    }

    if (options.workloads.includes('adversarial')) {
      const load = begin()
      const unknownFamilies = options.families.filter(key => !FAMILIES.some(f => f.key === key))
      if (unknownFamilies.length > 0) throw new Error(`unknown family ${unknownFamilies.join(', ')}`)
      const base = serverSpecs().find(spec => spec.key === 'tandem') as ServerSpec
      // default limits, but for the per-address cap (every socket comes from 127.0.0.1)
      const tandem: ServerSpec = {
        ...base,
        command: (port, dataDir) => {
          const { args, env } = base.command(port, dataDir)
          const i = args.indexOf('--max-messages-per-second')
          return { args: i < 0 ? args : [...args.slice(0, i), ...args.slice(i + 2)], env }
        }
      }
      const family = await runAdversarial({
        withTandem: work => withServer(tandem, options, server => work({ url: server.url, pid: server.child.pid as number })),
        fanout: (url, pid, spec) => loadgen.run<FanoutResult>({ cmd: 'fanout', target: { url, dialect: 'y-websocket', pid }, spec }),
        log
      }, options.adversarial, options.families, options.seed)
      results.extra.push(...renderAdversarial(family))
      loadNote('adversarial inputs', load)
    }

    if (options.workloads.includes('balancer')) {
      const load = begin()
      await runBalancer({
        options,
        specs,
        loadgen,
        metric: metric => results.metric(metric),
        add: (metric, server, value) => results.add(metric, server, value),
        note: line => results.notes.push(line),
        extra: lines => results.extra.push(...lines),
        log,
        attempt,
        rotated,
        cpus: options.pin ? SERVER_CPU : undefined
      })
      loadNote('balancer (two instances)', load)
    }

    if (options.workloads.includes('big')) {
      const load = begin()
      const rows: Array<{ spec: ServerSpec, mib: number, result: BigResult | null, error: string | null }> = []
      for (const mib of options.big.sizes) {
        log(`big document ${mib} MiB`)
        for (const spec of specs) {
          // the floor stores nothing, but hands out a big document's pieces (the least any server does)
          if (!spec.storage && spec.key !== 'floor') continue
          try {
            const result = await bigDocument(spec, mib, options.big, options.seed, options.pin ? { server: SERVER_CPU, loader: LOADGEN_CPU } : {})
            rows.push({ spec, mib, result, error: null })
            log(`  ${spec.key.padEnd(12)} open ${ms(result.openMs, 0)} ms, ${result.reconnects} reconnects, largest message ${result.largestMessage} B, edit kept ${String(result.editKept)}, memory ${result.memoryRatio.toFixed(2)}× (peak +${(result.rssPeakDelta / 2 ** 20).toFixed(0)} MiB), p99 ${ms(result.p99Base, 1)} → ${ms(result.p99Load, 1)} (load) → ${ms(result.p99After, 1)} ms (after)${result.errors.length > 0 ? `; ${result.errors.join('; ')}` : ''}`)
          } catch (err) {
            const message = (err as Error).message.split('\n').slice(0, 3).join(' / ')
            rows.push({ spec, mib, result: null, error: message })
            log(`  ${spec.key}: FAILED ${message}`)
          }
        }
      }
      results.extra.push(...renderBig(rows, options.big))
      loadNote('big documents', load)
    }
  } finally {
    loadgen.stop()
  }

  const seconds = Math.round((Date.now() - started) / 1000)
  const markdown = render(results, specs, options, machine, seconds)
  process.stdout.write(markdown)
  const dir = join(ROOT, 'bench', 'results')
  mkdirSync(dir, { recursive: true })
  const stamp = new Date().toISOString().replace(/[:.]/g, '-')
  writeFileSync(join(dir, `bench-${stamp}.md`), markdown)
  const ladderP99 = Object.fromEntries([...results.ladderP99].map(([shape, byTotal]) => [shape, Object.fromEntries([...byTotal].map(([total, byServer]) => [total, Object.fromEntries(byServer)]))]))
  writeFileSync(join(dir, `bench-${stamp}.json`), JSON.stringify({ machine, options, values: Object.fromEntries([...results.values].map(([k, v]) => [k, Object.fromEntries(v)])), ladderP99, notes: results.notes }, null, 2))
  log(`done in ${seconds} s; results in bench/results/bench-${stamp}.md`)
}

function format (value: number, digits: number): string {
  if (Number.isNaN(value)) return 'n/a'
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
}

function cell (values: number[] | undefined, digits: number): string {
  if (values === undefined || values.length === 0) return '–'
  const s = summarise(values)
  if (s.runs === 0) return 'n/a'
  if (s.runs === 1) return format(s.median, digits)
  return `${format(s.median, digits)} (${format(s.min, digits)}–${format(s.max, digits)})`
}

/** A median over the reference's, as "N.NN×"; for lower-is-better figures too, so read with the metric's direction. */
function ratio (value: number, reference: number): string {
  if (!Number.isFinite(value) || !Number.isFinite(reference) || reference === 0) return '–'
  return `${(value / reference).toFixed(2)}×`
}

function render (results: Results, specs: ServerSpec[], options: BenchOptions, machine: Machine, seconds: number): string {
  const median = (metric: string, server: string): number => summarise(results.values.get(metric)?.get(server) ?? []).median
  const peers = specs.filter(spec => spec.peer)
  const lines: string[] = []
  lines.push(`### Results ${new Date().toISOString().slice(0, 10)} (${options.quick ? 'quick mode' : 'full mode'}, ${options.runs} run${options.runs > 1 ? 's' : ''}: median (min–max))`, '')
  lines.push(`Machine: ${machine.cpus} CPUs, ${machine.cpuModel}, ${machine.memoryGiB} GiB, ${machine.os}, Node ${machine.node}; load average before the run ${machine.loadBefore.join(' / ')}${options.nice === undefined ? '' : `; bench processes at nice ${options.nice}`}${options.pin ? `; servers pinned to CPU ${SERVER_CPU}, the load generator to CPU ${LOADGEN_CPU}` : ''}. Took ${seconds} s.`, '')
  // the floor's own ratio: what a relay with no Yjs and no storage reaches against the peers on
  // this machine, the bound of any server's ratio where the load generator and kernel dominate
  const header = ['workload', 'metric', ...specs.map(s => s.label), 'Tandem ÷ best Yjs peer', 'Tandem ÷ floor', 'floor ÷ best Yjs peer']
  if (results.metrics.length > 0) lines.push(`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`)
  let lastWorkload = ''
  for (const metric of results.metrics) {
    const byServer = results.values.get(metric.key)
    const peerMedians = peers.map(p => median(metric.key, p.key)).filter(Number.isFinite)
    const best = peerMedians.length === 0 ? NaN : metric.better === 'lower' ? Math.min(...peerMedians) : Math.max(...peerMedians)
    const tandem = median(metric.key, 'tandem')
    const row = [
      metric.workload === lastWorkload ? '' : metric.workload,
      `${metric.label} (${metric.better} is better)`,
      ...specs.map(spec => cell(byServer?.get(spec.key), metric.digits)),
      ratio(tandem, best),
      ratio(tandem, median(metric.key, 'floor')),
      ratio(median(metric.key, 'floor'), best)
    ]
    lastWorkload = metric.workload
    lines.push(`| ${row.join(' | ')} |`)
  }
  lines.push('')
  lines.push(...results.extra)
  lines.push(...renderLadderP99(results, specs, peers))
  if (results.notes.length > 0) {
    lines.push('Notes:', '')
    for (const note of results.notes) lines.push(`- ${note}`)
    lines.push('')
  }
  return lines.join('\n') + '\n'
}

/**
 * p99 at each rate of the ladders, up to the highest rate a Yjs peer was tried at: where the
 * servers part as the load rises. A server's climb ends after a failed rate is tried twice, so
 * higher rates have no figure for it (–).
 */
function renderLadderP99 (results: Results, specs: ServerSpec[], peers: ServerSpec[]): string[] {
  if (results.ladderP99.size === 0) return []
  const median = (values: number[] | undefined): number => summarise(values ?? []).median
  const header = ['fan-out', 'edits/s in all', ...specs.map(s => s.label), 'Tandem ÷ best Yjs peer']
  const lines = ['p99 latency along the rate ladders, ms (median of the runs; each rate\'s first try):', '', `| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`]
  for (const [shape, byTotal] of results.ladderP99) {
    const totals = [...byTotal.keys()].sort((a, b) => a - b)
    const peerTop = Math.max(...totals.filter(total => peers.some(p => byTotal.get(total)?.has(p.key))))
    let first = true
    for (const total of totals.filter(t => t <= peerTop)) {
      const byServer = byTotal.get(total) as Map<string, number[]>
      const best = Math.min(...peers.map(p => median(byServer.get(p.key))).filter(Number.isFinite))
      const row = [first ? shape : '', total.toLocaleString('en-US'), ...specs.map(spec => {
        const value = median(byServer.get(spec.key))
        return Number.isFinite(value) ? format(value, 1) : '–'
      }), ratio(median(byServer.get('tandem')), best)]
      first = false
      lines.push(`| ${row.join(' | ')} |`)
    }
  }
  lines.push('')
  return lines
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`)
  process.exitCode = 1
})
