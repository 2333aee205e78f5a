import type { AdversarialOptions } from './adversarial.js'
import type { BigOptions } from './big.js'

/** What one bench invocation runs, from its command line. */
export interface BenchOptions {
  quick: boolean
  /** Repetitions of every workload; the table gives the median with min and max. */
  runs: number
  /** Server keys to run, in order. */
  servers: string[]
  /** Workload keys to run. */
  workloads: string[]
  /** Per-client edit rate of the fixed-rate fan-outs, edits per second. */
  rate: number
  /** documents × clients of the fixed-rate fan-outs. */
  shapes: Array<[number, number]>
  fanout: { warmupMs: number, durationMs: number, drainMs: number }
  /** Edit rates (all clients together, edits per second) the ladder climbs, on each of `shapes`. */
  ladder: { totals: number[], warmupMs: number, durationMs: number, drainMs: number, limitMs: number }
  idle: { connections: number, perDoc: number, quietMs: number, maxWaitMs: number }
  /** Connection storm: clients opened at once, per document, from how many generator processes. */
  storm: { clients: number, perDoc: number, generators: number, timeoutMs: number }
  sync: { bytes: number, settleMs: number }
  storage: { window: number, authors: number, warmupMs: number, durationMs: number }
  /** The cost bench of hostile inputs (workload `adversarial`, Tandem only; see adversarial.ts). */
  adversarial: AdversarialOptions
  /**
   * Two instances of each server behind one Redis and one PostgreSQL (workload `balancer`, not
   * in the default set): D×C clients, half on each instance, through bench/balancer.ts (or
   * straight to the instances with `direct`); a fixed-rate run at `rate` per
   * client, then a ladder of per-client `rates`.
   */
  balancer: { direct: boolean, docs: number, perDoc: number, rates: number[], fanout: { warmupMs: number, durationMs: number, drainMs: number }, ladder: { warmupMs: number, durationMs: number, drainMs: number, limitMs: number } }
  /** Big documents (workload `big`, not run by default; see big.ts). */
  big: BigOptions
  /** Families of the cost bench to run (the two baselines always run); empty: all. */
  families: string[]
  seed: number
  /** Scheduling priority (nice) for the runner, which its servers and load generator inherit. */
  nice: number | undefined
  /** Servers on CPU 0, the runner and load generator on CPU 1 (taskset), so they never share one. */
  pin: boolean
}

export const WORKLOADS = ['fanout', 'ladder', 'idle', 'storm', 'sync', 'storage', 'adversarial', 'balancer', 'big'] as const

const FULL: BenchOptions = {
  quick: false,
  runs: 3,
  servers: ['tandem', 'y-websocket', 'hocuspocus', 'floor'],
  // run only when asked for: the cost bench measures Tandem alone, the cluster needs PostgreSQL
  // and Redis, big documents take minutes
  workloads: WORKLOADS.filter(w => w !== 'adversarial' && w !== 'balancer' && w !== 'big'),
  rate: 5,
  shapes: [[1, 50], [10, 20], [100, 5]],
  fanout: { warmupMs: 2_000, durationMs: 4_000, drainMs: 3_000 },
  ladder: { totals: [500, 1000, 2000, 3000, 4000, 5000, 6000, 8000, 10_000, 12_000, 16_000, 24_000, 32_000, 48_000, 64_000], warmupMs: 500, durationMs: 2_000, drainMs: 2_000, limitMs: 100 },
  idle: { connections: 5_000, perDoc: 50, quietMs: 500, maxWaitMs: 20_000 },
  storm: { clients: 10_000, perDoc: 10, generators: 2, timeoutMs: 60_000 },
  sync: { bytes: 1024 * 1024, settleMs: 1_500 },
  storage: { window: 64, authors: 64, warmupMs: 1_000, durationMs: 3_000 },
  adversarial: { scale: 1, warmupMs: 1_000, durationMs: 4_000, drainMs: 5_000, maxWaitMs: 120_000, holdMs: 3_000 },
  balancer: {
    direct: false,
    docs: 10,
    perDoc: 10,
    rates: [5, 10, 20, 30, 40, 60, 80, 100, 120, 160, 200, 240],
    fanout: { warmupMs: 4_000, durationMs: 6_000, drainMs: 3_000 },
    ladder: { warmupMs: 1_000, durationMs: 3_000, drainMs: 2_000, limitMs: 100 }
  },
  big: { sizes: [1, 10, 100], docs: 10, perDoc: 5, rate: 5, baselineMs: 4_000, afterMs: 6_000, timeoutMs: 300_000 },
  families: [],
  seed: 20_261_121,
  nice: undefined,
  pin: false
}

const QUICK: BenchOptions = {
  ...FULL,
  quick: true,
  runs: 1,
  fanout: { warmupMs: 300, durationMs: 1_000, drainMs: 500 },
  ladder: { totals: [500, 1000, 2000], warmupMs: 200, durationMs: 600, drainMs: 500, limitMs: 100 },
  idle: { connections: 500, perDoc: 50, quietMs: 300, maxWaitMs: 5_000 },
  storm: { clients: 2_000, perDoc: 10, generators: 2, timeoutMs: 30_000 },
  sync: { bytes: 1024 * 1024, settleMs: 800 },
  storage: { window: 64, authors: 64, warmupMs: 200, durationMs: 800 },
  adversarial: { scale: 0.2, warmupMs: 500, durationMs: 2_000, drainMs: 2_000, maxWaitMs: 20_000, holdMs: 1_500 },
  balancer: {
    direct: false,
    docs: 10,
    perDoc: 10,
    rates: [5, 20, 40, 80],
    fanout: { warmupMs: 3_000, durationMs: 2_000, drainMs: 1_000 },
    ladder: { warmupMs: 300, durationMs: 1_000, drainMs: 1_000, limitMs: 100 }
  },
  big: { ...FULL.big, sizes: [1, 10], baselineMs: 2_000, afterMs: 3_000 }
}

export const USAGE = `npm run bench -- [options]
  --quick              about a minute: one run, short phases, 500 idle connections, a storm of 2000
  --runs N             repetitions of every workload (default 3, quick 1)
  --servers a,b        any of tandem,y-websocket,hocuspocus,floor,floor-framed,floor-awareness,tandem-webhook,tandem-webhook-down (default the first
                       four; floor-framed is the floor sending as Tandem does, each frame made once; tandem-base
                       is another build of Tandem, named by TANDEM_BASE_CLI=/path/to/dist/server/cli.js)
  --workloads a,b      any of ${WORKLOADS.join(',')} (default all but adversarial and balancer;
                       balancer: two instances of tandem, tandem-base and hocuspocus on one Redis and
                       PostgreSQL, BENCH_REDIS and BENCH_POSTGRES, 10x10 clients half on each)
  --balancer-direct    balancer workload without the balancer: clients connect to the instances alternately
  --balancer-rates A,B per-client edits per second the balancer ladder climbs (default 5 ... 240, quick 5,20,40,80)
  --scale F            size of the adversarial inputs, 1 = the issue's reproductions (default 1,
                       quick 0.2); e.g. 0.05 for a smoke run
  --families a,b       adversarial families to run (default all; the baselines always run)
  --big-sizes A,B      sizes in MiB of the big-document workload (default 1,10,100, quick 1,10)
  --connections N      idle connections for the memory workload (default 5000, quick 500)
  --storm N            clients of the connection storm, opened at once (default 10000, quick 2000)
  --generators N       load-generator processes sharing the storm's clients (default 2)
  --shapes AxB,...     documents x clients of the fan-outs and rate ladders (default 1x50,10x20,100x5)
  --rate N             per-client edits per second of the fixed-rate fan-outs (default 5)
  --ladder A,B,...     total edits per second the rate ladders climb (default 500 ... 64000)
  --nice N             run the bench at this scheduling priority (-20..19; below 0 needs root):
                       on a shared machine, e.g. -5 keeps other work from distorting the figures
  --pin                servers on CPU 0, the load generator on CPU 1 (taskset; needs 2 CPUs): each
                       server gets one core to itself, threads and all
  --seed N             base seed (default ${FULL.seed})
`

/** Parses the command line; throws with a message naming the bad flag. */
export function parseArgs (argv: string[]): BenchOptions {
  const quick = argv.includes('--quick')
  const options: BenchOptions = structuredClone(quick ? QUICK : FULL)
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i] as string
    if (flag === '--quick') continue
    if (flag === '--balancer-direct') {
      options.balancer.direct = true
      continue
    }
    if (flag === '--pin') {
      options.pin = true
      continue
    }
    if (flag === '--help' || flag === '-h') throw new Error(USAGE)
    const value = argv[++i]
    if (value === undefined) throw new Error(`${flag} needs a value\n${USAGE}`)
    const int = (): number => {
      const n = Number(value)
      if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} must be a positive integer, got ${value}`)
      return n
    }
    switch (flag) {
      case '--runs': options.runs = int(); break
      case '--connections': options.idle.connections = int(); break
      case '--storm': options.storm.clients = int(); break
      case '--generators': options.storm.generators = int(); break
      case '--rate': options.rate = int(); break
      case '--ladder': options.ladder.totals = value.split(',').map(Number).filter(n => Number.isInteger(n) && n > 0); break
      case '--seed': options.seed = int(); break
      case '--balancer-rates': options.balancer.rates = value.split(',').map(Number).filter(n => Number.isInteger(n) && n > 0); break
      case '--nice': {
        const n = Number(value)
        if (!Number.isInteger(n) || n < -20 || n > 19) throw new Error(`--nice must be an integer from -20 to 19, got ${value}`)
        options.nice = n
        break
      }
      case '--servers': options.servers = value.split(','); break
      case '--families': options.families = value.split(','); break
      case '--big-sizes': options.big.sizes = value.split(',').map(Number).filter(n => Number.isFinite(n) && n > 0); break
      case '--scale': {
        const f = Number(value)
        if (!Number.isFinite(f) || f <= 0 || f > 10) throw new Error(`--scale must be a number in (0, 10], got ${value}`)
        options.adversarial.scale = f
        break
      }
      case '--workloads': options.workloads = value.split(','); break
      case '--shapes': options.shapes = value.split(',').map(shape => {
        const match = /^(\d+)x(\d+)$/.exec(shape)
        if (match === null || Number(match[2]) < 2) throw new Error(`--shapes takes DOCSxCLIENTS (at least 2 clients), got ${shape}`)
        return [Number(match[1]), Number(match[2])] as [number, number]
      }); break
      default: throw new Error(`unknown flag ${flag}\n${USAGE}`)
    }
  }
  for (const w of options.workloads) if (!(WORKLOADS as readonly string[]).includes(w)) throw new Error(`unknown workload ${w}`)
  return options
}
