import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { join, relative } from 'node:path'
import { serverSpecs, startServer, ROOT } from './servers.js'
import { LoadGenerator } from './loadgen-client.js'
import type { FanoutResult } from './workloads.js'
import type { StormShare } from './storm.js'

/**
 * `npm run bench:profile -- [DOCSxCLIENTS|storage|storm] [RATE|CLIENTS] [SECONDS]`: runs one
 * fan-out (or the storage workload, or a connection storm of CLIENTS) against Tandem started
 * with `node --cpu-prof`, then prints where the server spent its time: self time by function and
 * time including callees for Tandem's own functions. It only observes; it changes nothing.
 * The .cpuprofile stays in bench/results/profile/ for Chrome DevTools or speedscope.
 */

interface Node {
  id: number
  callFrame: { functionName: string, url: string, lineNumber: number }
  children?: number[]
}
interface Profile { nodes: Node[], samples: number[], timeDeltas: number[] }

async function main (): Promise<void> {
  const [shape = '1x50', rateArg = '20', secondsArg = '10'] = process.argv.slice(2)
  const [docs, perDoc] = shape.split('x').map(Number) as [number, number]
  const rate = Number(rateArg)
  const seconds = Number(secondsArg)
  const dir = join(ROOT, 'bench', 'results', 'profile')
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true })
  const spec = serverSpecs().find(s => s.key === 'tandem')!
  const server = await startServer(spec, ['--cpu-prof', `--cpu-prof-dir=${dir}`])
  const loadgen = await LoadGenerator.start()
  const target = { url: server.url, dialect: spec.dialect }
  try {
    if (shape === 'storm') {
      const extra = await LoadGenerator.start()
      try {
        const count = Number(rateArg)
        const startAt = Date.now() + 300
        const half = Math.floor(count / 2)
        const shares = await Promise.all([loadgen, extra].map(async (generator, i) => await generator.run<StormShare>({
          cmd: 'storm-open', target, spec: { count: i === 0 ? half : count - half, offset: i === 0 ? 0 : half, perDoc: 10, startAt, timeoutMs: 60_000, prefix: 'profile' }
        })))
        const seconds = (Math.max(...shares.map(s => s.last)) - Math.min(...shares.map(s => s.first))) / 1000
        console.log(`storm of ${count}: ${shares.reduce((n, s) => n + s.synced, 0)} synced in ${seconds.toFixed(2)} s`)
        await Promise.all([loadgen, extra].map(async generator => await generator.run({ cmd: 'storm-close' })))
      } finally {
        extra.stop()
      }
    } else if (shape === 'storage') {
      const result = await loadgen.run<{ perSec: number }>({ cmd: 'storage', target, spec: { window: 64, authors: 64, warmupMs: 1_000, durationMs: seconds * 1000, seed: 1, prefix: 'profile' } })
      console.log(`storage throughput for ${seconds} s: ${Math.round(result.perSec)} edits/s`)
    } else {
      const result = await loadgen.run<FanoutResult>({
        cmd: 'fanout',
        target,
        spec: { docs, perDoc, rate, warmupMs: 1_000, durationMs: seconds * 1000, drainMs: 2_000, seed: 1, prefix: 'profile' }
      })
      console.log(`fan-out ${docs}×${perDoc} at ${rate}/s per client for ${seconds} s: p50 ${result.p50.toFixed(2)} ms, p99 ${result.p99.toFixed(2)} ms, delivered ${Math.round(result.deliveredPerSec)}/s, lost ${result.lost}`)
    }
  } finally {
    loadgen.stop()
    await server.stop()
  }
  const file = readdirSync(dir).find(f => f.endsWith('.cpuprofile'))
  if (file === undefined) throw new Error('no .cpuprofile written')
  summarise(JSON.parse(readFileSync(join(dir, file), 'utf8')) as Profile, join(dir, file))
}

function summarise (profile: Profile, file: string): void {
  const byId = new Map(profile.nodes.map(node => [node.id, node]))
  const parent = new Map<number, number>()
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id)
  const self = new Map<number, number>()
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)))
  let total = 0
  for (const us of self.values()) total += us
  const where = (node: Node): string => {
    const url = node.callFrame.url.replace('file://', '')
    const short = url === '' ? '' : relative(ROOT, url)
    return `${node.callFrame.functionName || '(anonymous)'} ${short}:${node.callFrame.lineNumber + 1}`
  }
  const selfBy = new Map<string, number>()
  const inclusiveBy = new Map<string, number>()
  for (const [id, us] of self) {
    const node = byId.get(id)!
    selfBy.set(where(node), (selfBy.get(where(node)) ?? 0) + us)
    // charge every distinct frame on the stack once
    const seen = new Set<string>()
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const key = where(byId.get(at)!)
      if (seen.has(key)) continue
      seen.add(key)
      inclusiveBy.set(key, (inclusiveBy.get(key) ?? 0) + us)
    }
  }
  const pct = (us: number): string => `${(100 * us / total).toFixed(1).padStart(5)}%`
  console.log(`\nprofile: ${relative(ROOT, file)}, ${(total / 1e6).toFixed(1)} s sampled\n\nself time, top 25:`)
  for (const [key, us] of [...selfBy].sort((a, b) => b[1] - a[1]).slice(0, 25)) console.log(`  ${pct(us)}  ${key}`)
  console.log('\ntime including callees, Tandem functions (dist/), top 25:')
  for (const [key, us] of [...inclusiveBy].filter(([key]) => key.includes('dist/')).sort((a, b) => b[1] - a[1]).slice(0, 25)) console.log(`  ${pct(us)}  ${key}`)
}

main().catch((err: unknown) => {
  console.error(err)
  process.exitCode = 1
})
