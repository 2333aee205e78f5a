// The lock fault run, shared by the suite (test/cluster/lock-faults.test.ts, small) and the bench
// (lock-faults.ts, large): a private redis-server, three `tandem` processes on one PostgreSQL
// schema and that Redis, a balancer in front, and TandemClients that take one lock in turn and
// write with its fencing token into a fenced resource (lock-checker.ts), while a seeded schedule
// kills instances, restarts Redis with and without its data, and cuts every connection.
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { randomUUID } from 'node:crypto'
import WebSocket from 'ws'
import pg from 'pg'
import { Redis } from 'ioredis'
import { TandemClient } from '../client/index.js'
import { startBalancer, type Balancer } from './balancer.js'
import { FencedResource, faultSchedule, verify, type Fault, type Hold, type Verdict } from './lock-checker.js'
import { prng } from './stats.js'
import { freePort } from './servers.js'

/** Options of a run. */
export interface FaultRunOptions {
  /** The built server, `dist/server/cli.js`. */
  cli: string
  /** PostgreSQL URL (the schema is made and dropped here). */
  postgres: string
  seed: number
  clients: number
  durationMs: number
  faults: number
  /** @default 3 */
  instances?: number
  /** Lease of each lock (the overlap bound). @default 1_000 */
  ttlMs?: number
  /** Progress lines (the schedule as it runs). */
  log?: (line: string) => void
}

/** What a run did and found. */
export interface FaultRunResult {
  seed: number
  schedule: Fault[]
  /** Each fault as done: `at` (ms from the start) and what happened. */
  done: string[]
  holds: Hold[]
  verdict: Verdict
  /** Acquisitions refused or failed, by error code. */
  failures: Record<string, number>
  durationMs: number
}

const HEARTBEAT = ['--heartbeat-interval', '500', '--heartbeat-timeout', '2000']


const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

async function until (condition: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!await condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(20)
  }
}

/** A redis-server with an append-only file (fsync always), so a SIGKILL keeps its data unless wiped. */
class FaultRedis {
  private child: ChildProcess | undefined
  readonly dir = mkdtempSync(join(tmpdir(), 'tandem-faults-redis-'))
  constructor (readonly port: number) {}
  get url (): string { return `redis://127.0.0.1:${this.port}` }

  async start (): Promise<void> {
    this.child = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir, '--save', '',
      '--appendonly', 'yes', '--appendfsync', 'always'], { stdio: 'ignore' })
    await until(async () => {
      const redis = new Redis(this.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
      redis.on('error', () => {})
      try {
        await redis.connect()
        return await redis.ping() === 'PONG'
      } catch {
        return false
      } finally {
        redis.disconnect()
      }
    }, 10_000, `redis-server on ${this.port}`)
  }

  /** SIGKILL; with `wipe`, its files go too (a restart without its data). */
  async kill (wipe = false): Promise<void> {
    const child = this.child
    this.child = undefined
    if (child !== undefined && child.exitCode === null) {
      const exited = once(child, 'exit')
      child.kill('SIGKILL')
      await exited
    }
    if (wipe) {
      rmSync(this.dir, { recursive: true, force: true })
      mkdirSync(this.dir)
    }
  }

  async close (): Promise<void> {
    await this.kill()
    rmSync(this.dir, { recursive: true, force: true })
  }
}

/** A `tandem` process on a fixed port, so that it comes back where the balancer expects it. */
class FaultInstance {
  private child: ChildProcess | undefined
  /** Its last lines (stdout and stderr), for a failure report. */
  readonly tail: string[] = []
  constructor (readonly port: number, private readonly cli: string, private readonly args: readonly string[]) {}
  get http (): string { return `http://127.0.0.1:${this.port}` }

  async start (): Promise<void> {
    const child = spawn(process.execPath, [this.cli, '--port', String(this.port), '--log-level', 'info', ...this.args], { stdio: ['ignore', 'pipe', 'pipe'] })
    this.child = child
    const keep = (line: string): void => {
      this.tail.push(line)
      if (this.tail.length > 50) this.tail.shift()
    }
    createInterface({ input: child.stderr! }).on('line', keep)
    const lines = createInterface({ input: child.stdout! })
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL')
        reject(new Error(`tandem on ${this.port} did not start:\n${this.tail.join('\n')}`))
      }, 15_000)
      child.once('exit', code => { clearTimeout(timer); reject(new Error(`tandem on ${this.port} exited with ${code}:\n${this.tail.join('\n')}`)) })
      lines.on('line', line => {
        keep(line)
        if (line.includes('listening on')) { clearTimeout(timer); resolve() }
      })
    })
  }

  async kill (): Promise<void> {
    const child = this.child
    this.child = undefined
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return
    const exited = once(child, 'exit')
    child.kill('SIGKILL')
    await exited
  }
}

/** One client's loop: acquire, write, hold, write, release; every hold recorded as it believed it. */
class LockLoop {
  readonly client: TandemClient
  private hold: Hold | undefined
  stopped = false

  constructor (
    readonly index: number,
    url: string,
    document: string,
    private readonly ttlMs: number,
    private readonly random: () => number,
    private readonly fence: FencedResource,
    private readonly holds: Hold[],
    private readonly failures: Record<string, number>,
    private readonly t0: number
  ) {
    this.client = new TandemClient({ url, document, user: { id: `c${index}`, name: `c${index}` }, WebSocketPolyfill: WebSocket as unknown as typeof globalThis.WebSocket })
    // a conservative client: its belief ends at once when its connection drops or it is told the lock is gone
    this.client.on('status', status => { if (status !== 'connected') this.end('dropped') })
    this.client.on('locks', event => {
      if (event.type === 'released' && event.lock.token === this.hold?.token) this.end(event.reason === 'lost' ? 'lost' : `released:${event.reason}`)
    })
  }

  private now (): number {
    return Date.now() - this.t0
  }

  private end (why: string): void {
    if (this.hold === undefined) return
    this.hold.end = this.now()
    this.hold.ended = why
    this.holds.push(this.hold)
    this.hold = undefined
  }

  private write (token: number): void {
    this.fence.write(this.index, token, this.now(), this.hold?.token === token)
  }

  async run (): Promise<void> {
    const resource = 'L'
    while (!this.stopped) {
      if (this.client.status !== 'connected' || this.client.sessionId === undefined) {
        await sleep(50)
        continue
      }
      let lock
      try {
        lock = await this.client.locks.acquire(resource, { ttlMs: this.ttlMs, waitMs: this.ttlMs * 4 })
      } catch (err) {
        const code = (err as { code?: string }).code ?? 'other'
        this.failures[code] = (this.failures[code] ?? 0) + 1
        await sleep(20 + this.random() * 80)
        continue
      }
      // a grant reply that came in on a connection already gone counts for nothing
      if (lock.released || this.client.status !== 'connected') continue
      this.hold = { client: this.index, session: this.client.sessionId ?? '', token: lock.token, start: this.now(), end: Infinity, ended: '' }
      this.write(lock.token)
      // mostly short holds; one in twenty over two leases long (the server must renew it, and a
      // hold the service lost shows as an overlap longer than the lease)
      await sleep(this.random() < 0.05 ? this.ttlMs * (2.5 + this.random()) : 10 + this.random() * 150)
      if (this.hold?.token === lock.token) this.write(lock.token)
      const late = this.random() < 0.15
      if (this.hold?.token === lock.token) {
        await Promise.race([lock.release().catch(() => {}), sleep(3_000)])
        this.end('released')
      } else {
        void lock.release().catch(() => {})
      }
      // a write that arrives after the release, as one delayed by a pause would: the fence refuses it once a newer token wrote
      if (late) setTimeout(() => this.write(lock.token), 50 + this.random() * 300)
      await sleep(this.random() * 50)
    }
    this.end('stopped')
  }
}

/**
 * Runs the deployment, the clients and the fault schedule for `durationMs`, then checks the
 * history. Everything it started is stopped before it resolves (or rejects).
 */
export async function runLockFaults (options: FaultRunOptions): Promise<FaultRunResult> {
  const log = options.log ?? (() => {})
  const ttlMs = options.ttlMs ?? 1_000
  const count = options.instances ?? 3
  const random = prng(options.seed)
  const schedule = faultSchedule(random, options.faults, options.durationMs, count)
  log(`lock-faults seed=${options.seed} clients=${options.clients} instances=${count} duration=${options.durationMs}ms ttl=${ttlMs}ms schedule=${JSON.stringify(schedule)}`)

  const schema = `tandem_faults_${randomUUID().replace(/-/g, '').slice(0, 12)}`
  const redis = new FaultRedis(await freePort())
  const instances: FaultInstance[] = []
  const loops: LockLoop[] = []
  let balancer: Balancer | undefined
  try {
    await redis.start()
    const args = ['--persistence', `${options.postgres}?schema=${schema}`, '--redis', redis.url, '--redis-prefix', `faults:${options.seed}:`,
      '--reconnect-grace', '1500', '--lock-min-ttl', String(Math.min(1_000, ttlMs)), ...HEARTBEAT]
    for (let i = 0; i < count; i++) {
      const instance = new FaultInstance(await freePort(), options.cli, args)
      instances.push(instance)
      await instance.start()
    }
    balancer = await startBalancer(instances.map(i => i.http))
    const all = instances.map(i => i.http)

    const fence = new FencedResource()
    const holds: Hold[] = []
    const failures: Record<string, number> = {}
    const t0 = Date.now()
    const document = `faults-${options.seed}-${randomUUID().slice(0, 8)}`
    for (let c = 0; c < options.clients; c++) {
      loops.push(new LockLoop(c, balancer.url, document, ttlMs, prng(options.seed * 1000 + c + 1), fence, holds, failures, t0))
    }
    const running = loops.map(loop => loop.run())

    const done: string[] = []
    const act = async (fault: Fault): Promise<string> => {
      switch (fault.kind) {
        case 'kill-instance': {
          const instance = instances[fault.instance ?? 0] as FaultInstance
          // a balancer with health checks stops sending it connections
          balancer!.setTargets(all.filter(t => t !== instance.http))
          await instance.kill()
          await sleep(1_000)
          await instance.start()
          balancer!.setTargets(all)
          return `killed instance ${fault.instance} (SIGKILL) and started it again`
        }
        case 'redis-restart':
        case 'redis-wipe': {
          const wipe = fault.kind === 'redis-wipe'
          await redis.kill(wipe)
          await sleep(300)
          await redis.start()
          return wipe ? 'Redis killed and started again without its data' : 'Redis killed and started again with its data (AOF)'
        }
        case 'drop-connections':
          return `cut ${balancer!.dropAll()} connections at the balancer`
      }
    }
    for (const fault of schedule) {
      const wait = t0 + fault.at - Date.now()
      if (wait > 0) await sleep(wait)
      const at = Date.now() - t0
      const what = await act(fault)
      const line = `${at} ms: ${what}`
      done.push(line)
      log(`  ${line}`)
    }
    const rest = t0 + options.durationMs - Date.now()
    if (rest > 0) await sleep(rest)
    // liveness, bounded: a lock granted again once the last fault had 3 s to heal (on a loaded
    // machine reconnecting to a restarted Redis can take longer than the run has left)
    const healed = (schedule.at(-1)?.at ?? 0) + 3_000
    const until = Date.now() + 15_000
    while (!holds.some(hold => hold.start > healed) && Date.now() < until) await sleep(100)
    for (const loop of loops) loop.stopped = true
    await Promise.race([Promise.all(running), sleep(10_000)])
    const verdict = verify(holds, fence.writes, ttlMs)
    return { seed: options.seed, schedule, done, holds, verdict, failures, durationMs: Date.now() - t0 }
  } finally {
    for (const loop of loops) {
      loop.stopped = true
      loop.client.destroy()
      // the awareness's interval outlives the provider until its doc is destroyed: without this
      // the process would not exit
      loop.client.doc.destroy()
    }
    await balancer?.close()
    await Promise.all(instances.map(i => i.kill()))
    await redis.close()
    const client = new pg.Client({ connectionString: options.postgres })
    await client.connect()
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
    await client.end()
  }
}
