import type { Logger } from 'pino'
import type { ResolvedOptions } from '../config/config.js'
import type { Store } from '../store/store.js'
import { MemoryLockTable, type LockTable } from './table.js'
import { RedisLockTable } from './redis-table.js'
import { redisUnreachable } from '../cluster/redis-client.js'

/**
 * The lock table the options call for: in Redis when `redis` is set (every instance sees the
 * same locks; `nodeId` is the instance's id on the bus), else in this process. Fencing tokens
 * come from the store either way. Rejects with one clear message when Redis cannot be reached.
 */
export async function openLockTable (options: ResolvedOptions, store: Store, nodeId: string | undefined, logger: Logger): Promise<LockTable> {
  const nextToken = (doc: string, resource: string): Promise<number> => store.nextFencingToken(doc, resource)
  if (options.redis === undefined) return new MemoryLockTable(nextToken)
  const table = new RedisLockTable({ url: options.redis, prefix: options.redisPrefix, nodeId, livenessMs: options.heartbeatTimeoutMs, nextToken, logger })
  try {
    await table.start()
  } catch (err) {
    throw redisUnreachable(options.redis, err)
  }
  return table
}
