import { onTestFinished, test } from 'vitest'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createServer as createNetServer } from 'node:net'
import { randomUUID } from 'node:crypto'
import pg from 'pg'
import { Redis } from 'ioredis'
import { waitFor } from './helpers.js'

/** The test PostgreSQL (trust auth, db `test`); override with TANDEM_TEST_POSTGRES. */
export const POSTGRES_URL = process.env.TANDEM_TEST_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432/test'
/** The shared test Redis; override with TANDEM_TEST_REDIS. */
export const REDIS_URL = process.env.TANDEM_TEST_REDIS ?? 'redis://127.0.0.1:6379'

async function reachable (check: () => Promise<unknown>): Promise<boolean> {
  try {
    await check()
    return true
  } catch {
    return false
  }
}

/** True when the test PostgreSQL answers. */
export const postgresUp = await reachable(async () => {
  const client = new pg.Client({ connectionString: POSTGRES_URL, connectionTimeoutMillis: 2_000 })
  await client.connect()
  await client.end()
})

/** Connects to the Redis at `url` and pings it once; throws when it does not answer. */
async function pingRedis (url: string): Promise<void> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
  redis.on('error', () => {})
  try {
    await redis.connect()
    await redis.ping()
  } finally {
    redis.disconnect()
  }
}

/** True when the test Redis answers and redis-server can be started. */
export const redisUp = await reachable(() => pingRedis(REDIS_URL))

/**
 * `test`, or `test.skip` when a service is missing outside CI. Under CI=true a missing service
 * is a failure, never a skip.
 */
export function testWith (up: boolean): typeof test {
  return up || process.env.CI === 'true' ? test : test.skip as typeof test
}

/** A unique schema name; the schema is dropped after the test. */
export function pgSchema (): string {
  const schema = `tandem_test_${randomUUID().replace(/-/g, '').slice(0, 16)}`
  onTestFinished(async () => {
    const client = new pg.Client({ connectionString: POSTGRES_URL })
    await client.connect()
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
    await client.end()
  })
  return schema
}

/** A unique Redis key prefix for this test. */
export function redisPrefix (): string {
  return `tandem-test:${randomUUID().slice(0, 8)}:`
}

/** A TCP port free right now on 127.0.0.1. */
export async function freePort (): Promise<number> {
  const server = createNetServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  await new Promise(resolve => server.close(resolve))
  if (address === null || typeof address === 'string') throw new Error('no port')
  return address.port
}

/** A private redis-server that a test may stop and start again on the same port. */
export interface PrivateRedis {
  url: string
  port: number
  /** Kills it (SIGKILL); nothing is kept. */
  stop (): Promise<void>
  /** Starts it again on the same port. */
  start (): Promise<void>
  /** Freezes it (SIGSTOP): connections stay open but nothing answers. */
  pause (): void
  /** Thaws it (SIGCONT). */
  resume (): void
}

/** Starts a private redis-server on a free port (no persistence); killed after the test. */
export async function privateRedis (): Promise<PrivateRedis> {
  const port = await freePort()
  let child: ChildProcess | undefined
  const url = `redis://127.0.0.1:${port}`
  const start = async (): Promise<void> => {
    child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
    await waitFor(() => reachable(() => pingRedis(url)), 5_000, `redis-server on ${port}`)
  }
  const stop = async (): Promise<void> => {
    const running = child
    child = undefined
    if (running === undefined || running.exitCode !== null) return
    const exited = new Promise(resolve => running.once('exit', resolve))
    running.kill('SIGKILL')
    await exited
  }
  await start()
  onTestFinished(stop)
  return { url, port, stop, start, pause: () => child?.kill('SIGSTOP'), resume: () => child?.kill('SIGCONT') }
}

/**
 * A private three-node Redis Cluster (no replicas, no persistence) on free ports; killed after
 * the test. Resolves with the URL of its first node once every slot is served.
 */
export async function privateRedisCluster (): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'tandem-redis-cluster-'))
  const children: ChildProcess[] = []
  onTestFinished(async () => {
    await Promise.all(children.map(child => new Promise(resolve => {
      if (child.exitCode !== null) return resolve(null)
      child.once('exit', resolve)
      child.kill('SIGKILL')
    })))
    rmSync(dir, { recursive: true, force: true })
  })
  const ping = (port: number): boolean => spawnSync('redis-cli', ['-p', String(port), 'ping'], { encoding: 'utf8' }).stdout.trim() === 'PONG'
  // a free port can be taken by another process before redis-server binds it: such a node
  // exits at once, and is started again on another port
  const startNode = async (): Promise<number> => {
    for (let attempt = 1; ; attempt++) {
      const port = await freePort()
      const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes',
        '--cluster-config-file', `nodes-${port}.conf`, '--dir', dir, '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
      children.push(child)
      try {
        await waitFor(() => { if (child.exitCode !== null) throw new Error(`redis-server on ${port} exited`); return ping(port) }, 15_000, `cluster node on ${port}`)
        return port
      } catch (err) {
        if (attempt === 3) throw err
      }
    }
  }
  const ports = await Promise.all([startNode(), startNode(), startNode()])
  const created = spawnSync('redis-cli', ['--cluster', 'create', ...ports.map(port => `127.0.0.1:${port}`), '--cluster-replicas', '0', '--cluster-yes'], { encoding: 'utf8' })
  if (created.status !== 0) throw new Error(`redis-cli --cluster create failed: ${created.stdout}${created.stderr}`)
  const ok = (port: number): boolean => /cluster_state:ok/.test(spawnSync('redis-cli', ['-p', String(port), 'cluster', 'info'], { encoding: 'utf8' }).stdout)
  await waitFor(() => ports.every(ok), 10_000, 'cluster state ok')
  return `redis://127.0.0.1:${ports[0]}`
}
