import { describe, expect, onTestFinished } from 'vitest'
import { MemoryLockTable, type LockChange } from '../../server/locks/table.js'
import { MemoryStore } from '../../server/store/memory-store.js'
import { LockDeniedError } from '../../shared/lock-denied-error.js'
import { Cluster, Redis } from 'ioredis'
import { RedisLockTable } from '../../server/locks/redis-table.js'
import { createLogger } from '../../server/observability/logger.js'
import { docName, waitFor } from '../support/helpers.js'
import { lockTableContract, owner, LONG } from './lock-table-contract.js'
import { REDIS_URL, privateRedisCluster, redisPrefix, redisUp, testWith } from '../support/services.js'

lockTableContract('MemoryLockTable', async () => {
  const store = new MemoryStore()
  return new MemoryLockTable((doc, resource) => store.nextFencingToken(doc, resource))
})
lockTableContract('RedisLockTable', async () => {
  const store = new MemoryStore()
  const table = new RedisLockTable({ url: REDIS_URL, prefix: redisPrefix(), nextToken: (doc, resource) => store.nextFencingToken(doc, resource), logger: createLogger('silent') })
  await table.start()
  return table
}, redisUp || process.env.CI === 'true')

describe('RedisLockTable between instances', () => {
  const it = testWith(redisUp)

  async function tables (url: string, count: number, prefix = redisPrefix()): Promise<RedisLockTable[]> {
    const store = new MemoryStore()
    const created: RedisLockTable[] = []
    for (let i = 0; i < count; i++) {
      const table = new RedisLockTable({ url, prefix, livenessMs: 1_000, nextToken: (doc, resource) => store.nextFencingToken(doc, resource), logger: createLogger('silent') })
      onTestFinished(() => table.close())
      await table.start()
      created.push(table)
    }
    return created
  }

  it('adopt moves a session\'s locks to the adopting instance: the old one\'s shutdown no longer releases them, the token stays', async () => {
    const prefix = redisPrefix()
    const [a, b] = await tables(REDIS_URL, 2, prefix) as [RedisLockTable, RedisLockTable]
    const redis = new Redis(REDIS_URL)
    onTestFinished(() => { redis.disconnect() })
    const doc = docName('locks')
    const held = await a.acquire(doc, 'r', owner('a'), { ttlMs: 60_000, waitMs: 0 })
    const node = async (): Promise<string> => (JSON.parse(await redis.hget(`${prefix}{${encodeURIComponent(doc)}}:holders`, 'r') as string) as { node: string }).node
    expect(await node()).toBe(a.nodeId)
    const released: LockChange[] = []
    b.subscribe(change => { if (change.event === 'released') released.push(change) })
    const adopted = await b.adopt(doc, 'session-a')
    expect(adopted.map(({ lock }) => [lock.resource, lock.token])).toEqual([['r', held.token]])
    expect(await node()).toBe(b.nodeId)
    expect(await redis.smembers(`${prefix}{node:${b.nodeId}}:locks`)).toEqual([JSON.stringify([doc, 'r'])])
    a.letGo(doc, 'session-a')
    // a graceful stop of A releases A's locks (reason `shutdown`): this one is B's now
    await a.close()
    expect((await b.list(doc)).map(lock => [lock.sessionId, lock.token])).toEqual([['session-a', held.token]])
    expect(released).toEqual([])
  })

  async function sharedLocks (url: string): Promise<void> {
    const prefix = redisPrefix()
    const [a, b] = await tables(url, 2, prefix) as [RedisLockTable, RedisLockTable]
    const redis = url === REDIS_URL ? new Redis(url) : new Cluster([url])
    onTestFinished(() => { redis.disconnect() })
    const seenByB: LockChange[] = []
    b.subscribe(change => seenByB.push(change))
    const doc = docName('{tagged}/locks')
    const held = await a.acquire(doc, 'r', owner('a'), LONG)
    const refusal = await b.acquire(doc, 'r', owner('b'), LONG).catch((e: unknown) => e)
    expect((refusal as LockDeniedError).holder?.sessionId).toBe('session-a')
    const waiting = b.acquire(doc, 'r', owner('b'), { ttlMs: 60_000, waitMs: 10_000 })
    await waitFor(async () => await redis.llen(`${prefix}{${encodeURIComponent(doc)}}:q:r`) === 1, 5_000, 'b queued')
    await a.release(doc, 'r', 'session-a', 'release')
    const granted = await waiting
    expect(granted.token).toBeGreaterThan(held.token)
    // b hears what a did through the channel (a made the grant too: it handed the lock on)
    await waitFor(() => seenByB.length >= 3, 5_000, `b hears a's changes: ${JSON.stringify(seenByB)}`)
    expect(seenByB.map(c => `${c.event}:${c.lock.sessionId}`)).toEqual(['acquired:session-a', 'released:session-a', 'acquired:session-b'])
    expect(await a.list(doc)).toEqual([granted])
    expect(await a.forceRelease(doc, 'r')).toMatchObject({ sessionId: 'session-b' })
    expect(await b.list(doc)).toEqual([])
  }

  it('two tables on one Redis share locks, queue and events', async () => {
    await sharedLocks(REDIS_URL)
  })

  it('the same on a Redis Cluster: every script touches one document\'s shard only', async () => {
    await sharedLocks(await privateRedisCluster())
  })

  it('a resource named like another one\'s counters (`s:r`, `t:r`, `epoch`) keeps its own token and events', async () => {
    const [a, b] = await tables(REDIS_URL, 2) as [RedisLockTable, RedisLockTable]
    const seenByB: LockChange[] = []
    b.subscribe(change => seenByB.push(change))
    const doc = docName()
    // 30 changes of `r`: its sequence number passes the 20 tokens a grant may try
    for (let i = 0; i < 15; i++) await a.release(doc, 'r', 'session-a', 'release').catch(() => {}).then(() => a.acquire(doc, 'r', owner('a'), LONG))
    for (const resource of ['s:r', 't:r', 'seq:r', 'epoch']) {
      const lock = await a.acquire(doc, resource, owner('a'), LONG)
      expect(lock.token).toBe(1)
      await a.release(doc, resource, 'session-a', 'release')
    }
    await a.release(doc, 'r', 'session-a', 'release')
    const again = await b.acquire(doc, 'r', owner('b'), LONG)
    expect(again.token).toBe(16)
    // every change of every resource reached b, in order
    await waitFor(() => seenByB.length === 30 + 8 + 1, 5_000, `b hears every change: ${seenByB.length}`)
  })
})
