import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createRequire } from 'node:module'
import { pathToFileURL } from 'node:url'
import { ROOT } from './servers.js'
import { LoadGenerator } from './loadgen-client.js'
import type { FanoutResult } from './workloads.js'

/**
 * `npm run bench:experiments -- [DOCSxCLIENTS] [RATE] [SECONDS]`: what-if runs for the optimisation
 * proposals, without touching server/: the built Tandem runs in this process under variants made
 * from the outside, and each is measured by server CPU time per delivered update in the measured
 * window (user + system: steadier than latency on a busy machine) and by latency.
 *
 *   baseline        as shipped
 *   cork            every `ws` frame in the same tick to the same socket goes out in one write
 *                   (socket.cork, uncork on nextTick): what batching a broadcast's frames would give
 *   no-compaction   compactAfterUpdates set out of reach: what compaction costs on the hot path
 *   both
 *   no-yjs          every update relayed as received, never decoded, applied or stored: the cost
 *                   of Tandem's sockets, sessions and broadcast alone (compare with the ws floor)
 *   memory-store    the memory store instead of SQLite: what the commit costs
 *   no-commit-delay commitDelayMs 0: every turn's updates committed at its end, however few
 *   commit-delay-10 commitDelayMs 10: fewer, larger commits under light load (acks wait longer)
 *
 * `VARIANTS=no-yjs,baseline npm run bench:experiments -- 100x5 5 6` runs a subset.
 */

interface DocumentPrototype { applyUpdate (update: Uint8Array, from: unknown): void, broadcast (frame: Uint8Array, except: unknown): void }
interface TandemModule {
  createServer (options: Record<string, unknown>): { listen (): Promise<unknown>, close (): Promise<void>, url: string }
}
interface CorkableSocket { cork (): void, uncork (): void }
/** ws's Sender: every frame, sent or framed once for a broadcast, is written by its sendFrame. */
interface SenderPrototype { sendFrame: (this: { _socket: CorkableSocket & { __corked?: boolean } }, ...args: unknown[]) => void }

const ALL = ['baseline', 'cork', 'no-compaction', 'both', 'no-yjs', 'memory-store', 'no-commit-delay', 'commit-delay-10'] as const
const variants = process.env.VARIANTS === undefined ? ALL : process.env.VARIANTS.split(',').filter((v): v is typeof ALL[number] => (ALL as readonly string[]).includes(v))

async function main (): Promise<void> {
  const [shape = '1x50', rateArg = '20', secondsArg = '6'] = process.argv.slice(2)
  const [docs, perDoc] = shape.split('x').map(Number) as [number, number]
  const tandem = await import(pathToFileURL(join(ROOT, 'dist', 'server', 'index.js')).href) as TandemModule
  // the ws module instance the built server uses
  const ws = createRequire(join(ROOT, 'dist', 'server', 'transport.js'))('ws') as { Sender: { prototype: SenderPrototype } }
  const proto = ws.Sender.prototype
  const plainSend = proto.sendFrame
  const documentModule = await import(pathToFileURL(join(ROOT, 'dist', 'server', 'document.js')).href) as { Document: { prototype: DocumentPrototype } }
  const messages = await import(pathToFileURL(join(ROOT, 'dist', 'shared', 'messages.js')).href) as { writeSyncUpdate (update: Uint8Array): Uint8Array }
  const { MemoryStore } = await import(pathToFileURL(join(ROOT, 'dist', 'server', 'store', 'memory-store.js')).href) as { MemoryStore: new () => unknown }
  const documentProto = documentModule.Document.prototype
  const plainApply = documentProto.applyUpdate
  const rawApply: DocumentPrototype['applyUpdate'] = function (this: DocumentPrototype, update, from) {
    const frame = messages.writeSyncUpdate(update)
    this.broadcast(Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength), from)
  }
  const corkedSend: SenderPrototype['sendFrame'] = function (...args) {
    const socket = this._socket
    if (socket.__corked !== true) {
      socket.__corked = true
      socket.cork()
      process.nextTick(() => { socket.__corked = false; socket.uncork() })
    }
    plainSend.apply(this, args)
  }
  const loadgen = await LoadGenerator.start()
  try {
    // two rounds, the second in reverse order, so that drift in the machine's load evens out
    for (const variant of [...variants, ...[...variants].reverse()]) {
      proto.sendFrame = variant === 'cork' || variant === 'both' ? corkedSend : plainSend
      documentProto.applyUpdate = variant === 'no-yjs' ? rawApply : plainApply
      const dir = mkdtempSync(join(tmpdir(), 'bench-exp-'))
      const server = tandem.createServer({
        port: 0, dataDir: dir, logLevel: 'warn', maxConnectionsPerIp: 0, maxMessagesPerSecond: 0, ...(variant === 'memory-store' ? { persistence: new MemoryStore() } : {}), ...(variant === 'no-commit-delay' ? { commitDelayMs: 0 } : {}), ...(variant === 'commit-delay-10' ? { commitDelayMs: 10 } : {}), ...(variant === 'no-compaction' || variant === 'both' ? { compactAfterUpdates: 2 ** 31 - 1, compactAfterBytes: 2 ** 52 } : {})
      })
      await server.listen()
      try {
        const result = await loadgen.run<FanoutResult>({
          cmd: 'fanout',
          target: { url: server.url, dialect: 'y-websocket', pid: process.pid },
          spec: { docs, perDoc, rate: Number(rateArg), warmupMs: 1_000, durationMs: Number(secondsArg) * 1000, drainMs: 2_000, seed: 1, prefix: `exp-${variant}` }
        })
        const metrics = await (await fetch(`${server.url.replace(/^ws/, 'http')}/metrics`)).text()
        const figure = (name: string): number => Number(metrics.split('\n').find(line => line.startsWith(name + ' '))?.split(' ')[1] ?? NaN)
        const commits = figure('tandem_store_batch_updates_count')
        const perCommit = figure('tandem_store_batch_updates_sum') / commits
        console.log(`${variant.padEnd(14)} CPU ${result.cpuPerDelivery.toFixed(2)} µs per delivery  p50 ${result.p50.toFixed(2)} ms  p99 ${result.p99.toFixed(2)} ms  delivered ${Math.round(result.deliveredPerSec)}/s  lost ${result.lost}  commits ${commits} (${perCommit.toFixed(1)} updates each)`)
      } finally {
        await server.close()
        rmSync(dir, { recursive: true, force: true })
      }
    }
  } finally {
    proto.sendFrame = plainSend
    documentProto.applyUpdate = plainApply
    loadgen.stop()
  }
}

main().catch((err: unknown) => {
  console.error(err)
  process.exitCode = 1
})
