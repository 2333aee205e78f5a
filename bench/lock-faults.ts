// Lock safety under faults at a large size: `npm run bench:lock-faults`, or
//   node bench/dist/bench/lock-faults.js [--runs 3] [--seed S] [--clients 20] [--seconds 90] [--faults 16]
// Each run is lock-faults-run.ts (three tandem processes on PostgreSQL and a private Redis behind
// the balancer, clients taking one lock and writing with its fencing token into a fenced
// resource, a seeded schedule of instance kills, Redis restarts with and without its data, and
// cut connections), checked by lock-checker.ts. Runs use seeds S, S+1, ...; a failing seed
// replays with --seed S --runs 1. Exits 1 when any run broke a rule. PostgreSQL: TANDEM_BENCH_POSTGRES;
// another build of the server: TANDEM_BENCH_CLI=/path/to/dist/server/cli.js.
import { fileURLToPath } from 'node:url'
import { runLockFaults } from './lock-faults-run.js'

function option (name: string, fallback: number): number {
  const index = process.argv.indexOf(`--${name}`)
  return index === -1 ? fallback : Number(process.argv[index + 1])
}

const runs = option('runs', 3)
const first = option('seed', Math.floor(Math.random() * 2 ** 31))
const clients = option('clients', 20)
const seconds = option('seconds', 90)
const faults = option('faults', 16)
// every stock provider adds a process 'exit' listener
process.setMaxListeners(clients + 10)
const cli = process.env.TANDEM_BENCH_CLI ?? fileURLToPath(new URL('../../../dist/server/cli.js', import.meta.url))
const postgres = process.env.TANDEM_BENCH_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432/test'

let broken = 0
console.log('| seed | faults done | grants | writes taken | late writes refused | refused in a hold | longest overlap (ms) | refused or failed acquisitions | violations |')
console.log('|---|---|---|---|---|---|---|---|---|')
const rows: string[] = []
for (let run = 0; run < runs; run++) {
  const seed = first + run
  const result = await runLockFaults({ cli, postgres, seed, clients, durationMs: seconds * 1_000, faults, log: line => console.error(line) })
  const { verdict } = result
  const failed = Object.entries(result.failures).map(([code, n]) => `${code.replace('TANDEM_ERR_', '')} ${n}`).join(', ')
  rows.push(`| ${seed} | ${result.done.length} | ${verdict.grants} | ${verdict.accepted} | ${verdict.refusedLate} | ${verdict.refusedInHold} | ${verdict.maxOverlapMs} | ${failed} | ${verdict.violations.length} |`)
  console.log(rows.at(-1))
  if (verdict.violations.length > 0) {
    broken++
    console.error(`seed ${seed} broke ${verdict.violations.length} rules:\n  ${verdict.violations.slice(0, 20).join('\n  ')}\nschedule:\n  ${result.done.join('\n  ')}`)
  }
}
console.error(`${runs} runs of ${clients} clients, ${seconds} s, ${faults} faults each: ${broken === 0 ? 'no rule broken' : `${broken} broke a rule`}`)
process.exitCode = broken === 0 ? 0 : 1
