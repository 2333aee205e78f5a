import { describe, expect, onTestFinished } from 'vitest'
import { Redis } from 'ioredis'
import { RedisResumeRecords, type GraceEnd, type ResumeRecord } from '../../server/session/redis-resume.js'
import { SharedResume } from '../../server/session/shared-resume.js'
import { hashSecret } from '../../server/auth/secret.js'
import { docName, testLogger, waitFor } from '../support/helpers.js'
import { REDIS_URL, redisPrefix, redisUp, testWith } from '../support/services.js'

const it = testWith(redisUp)

/** Real records on the real Redis, whose next writes fail as if Redis were away. */
class FlakyRecords extends RedisResumeRecords {
  issueFailures = 0
  endFailures = 0
  override async issue (record: ResumeRecord, hash: string): Promise<void> {
    if (this.issueFailures-- > 0) throw new Error('Redis away')
    await super.issue(record, hash)
  }

  override async end (doc: string, sessionId: string): Promise<GraceEnd> {
    if (this.endFailures-- > 0) throw new Error('Redis away')
    return await super.end(doc, sessionId)
  }
}

async function setup (): Promise<{ records: FlakyRecords, shared: SharedResume, exists: (doc: string, sessionId: string) => Promise<boolean>, live: Set<string> }> {
  const prefix = redisPrefix()
  const records = new FlakyRecords({ url: REDIS_URL, prefix, nodeId: 'A', logger: testLogger })
  await records.start()
  const live = new Set<string>()
  const shared = new SharedResume(records, { publishResumed () {} }, { current: (sessionId, hash) => live.has(`${sessionId} ${hash}`), live: () => [] }, 1_000, testLogger)
  const check = new Redis(REDIS_URL)
  onTestFinished(async () => { shared.close(); check.disconnect(); await records.close() })
  const exists = async (doc: string, sessionId: string): Promise<boolean> => await check.exists(`${prefix}{${encodeURIComponent(doc)}}:resume:${sessionId}`) === 1
  return { records, shared, exists, live }
}

describe('resume records while Redis is away', () => {
  it('a secret voided while Redis refused the write is voided once Redis takes writes again', async () => {
    const { records, shared, exists, live } = await setup()
    const record = { sessionId: 's1', doc: docName(), userId: 'ada' }
    const hash = hashSecret('secret')
    live.add(`s1 ${hash}`)
    shared.issued(record, hash)
    await waitFor(async () => await exists(record.doc, 's1'), 5_000, 'record written')
    // the session ends for good (a kick) while Redis refuses writes twice
    live.clear()
    records.endFailures = 2
    shared.voided(record.doc, 's1')
    await waitFor(async () => !await exists(record.doc, 's1'), 5_000, 'record voided on a later try')
  })

  it('a write retried after an outage does not bring back a secret voided meanwhile', async () => {
    const { records, shared, exists, live } = await setup()
    const record = { sessionId: 's2', doc: docName(), userId: 'ada' }
    const hash = hashSecret('secret')
    live.add(`s2 ${hash}`)
    records.issueFailures = 1
    shared.issued(record, hash)
    // the first write failed and waits for its retry (0.5 s); the session ends meanwhile
    await new Promise(resolve => setTimeout(resolve, 100))
    live.clear()
    shared.voided(record.doc, 's2')
    await new Promise(resolve => setTimeout(resolve, 1_500))
    expect(await exists(record.doc, 's2')).toBe(false)
  })
})
