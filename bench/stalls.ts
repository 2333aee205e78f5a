import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { ROOT } from './servers.js'
import { LoadGenerator } from './loadgen-client.js'
import { percentile } from './stats.js'
import type { FanoutResult } from './workloads.js'

/**
 * `npm run bench:stalls -- [DOCSxCLIENTS] [RATE] [SECONDS]`: runs the built Tandem in this process
 * with its SQLite store wrapped in a stopwatch, drives one fan-out from the load generator, and
 * reports how long the event loop was blocked inside each store call (since the SQLite worker,
 * only the posting of a request and the snapshot a compaction takes) next to the event loop's
 * delay. It only observes; nothing in the server changes.
 */

interface StoreEntry { name: string, update: Uint8Array }
interface Store {
  load (name: string): Promise<Uint8Array[]>
  append (entries: readonly StoreEntry[]): Promise<void>
  compact (name: string, snapshot?: () => Uint8Array): Promise<void>
  nextFencingToken (name: string, resource: string): Promise<number>
  addRevocation (revocation: unknown): Promise<void>
  revocations (now: number): Promise<unknown[]>
  close (): Promise<void>
}
interface TandemModule {
  createServer (options: Record<string, unknown>): { listen (): Promise<unknown>, close (): Promise<void>, url: string }
  SqliteStore: new (dir: string) => Store
}

async function main (): Promise<void> {
  const [shape = '10x20', rateArg = '5', secondsArg = '10'] = process.argv.slice(2)
  const [docs, perDoc] = shape.split('x').map(Number) as [number, number]
  const tandem = await import(pathToFileURL(join(ROOT, 'dist', 'server', 'index.js')).href) as TandemModule
  const dir = mkdtempSync(join(tmpdir(), 'bench-stalls-'))
  const inner = new tandem.SqliteStore(dir)
  const blocked: Record<'append' | 'compact' | 'load', number[]> = { append: [], compact: [], load: [] }
  // the SQLite calls do all their work before returning the promise: time that synchronous part
  const timed = <T>(kind: keyof typeof blocked, call: () => Promise<T>): Promise<T> => {
    const started = performance.now()
    const promise = call()
    blocked[kind].push(performance.now() - started)
    return promise
  }
  const store: Store = {
    load: name => timed('load', () => inner.load(name)),
    append: entries => timed('append', () => inner.append(entries)),
    compact: (name, snapshot) => timed('compact', () => inner.compact(name, snapshot)),
    nextFencingToken: (name, resource) => inner.nextFencingToken(name, resource),
    addRevocation: revocation => inner.addRevocation(revocation),
    revocations: now => inner.revocations(now),
    close: () => inner.close()
  }
  const server = tandem.createServer({ port: 0, persistence: store, logLevel: 'warn', maxConnectionsPerIp: 0, maxMessagesPerSecond: 0 })
  await server.listen()
  const loadgen = await LoadGenerator.start()
  const delay = monitorEventLoopDelay({ resolution: 5 })
  let result: FanoutResult
  try {
    delay.enable()
    result = await loadgen.run<FanoutResult>({
      cmd: 'fanout',
      target: { url: server.url, dialect: 'y-websocket' },
      spec: { docs, perDoc, rate: Number(rateArg), warmupMs: 1_000, durationMs: Number(secondsArg) * 1000, drainMs: 2_000, seed: 1, prefix: 'stalls' }
    })
    delay.disable()
  } finally {
    loadgen.stop()
    await server.close()
    rmSync(dir, { recursive: true, force: true })
  }
  console.log(`fan-out ${shape} at ${rateArg}/s per client: p50 ${result.p50.toFixed(2)} ms, p99 ${result.p99.toFixed(2)} ms, max ${result.max.toFixed(1)} ms, lost ${result.lost}`)
  console.log(`event loop delay: p50 ${(delay.percentile(50) / 1e6).toFixed(1)} ms, p99 ${(delay.percentile(99) / 1e6).toFixed(1)} ms, max ${(delay.max / 1e6).toFixed(1)} ms`)
  for (const [kind, times] of Object.entries(blocked)) {
    if (times.length === 0) continue
    const total = times.reduce((a, b) => a + b, 0)
    console.log(`store.${kind}: ${times.length} calls, ${total.toFixed(0)} ms blocking in all, p50 ${percentile(times, 0.5).toFixed(3)} ms, p99 ${percentile(times, 0.99).toFixed(2)} ms, max ${percentile(times, 1).toFixed(1)} ms, ${times.filter(t => t > 10).length} over 10 ms`)
  }
}

main().catch((err: unknown) => {
  console.error(err)
  process.exitCode = 1
})
