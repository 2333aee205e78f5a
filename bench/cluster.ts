import { randomUUID } from 'node:crypto'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { Redis } from 'ioredis'
import { startServer, type RunningServer, type ServerSpec } from './servers.js'

/**
 * Two instances of one server sharing a store and a Redis (workload `balancer`): Tandem with its
 * PostgreSQL store (a schema of its own) and `--redis` (a key prefix of its own), Hocuspocus 3
 * with its Redis extension on the same Redis (a prefix of its own) and its Database extension
 * over PostgreSQL (bench/hocuspocus-cluster-server.ts). The schema and the keys are removed when
 * the pair stops.
 */

const here = dirname(fileURLToPath(import.meta.url))
export const POSTGRES = process.env.BENCH_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432/test'
export const REDIS = process.env.BENCH_REDIS ?? 'redis://127.0.0.1:6379'

/** The servers that have a scaled-out form: Tandem, another build of it, Hocuspocus. */
export const CLUSTERED = ['tandem', 'tandem-base', 'hocuspocus']

/** A running pair of instances. */
export interface RunningCluster {
  instances: RunningServer[]
  /** ws:// URLs of the instances, in order. */
  urls: string[]
  /** The balancer in front of them (bench/balancer.ts, its own process), when asked for. */
  balancer?: RunningServer
  stop (): Promise<void>
}

/** bench/balancer.ts as a process: round-robin per new connection over `targets`. */
function balancerSpec (targets: string[]): ServerSpec {
  return {
    key: 'balancer',
    label: 'balancer (http-proxy)',
    dialect: 'raw',
    peer: false,
    storage: false,
    durability: 'none',
    command: port => ({ args: [join(here, 'balancer.js'), '--port', String(port), ...targets.map(url => url.replace(/^ws:/, 'http:'))], env: {} })
  }
}

/** The spec of one instance of `spec` in a cluster with the given schema and prefix. */
function instanceSpec (spec: ServerSpec, schema: string, prefix: string): ServerSpec {
  if (spec.key === 'hocuspocus') {
    return {
      ...spec,
      label: `${spec.label} + Redis extension`,
      durability: 'whole document written to PostgreSQL 2-10 s after changes (debounced), under a Redis lock; relayed at once, to other instances through Redis',
      command: port => ({
        args: [join(here, 'hocuspocus-cluster-server.js')],
        env: { PORT: String(port), HOST: '127.0.0.1', REDIS_URL: REDIS, REDIS_PREFIX: prefix.replace(/:$/, ''), POSTGRES, SCHEMA: schema }
      })
    }
  }
  return {
    ...spec,
    durability: 'each update committed to PostgreSQL (group commit) and acknowledged to its sender once committed; relayed at once to local clients, to other instances through Redis',
    command: (port, dataDir) => {
      const own = spec.command(port, dataDir)
      return { ...own, args: [...own.args, '--persistence', `${POSTGRES}?schema=${schema}`, '--redis', REDIS, '--redis-prefix', prefix] }
    }
  }
}

/**
 * Starts `count` instances of `spec` (one after the other: the first creates the schema), and
 * with `balanced` the balancer in front of them.
 */
export async function startCluster (spec: ServerSpec, count: number, cpus?: string, balanced = false): Promise<RunningCluster> {
  const id = randomUUID().replace(/-/g, '').slice(0, 12)
  const schema = `bench_${spec.key.replace(/[^a-z]/g, '')}_${id}`
  const prefix = `bench-${spec.key}-${id}:`
  const one = instanceSpec(spec, schema, prefix)
  const instances: RunningServer[] = []
  let balancer: RunningServer | undefined
  const stop = async (): Promise<void> => {
    await balancer?.stop()
    await Promise.all(instances.map(server => server.stop()))
    await cleanup(schema, prefix)
  }
  try {
    for (let i = 0; i < count; i++) instances.push(await startServer(one, [], cpus))
    if (balanced) balancer = await startServer(balancerSpec(instances.map(server => server.url)), [], cpus)
  } catch (err) {
    await stop()
    throw err
  }
  const urls = instances.map(server => server.url)
  return balancer === undefined ? { instances, urls, stop } : { instances, urls, balancer, stop }
}

/** Drops the schema and deletes the keys under the prefix. */
async function cleanup (schema: string, prefix: string): Promise<void> {
  const db = new pg.Client({ connectionString: POSTGRES })
  try {
    await db.connect()
    await db.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
  } finally {
    await db.end().catch(() => {})
  }
  const redis = new Redis(REDIS, { lazyConnect: true, maxRetriesPerRequest: 1 })
  try {
    await redis.connect()
    for (let cursor = '0'; ;) {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500)
      if (keys.length > 0) await redis.del(...keys)
      if ((cursor = next) === '0') break
    }
  } finally {
    redis.disconnect()
  }
}
