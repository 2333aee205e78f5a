import { readFileSync, readdirSync } from 'node:fs'
import { spawn } from 'node:child_process'
import { serverSpecs, startServer, type ServerSpec } from './servers.js'
import { LoadGenerator } from './loadgen-client.js'
import type { FanoutResult } from './workloads.js'

/**
 * `npm run bench:threads -- [SERVER] [DOCSxCLIENTS] [RATE] [SECONDS]`: one fan-out against one
 * server (default `tandem 100x5 5 8`), and the server's CPU time per delivered update split by
 * thread (main, the SQLite worker, V8's helpers), from /proc/PID/task over a window inside the
 * measured one. For A/B runs of two builds side by side:
 *
 *   CLI=/path/to/other/dist/server/cli.js   runs that build's Tandem instead of this one's
 *   PERF=/tmp/perf.data                     also `perf record -g` the window (with --perf-basic-prof)
 *   NODEARGS='--max-semi-space-size=4'      node flags for the server
 */

type Ticks = Map<string, { user: number, system: number }>

/** CPU ticks (user, system) of every thread of `pid`; the main thread is `main`. */
function threads (pid: number): Ticks {
  const out: Ticks = new Map()
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let stat: string
    try {
      stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')
    } catch {
      continue // the thread ended meanwhile
    }
    const name = tid === String(pid) ? 'main' : `${stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))}-${tid}`
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    out.set(name, { user: Number(fields[11]), system: Number(fields[12]) })
  }
  return out
}

/** The spec, running another build's cli.js when CLI is set. */
function withCli (spec: ServerSpec, cli: string | undefined): ServerSpec {
  if (cli === undefined) return spec
  return {
    ...spec,
    command: (port, dir) => {
      const command = spec.command(port, dir)
      return { ...command, args: command.args.map(arg => arg.endsWith('cli.js') ? cli : arg) }
    }
  }
}

const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

async function main (): Promise<void> {
  const [key = 'tandem', shape = '100x5', rate = '5', secondsArg = '8'] = process.argv.slice(2)
  const [docs, perDoc] = shape.split('x').map(Number) as [number, number]
  const seconds = Number(secondsArg)
  const found = serverSpecs().find(spec => spec.key === key)
  if (found === undefined) throw new Error(`no server ${key}: tandem, y-websocket, hocuspocus or floor`)
  const spec = withCli(found, process.env.CLI)
  const nodeArgs = (process.env.NODEARGS ?? '').split(' ').filter(Boolean)
  if (process.env.PERF !== undefined) nodeArgs.push('--perf-basic-prof')
  const loadgen = await LoadGenerator.start()
  const server = await startServer(spec, nodeArgs)
  const pid = server.child.pid as number
  try {
    // the window: from 6 s in (connections made, 2 s of warm-up gone) for SECONDS - 2 s, inside
    // the load generator's measured window, which runs 4 s longer
    const windowMs = (seconds - 2) * 1000
    const window = (async () => {
      await sleep(6_000)
      const before = threads(pid)
      if (process.env.PERF !== undefined) {
        spawn('perf', ['record', '-F', '1999', '-g', '-p', String(pid), '-o', process.env.PERF, '--', 'sleep', String(windowMs / 1000)], { stdio: 'ignore' })
      }
      await sleep(windowMs)
      return { before, after: threads(pid) }
    })()
    const result = await loadgen.run<FanoutResult>({
      cmd: 'fanout',
      target: { url: server.url, dialect: spec.dialect, pid },
      spec: { docs, perDoc, rate: Number(rate), warmupMs: 2_000, durationMs: (seconds + 4) * 1000, drainMs: 0, seed: 1, prefix: 'threads' }
    })
    const { before, after } = await window
    const deliveries = result.deliveredPerSec * windowMs / 1000
    // ticks are 10 ms: 1 tick per delivery is 10,000 µs
    const perDelivery = (ticks: number): string => (ticks * 1e4 / deliveries).toFixed(2)
    let total = 0
    const rows: string[] = []
    for (const [name, { user, system }] of after) {
      const start = before.get(name) ?? { user: 0, system: 0 }
      const ticks = user - start.user + system - start.system
      total += ticks
      if (ticks > 0) rows.push(`  ${name.padEnd(16)} user ${String(user - start.user).padStart(5)}  sys ${String(system - start.system).padStart(5)}  ${perDelivery(ticks)} µs/delivery`)
    }
    console.log(`${key} ${shape} ${rate}/s: ${Math.round(deliveries)} deliveries, p50 ${result.p50.toFixed(2)} p99 ${result.p99.toFixed(2)} ms, CPU ${perDelivery(total)} µs/delivery`)
    console.log(rows.join('\n'))
  } finally {
    await server.stop()
    loadgen.stop()
  }
}

main().catch(err => {
  console.error(err)
  process.exit(1)
})
