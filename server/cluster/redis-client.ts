import { Cluster, Redis, type RedisOptions } from 'ioredis'
import { TandemError } from '../../shared/errors.js'
import { errorMessage, redactUrl } from '../observability/error-text.js'

/** How to connect to Redis; the same for every Tandem connection but for these. */
export interface RedisClientOptions {
  /** `redis://` or `rediss://` URL; for a cluster, any of its nodes. */
  url: string
  /** Shown by CLIENT LIST, e.g. `tandem-pub-<node id>`. */
  name: string
  /** A command unanswered this long fails (a half-open connection). @default undefined (none) */
  commandTimeoutMs?: number
  /** Let ioredis subscribe again after a reconnect. @default false */
  autoResubscribe?: boolean
}

/** Reconnect backoff: 50 ms doubling to 2 s, forever (an outage must not need a restart). */
export function backoff (attempt: number): number {
  return Math.min(2_000, 50 * 2 ** Math.min(attempt, 6))
}

/**
 * A lazy connection to a single Redis, or to a Redis Cluster seeded from the URL. Commands are
 * never queued while disconnected: they fail at once, so callers can tell their users.
 */
export function redisClient (options: RedisClientOptions, cluster: boolean): Redis | Cluster {
  const common: RedisOptions = {
    lazyConnect: true,
    autoResubscribe: options.autoResubscribe ?? false,
    maxRetriesPerRequest: null,
    connectionName: options.name,
    commandTimeout: options.commandTimeoutMs
  }
  if (!cluster) return new Redis(options.url, { ...common, enableOfflineQueue: false, retryStrategy: backoff })
  const { hostname, port, username, password, protocol } = new URL(options.url)
  return new Cluster([{ host: hostname, port: port === '' ? 6379 : Number(port) }], {
    lazyConnect: true,
    enableOfflineQueue: false,
    clusterRetryStrategy: backoff,
    redisOptions: {
      ...common,
      username: username === '' ? undefined : decodeURIComponent(username),
      password: password === '' ? undefined : decodeURIComponent(password),
      tls: protocol === 'rediss:' ? {} : undefined
    }
  })
}

/** True when a connected single-node client is talking to a node of a Redis Cluster. */
export async function isClusterNode (client: Redis | Cluster): Promise<boolean> {
  return (client as Redis).isCluster === false && /cluster_enabled:1/.test(await client.info('cluster'))
}

/** Two connections of one role: commands, and a subscriber (a subscriber cannot send commands). */
export interface RedisPair {
  main: Redis | Cluster
  sub: Redis | Cluster
}

/**
 * Connects a command connection and a subscriber, both made by `make`. Any node of a Redis
 * Cluster will do as the URL: when the first connection finds itself on one, both are made
 * again as cluster clients. The one place where Tandem detects a cluster. `onError` is attached
 * to every connection it makes; on failure both are disconnected and the first error is thrown.
 */
export async function connectPair (make: (cluster: boolean) => RedisPair, onError: (err: Error) => void): Promise<RedisPair & { cluster: boolean }> {
  let pair = make(false)
  let firstError: Error | undefined
  const listen = (p: RedisPair): void => {
    for (const connection of [p.main, p.sub]) connection.on('error', (err: Error) => { firstError ??= err; onError(err) })
  }
  listen(pair)
  let cluster = false
  try {
    await pair.main.connect()
    if (await isClusterNode(pair.main)) {
      pair.main.disconnect()
      pair.sub.disconnect()
      pair = make(true)
      listen(pair)
      cluster = true
      await pair.main.connect()
    }
    await pair.sub.connect()
  } catch (err) {
    pair.main.disconnect()
    pair.sub.disconnect()
    throw firstError ?? err
  }
  return { ...pair, cluster }
}

/** The one error for a Redis that cannot be reached at start. */
export function redisUnreachable (url: string, err: unknown): TandemError {
  return new TandemError('TANDEM_ERR_REDIS_UNAVAILABLE', `cannot reach Redis at ${redactUrl(url)}: ${errorMessage(err)}`, { cause: err })
}
