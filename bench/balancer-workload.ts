import type { BenchOptions } from './options.js'
import type { ServerSpec } from './servers.js'
import type { LoadGenerator } from './loadgen-client.js'
import type { FanoutResult } from './workloads.js'
import { CLUSTERED, startCluster } from './cluster.js'
import { summarise } from './stats.js'

/**
 * Workload `balancer`: two instances of each server sharing one Redis and one PostgreSQL, D×C
 * clients (default 10×10) with half of each document's clients on each instance. A fixed-rate
 * run (default 5 edits/s per client) gives p50/p99 latency split by where the receiver is: on
 * the sender's instance, or on the other (cross-instance). Then a ladder of per-client rates on
 * the same shape gives the highest rate sustained with p99 at or under the limit and nothing
 * lost, and the p99 of every server at each rate; the rate where Hocuspocus first fails is the
 * one "where it starts to queue", and the servers' p99 there are compared.
 */

/** What the workload needs of the runner. */
export interface BalancerContext {
  options: BenchOptions
  specs: ServerSpec[]
  loadgen: LoadGenerator
  metric (metric: { key: string, workload: string, label: string, better: 'lower' | 'higher', digits: number }): void
  add (metric: string, server: string, value: number): void
  note (line: string): void
  extra (lines: string[]): void
  log (line: string): void
  attempt (what: string, spec: ServerSpec, work: () => Promise<void>): Promise<void>
  rotated<T> (items: readonly T[], by: number): T[]
  cpus?: string
}

/**
 * A ladder step fails after this many failed tries (the other ladders: 2). Two instances, a
 * balancer, PostgreSQL and Redis share two cores with the load generator: a burst anywhere spoils
 * a 3 s window's p99, so a rate counts as sustained when one of three tries passes.
 */
const FAILURES = 3

const fixed = (value: number | null | undefined, digits: number): string => typeof value === 'number' && Number.isFinite(value) ? value.toFixed(digits) : 'n/a'

export async function runBalancer (ctx: BalancerContext): Promise<void> {
  const { options } = ctx
  const { docs, perDoc, rates } = options.balancer
  const specs = ctx.specs.filter(spec => CLUSTERED.includes(spec.key))
  if (specs.length === 0) throw new Error(`the balancer workload runs ${CLUSTERED.join(', ')}; none is in --servers`)
  const shape = `2 instances, ${docs}×${perDoc} (half of each document's clients on each)`
  const fixedWorkload = `${shape}, ${options.rate} edits/s per client`
  ctx.metric({ key: 'xi-cross-p50', workload: fixedWorkload, label: 'cross-instance p50 latency, ms', better: 'lower', digits: 2 })
  ctx.metric({ key: 'xi-cross-p99', workload: fixedWorkload, label: 'cross-instance p99 latency, ms', better: 'lower', digits: 2 })
  ctx.metric({ key: 'xi-same-p50', workload: fixedWorkload, label: 'same-instance p50 latency, ms', better: 'lower', digits: 2 })
  ctx.metric({ key: 'xi-same-p99', workload: fixedWorkload, label: 'same-instance p99 latency, ms', better: 'lower', digits: 2 })
  ctx.metric({ key: 'xi-cpu', workload: fixedWorkload, label: 'CPU of both instances per delivered update, µs', better: 'lower', digits: 2 })
  const { limitMs, ...ladderPhases } = options.balancer.ladder
  const ladderWorkload = `${shape}: highest sustained rate (p99 ≤ ${limitMs} ms, nothing lost, in one of ${FAILURES} tries; ${rates.join(', ')} edits/s per client)`
  ctx.metric({ key: 'xi-ladder-rate', workload: ladderWorkload, label: 'edits/s per client', better: 'higher', digits: 0 })
  ctx.metric({ key: 'xi-ladder-delivered', workload: ladderWorkload, label: 'updates delivered/s', better: 'higher', digits: 0 })
  /** p99 of each server's best try at each per-client rate, one per run. */
  const steps = new Map<number, Map<string, number[]>>()
  for (let run = 0; run < options.runs; run++) {
    ctx.log(`balancer (2 instances, ${docs}×${perDoc}) run ${run + 1}/${options.runs}`)
    for (const spec of ctx.rotated(specs, run)) {
      await ctx.attempt('balancer', spec, async () => {
        const cluster = await startCluster(spec, 2, ctx.cpus, !options.balancer.direct)
        try {
          const pids = cluster.instances.map(server => server.child.pid as number)
          const target = cluster.balancer !== undefined
            ? { url: cluster.balancer.url, instances: cluster.urls.length, dialect: spec.dialect, pids }
            : { url: cluster.urls[0] as string, urls: cluster.urls, dialect: spec.dialect, pids }
          // one set of clients: the fixed-rate run (after its warm-up: Hocuspocus's first two
          // seconds of a document loaded on two instances run at p50 of several hundred ms),
          // then the climb
          const ladder = await ctx.loadgen.run<{ best: FanoutResult | null, steps: FanoutResult[], first?: FanoutResult }>({
            cmd: 'ladder',
            target,
            spec: { docs, perDoc, rates, ...ladderPhases, limitMs, seed: options.seed + run, prefix: `xi-${run}`, first: { rate: options.rate, ...options.balancer.fanout }, failures: FAILURES }
          })
          const result = ladder.first as FanoutResult
          ctx.add('xi-cross-p50', spec.key, result.cross?.p50 ?? NaN)
          ctx.add('xi-cross-p99', spec.key, result.cross?.p99 ?? NaN)
          ctx.add('xi-same-p50', spec.key, result.same?.p50 ?? NaN)
          ctx.add('xi-same-p99', spec.key, result.same?.p99 ?? NaN)
          ctx.add('xi-cpu', spec.key, result.cpuPerDelivery)
          if (result.lost > 0 || result.duplicates > 0) ctx.note(`balancer run ${run + 1}, ${spec.label}: ${result.lost} of ${result.expected} deliveries lost, ${result.duplicates} duplicated`)
          ctx.log(`  ${spec.key.padEnd(12)} cross p50 ${fixed(result.cross?.p50, 2)} p99 ${fixed(result.cross?.p99, 2)} ms (n ${result.cross?.n ?? 0})  same p50 ${fixed(result.same?.p50, 2)} p99 ${fixed(result.same?.p99, 2)} ms  CPU ${fixed(result.cpuPerDelivery, 1)} µs/delivery  lost ${result.lost}  stolen ${Math.round(result.steal * 100)}%`)
          ctx.add('xi-ladder-rate', spec.key, ladder.best?.rate ?? 0)
          ctx.add('xi-ladder-delivered', spec.key, ladder.best?.deliveredPerSec ?? 0)
          // each rate's least disturbed try (the lowest p99) of this run
          const best = new Map<number, number>()
          for (const step of ladder.steps) best.set(step.rate, Math.min(best.get(step.rate) ?? Infinity, failedP99(step)))
          for (const [rate, p99] of best) {
            let byServer = steps.get(rate)
            if (byServer === undefined) steps.set(rate, byServer = new Map())
            byServer.set(spec.key, [...(byServer.get(spec.key) ?? []), p99])
          }
          if (ladder.best !== null && ladder.best.rate === rates[rates.length - 1]) ctx.note(`balancer ladder run ${run + 1}, ${spec.label}: passed the top rate (${ladder.best.rate} edits/s per client); its limit is higher`)
          ctx.log(`  ${spec.key.padEnd(12)} ${ladder.steps.map(s => `${s.rate}/s: p99 ${fixed(s.p99, 1)} (cross ${fixed(s.cross?.p99, 1)}) CPU ${fixed(s.cpuPerDelivery, 1)} lost ${s.lost} sent ${Math.round(s.sentPerSec)}`).join(' | ')}`)
        } finally {
          await cluster.stop()
        }
      })
    }
  }
  ctx.extra(renderSteps(steps, specs, limitMs))
  const how = options.balancer.direct ? 'clients connect straight to the two instances, alternately' : 'clients connect through bench/balancer.ts (round-robin per connection, its own process), one at a time, so alternately'
  for (const spec of specs) ctx.note(`balancer, ${spec.label}: ${how}; ${spec.key === 'hocuspocus' ? 'Redis extension, Database extension over PostgreSQL' : 'PostgreSQL store, --redis'}`)
}

/** A step's p99, or Infinity where deliveries were lost (the step failed whatever its p99). */
function failedP99 (step: FanoutResult): number {
  return step.lost > 0 ? Infinity : step.p99
}

/**
 * p99 at every per-client rate of the ladders, and the comparison at the rate where Hocuspocus
 * starts to queue: the lowest rate whose median p99 (of its best tries) is over the limit.
 */
function renderSteps (steps: Map<number, Map<string, number[]>>, specs: ServerSpec[], limitMs: number): string[] {
  if (steps.size === 0) return []
  const median = (values: number[] | undefined): number => values === undefined || values.length === 0 ? NaN : summarise(values.map(v => Number.isFinite(v) ? v : 1e9)).median
  const cell = (value: number): string => !Number.isFinite(value) ? '–' : value >= 1e9 ? 'lost' : value.toFixed(1)
  const rates = [...steps.keys()].sort((a, b) => a - b)
  const header = ['edits/s per client', ...specs.map(s => s.label), 'Tandem ÷ Hocuspocus']
  const lines = [`p99 latency along the balancer ladder (2 instances), ms (median of the runs; each rate's best of up to ${FAILURES} tries; "lost": deliveries lost in every try):`, '', `| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`]
  for (const rate of rates) {
    const byServer = steps.get(rate) as Map<string, number[]>
    const tandem = median(byServer.get('tandem'))
    const hocus = median(byServer.get('hocuspocus'))
    const ratio = Number.isFinite(tandem) && Number.isFinite(hocus) && tandem < 1e9 && hocus < 1e9 ? `${(tandem / hocus).toFixed(2)}×` : '–'
    lines.push(`| ${[String(rate), ...specs.map(spec => cell(median(byServer.get(spec.key)))), ratio].join(' | ')} |`)
  }
  lines.push('')
  const queue = rates.find(rate => median(steps.get(rate)?.get('hocuspocus')) > limitMs)
  if (queue !== undefined) {
    const byServer = steps.get(queue) as Map<string, number[]>
    const tandem = median(byServer.get('tandem'))
    const hocus = median(byServer.get('hocuspocus'))
    lines.push(`Hocuspocus starts to queue at ${queue} edits/s per client (its p99 ${cell(hocus)} ms, over ${limitMs} ms); Tandem's p99 there: ${cell(tandem)} ms${tandem < 1e9 && hocus < 1e9 ? ` (${(tandem / hocus).toFixed(2)}×)` : ''}.`, '')
  }
  return lines
}
