import { describe, expect } from 'vitest'
import { docName, waitFor } from '../support/helpers.js'
import { POSTGRES_URL, pgSchema, postgresUp, privateRedis, redisPrefix, redisUp, testWith } from '../support/services.js'
import { httpStatus, startTandem } from '../support/cli.js'
import { record, tandemClient } from '../support/tandem-helpers.js'

const it = testWith(postgresUp && redisUp)

describe('locks after Redis loses its data', () => {
  it('lock changes are still announced and leases still renewed, though the per-resource counters started again', async () => {
    const redis = await privateRedis()
    const args = ['--persistence', `${POSTGRES_URL}?schema=${pgSchema()}`, '--redis', redis.url, '--redis-prefix', redisPrefix(),
      '--heartbeat-interval', '500', '--heartbeat-timeout', '2000']
    const [p1, p2] = [await startTandem(args), await startTandem(args)]
    const name = docName()
    const ada = tandemClient(p1.url, name, { user: { id: 'ada' } })
    const bob = tandemClient(p2.url, name, { user: { id: 'bob' } })
    await Promise.all([ada.synced(), bob.synced()])
    // a resource with some history: its announcements are numbered up to 10
    let last = 0
    for (let i = 0; i < 5; i++) {
      const lock = await ada.locks.acquire('block:1')
      last = lock.token
      await lock.release()
    }
    await waitFor(() => bob.locks.holder('block:1') === undefined, 5_000, 'bob saw the last release')

    await redis.stop() // no persistence: everything is gone
    // both instances see Redis gone, then back (readyz), so both hear what follows
    await waitFor(async () => await httpStatus(p2.http, '/readyz') === 503, 10_000, 'Redis seen gone')
    await redis.start()
    for (const p of [p1, p2]) await waitFor(async () => await httpStatus(p.http, '/readyz') === 200, 10_000, 'Redis seen back')
    const seen = record(bob)
    // the instances reconnect; the first acquisition after that is the resource's first change in Redis
    const held = await waitFor(async () => await ada.locks.acquire('block:1', { ttlMs: 1_000 }).then(() => true, () => false), 10_000, 'a lock again')
      .then(() => ada.locks.holder('block:1'))
    expect(held?.token).toBeGreaterThan(last)
    // every instance hears it: bob is told
    await waitFor(() => seen.locks.some(e => e.type === 'acquired' && e.lock.token === held!.token), 5_000, 'bob told of the grant')
    // and ada's instance renews the lease: after twice the lease bob is still refused
    await new Promise(resolve => setTimeout(resolve, 2_500))
    const refused = await bob.locks.acquire('block:1').catch((err: unknown) => err) as { code?: string }
    expect(refused.code).toBe('TANDEM_ERR_LOCK_HELD')
    await ada.locks.acquire('block:1').then(lock => lock.release())
    await waitFor(() => seen.locks.some(e => e.type === 'released' && e.lock.token === held!.token), 5_000, 'bob told of the release')
  })
})
