import { describe, expect, onTestFinished } from 'vitest'
import { Redis } from 'ioredis'
import { LIVE_RECORD_MS, RedisResumeRecords } from '../../server/session/redis-resume.js'
import { hashSecret } from '../../server/auth/secret.js'
import { newResumeSecret } from '../../server/session/resume.js'
import { docName, testLogger } from '../support/helpers.js'
import { REDIS_URL, privateRedisCluster, redisPrefix, redisUp, testWith } from '../support/services.js'

const it = testWith(redisUp)

async function records (prefix: string, nodeId: string, url = REDIS_URL): Promise<RedisResumeRecords> {
  const made = new RedisResumeRecords({ url, prefix, nodeId, logger: testLogger })
  onTestFinished(() => made.close())
  await made.start()
  return made
}

describe('resume records in Redis', () => {
  it('keep only the hash of the secret; a claim takes the record over once, for the same user and document', async () => {
    const prefix = redisPrefix()
    const [a, b] = [await records(prefix, 'node-a'), await records(prefix, 'node-b')]
    const redis = new Redis(REDIS_URL)
    onTestFinished(() => { redis.disconnect() })
    const doc = docName('{tagged}/é')
    const secret = newResumeSecret()
    await a.issue({ sessionId: 's1', doc, userId: 'ada', issuedAt: 1_700_000_000, jti: 'j1', joinedAt: 1_700_000_000_123 }, hashSecret(secret))
    const key = `${prefix}{${encodeURIComponent(doc)}}:resume:s1`
    const stored = await redis.hgetall(key)
    expect(stored).toEqual({ hash: hashSecret(secret), doc, userId: 'ada', node: 'node-a', issuedAt: '1700000000', jti: 'j1', joinedAt: '1700000000123' })
    expect(JSON.stringify(stored)).not.toContain(secret)
    expect(await redis.pttl(key)).toBeGreaterThan(LIVE_RECORD_MS - 60_000)

    // wrong secret, other user, other document, an oversized id: nothing is taken
    expect(await b.claim(doc, 's1', newResumeSecret(), 'ada', 5_000)).toBeUndefined()
    expect(await b.claim(doc, 's1', secret, 'eve', 5_000)).toBeUndefined()
    expect(await b.claim(docName(), 's1', secret, 'ada', 5_000)).toBeUndefined()
    expect(await b.claim(doc, 's1'.repeat(40), secret, 'ada', 5_000)).toBeUndefined()
    expect(await redis.hget(key, 'node')).toBe('node-a')

    expect(await b.claim(doc, 's1', secret, 'ada', 5_000)).toEqual({ sessionId: 's1', doc, userId: 'ada', from: 'node-a', issuedAt: 1_700_000_000, jti: 'j1', joinedAt: 1_700_000_000_123 })
    expect(await redis.hget(key, 'node')).toBe('node-b')
    expect(await redis.pttl(key)).toBeLessThanOrEqual(5_000)
    // used once
    expect(await a.claim(doc, 's1', secret, 'ada', 5_000)).toBeUndefined()

    // the old instance can neither write, time nor end it any more; the new one can
    await a.issue({ sessionId: 's1', doc, userId: 'ada' }, hashSecret(secret))
    expect(await redis.hmget(key, 'node', 'hash')).toEqual(['node-b', ''])
    await a.hold(doc, 's1', 60_000)
    expect(await redis.pttl(key)).toBeLessThanOrEqual(5_000)
    expect(await a.end(doc, 's1')).toBe('moved')
    expect(await b.end(doc, 's1')).toBe('mine')
    expect(await b.end(doc, 's1')).toBe('gone')
    expect(await redis.exists(key)).toBe(0)
  })

  it('a record without credentials claims without them', async () => {
    const prefix = redisPrefix()
    const [a, b] = [await records(prefix, 'node-a'), await records(prefix, 'node-b')]
    const doc = docName()
    const secret = newResumeSecret()
    await a.issue({ sessionId: 's2', doc, userId: 'anon-1' }, hashSecret(secret))
    expect(await b.claim(doc, 's2', secret, 'anon-1', 1_000)).toEqual({ sessionId: 's2', doc, userId: 'anon-1', from: 'node-a' })
  })

  it('work on a Redis Cluster (the document is the hash tag of the record)', async () => {
    const url = await privateRedisCluster()
    const prefix = redisPrefix()
    const [a, b] = [await records(prefix, 'node-a', url), await records(prefix, 'node-b', url)]
    const secret = newResumeSecret()
    for (const doc of [docName('one'), docName('two'), docName('three')]) {
      await a.issue({ sessionId: 's', doc, userId: 'ada' }, hashSecret(secret))
      expect(await b.claim(doc, 's', secret, 'ada', 5_000)).toMatchObject({ from: 'node-a' })
      expect(await a.end(doc, 's')).toBe('moved')
      expect(await b.end(doc, 's')).toBe('mine')
    }
    await b.refresh([{ doc: docName(), sessionId: 'x' }, { doc: docName(), sessionId: 'y' }])
  })
})
