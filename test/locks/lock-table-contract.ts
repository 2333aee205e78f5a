import { describe, expect, test as vitestTest, onTestFinished } from 'vitest'
import type { LockChange, LockOwner, LockTable } from '../../server/locks/table.js'
import { LockDeniedError } from '../../shared/lock-denied-error.js'
import { isTandemError } from '../../shared/errors.js'
import { docName, waitFor } from '../support/helpers.js'


/** A lock owner for tests: session `session-<id>`, user `user-<id>`. */
export function owner (id: string): LockOwner {
  return { sessionId: `session-${id}`, userId: `user-${id}`, name: id.toUpperCase(), color: '#123456' }
}

/** A lease no test outlives, and no wait. */
export const LONG = { ttlMs: 60_000, waitMs: 0 }

/**
 * The LockTable contract, run against every implementation (socket.io-adapter's testSuite habit,
 * as the Store and Bus contracts): `create` makes a fresh table for one test. Real timers with
 * short leases; no fake clocks.
 */
export function lockTableContract (kind: string, create: () => Promise<LockTable>, enabled = true): void {
  const test = enabled ? vitestTest : vitestTest.skip
  describe(`LockTable contract: ${kind}`, () => {
    async function setup (): Promise<{ table: LockTable, doc: string, changes: LockChange[] }> {
      const table = await create()
      onTestFinished(() => table.close())
      const changes: LockChange[] = []
      table.subscribe(change => changes.push(change))
      return { table, doc: docName('locks'), changes }
    }

    test('grants a free lock with a fencing token that grows with every grant', async () => {
      const { table, doc, changes } = await setup()
      const first = await table.acquire(doc, 'r', owner('a'), LONG)
      expect(first).toMatchObject({ resource: 'r', sessionId: 'session-a', userId: 'user-a', name: 'A' })
      await table.release(doc, 'r', 'session-a', 'release')
      const second = await table.acquire(doc, 'r', owner('b'), LONG)
      expect(second.token).toBeGreaterThan(first.token)
      expect(changes.map(c => c.event)).toEqual(['acquired', 'released', 'acquired'])
      expect(await table.list(doc)).toEqual([second])
    })

    test('refuses a held lock, naming the holder; the holder asking again keeps its token', async () => {
      const { table, doc } = await setup()
      const held = await table.acquire(doc, 'r', owner('a'), LONG)
      const refusal = await table.acquire(doc, 'r', owner('b'), LONG).catch((err: unknown) => err)
      expect(refusal).toBeInstanceOf(LockDeniedError)
      expect((refusal as LockDeniedError).code).toBe('TANDEM_ERR_LOCK_HELD')
      expect((refusal as LockDeniedError).holder).toMatchObject({ sessionId: 'session-a', token: held.token })
      const again = await table.acquire(doc, 'r', owner('a'), LONG)
      expect(again.token).toBe(held.token)
    })

    test('only the holder releases', async () => {
      const { table, doc } = await setup()
      await table.acquire(doc, 'r', owner('a'), LONG)
      const err = await table.release(doc, 'r', 'session-b', 'release').catch((e: unknown) => e)
      expect(isTandemError(err, 'TANDEM_ERR_NOT_LOCK_HOLDER')).toBe(true)
      expect(await table.list(doc)).toHaveLength(1)
    })

    test('queued requests are served in order', async () => {
      const { table, doc } = await setup()
      await table.acquire(doc, 'r', owner('a'), LONG)
      const order: string[] = []
      const waits = ['b', 'c', 'd'].map(id => table.acquire(doc, 'r', owner(id), { ttlMs: 60_000, waitMs: 10_000 }).then(lock => {
        order.push(id)
        return lock
      }))
      await table.release(doc, 'r', 'session-a', 'release')
      const b = await waits[0]!
      expect(order).toEqual(['b'])
      await table.release(doc, 'r', b.sessionId, 'release')
      const c = await waits[1]!
      await table.release(doc, 'r', c.sessionId, 'release')
      const d = await waits[2]!
      expect(order).toEqual(['b', 'c', 'd'])
      expect(d.token).toBeGreaterThan(c.token)
      expect(c.token).toBeGreaterThan(b.token)
    })

    test('a queued request times out after waitMs, naming the holder', async () => {
      const { table, doc } = await setup()
      await table.acquire(doc, 'r', owner('a'), LONG)
      const err = await table.acquire(doc, 'r', owner('b'), { ttlMs: 1_000, waitMs: 50 }).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(LockDeniedError)
      expect((err as LockDeniedError).code).toBe('TANDEM_ERR_LOCK_TIMEOUT')
      expect((err as LockDeniedError).holder?.sessionId).toBe('session-a')
    })

    test('a lease not renewed expires; a renewed one does not', async () => {
      const { table, doc, changes } = await setup()
      await table.acquire(doc, 'short', owner('a'), { ttlMs: 100, waitMs: 0 })
      const renewed = await table.acquire(doc, 'renewed', owner('a'), { ttlMs: 600, waitMs: 0 })
      const timer = setInterval(() => { void table.renew(doc, 'renewed', 'session-a', 600) }, 50)
      onTestFinished(() => clearInterval(timer))
      await waitFor(() => changes.some(c => c.event === 'released' && c.lock.resource === 'short'), 5_000, 'short lease expired')
      expect(changes.find(c => c.event === 'released')).toMatchObject({ reason: 'expired' })
      const deadline = renewed.expiresAt + 200
      await waitFor(() => Date.now() > deadline, 5_000, 'past the first lease')
      expect((await table.list(doc)).map(l => l.resource)).toEqual(['renewed'])
      clearInterval(timer)
      await waitFor(async () => (await table.list(doc)).length === 0, 5_000, 'expires once renewals stop')
    })

    test('an expired lease goes to the next waiter', async () => {
      const { table, doc } = await setup()
      await table.acquire(doc, 'r', owner('a'), { ttlMs: 80, waitMs: 0 })
      const next = await table.acquire(doc, 'r', owner('b'), { ttlMs: 60_000, waitMs: 5_000 })
      expect(next.sessionId).toBe('session-b')
    })

    test('releaseAll releases every lock of a session and cancels its queued requests', async () => {
      const { table, doc, changes } = await setup()
      await table.acquire(doc, 'r1', owner('a'), LONG)
      await table.acquire(doc, 'r2', owner('a'), LONG)
      await table.acquire(doc, 'r3', owner('b'), LONG)
      const queued = table.acquire(doc, 'r3', owner('a'), { ttlMs: 60_000, waitMs: 10_000 }).catch((e: unknown) => e)
      const released = await table.releaseAll(doc, 'session-a', 'disconnect')
      expect(released.map(l => l.resource).sort()).toEqual(['r1', 'r2'])
      expect(isTandemError(await queued, 'TANDEM_ERR_DISCONNECTED')).toBe(true)
      expect((await table.list(doc)).map(l => l.resource)).toEqual(['r3'])
      expect(changes.filter(c => c.event === 'released').map(c => c.event === 'released' && c.reason)).toEqual(['disconnect', 'disconnect'])
    })

    test('a queued request cancelled while still on its way is never granted', async () => {
      const { table, doc } = await setup()
      await table.acquire(doc, 'r', owner('a'), LONG)
      const queued = table.acquire(doc, 'r', owner('x'), { ttlMs: 60_000, waitMs: 10_000 }).catch((e: unknown) => e)
      table.cancelWaits(doc, 'session-x')
      expect(isTandemError(await queued, 'TANDEM_ERR_DISCONNECTED')).toBe(true)
      await table.release(doc, 'r', 'session-a', 'release')
      const next = await table.acquire(doc, 'r', owner('b'), { ttlMs: 60_000, waitMs: 5_000 })
      expect(next.sessionId).toBe('session-b')
    })

    test('forceRelease releases whoever holds it and hands it on', async () => {
      const { table, doc, changes } = await setup()
      await table.acquire(doc, 'r', owner('a'), LONG)
      const waiting = table.acquire(doc, 'r', owner('b'), { ttlMs: 60_000, waitMs: 10_000 })
      expect(await table.forceRelease(doc, 'r')).toMatchObject({ sessionId: 'session-a' })
      expect((await waiting).sessionId).toBe('session-b')
      expect(changes.find(c => c.event === 'released')).toMatchObject({ reason: 'admin' })
      expect(await table.forceRelease(doc, 'free')).toBeNull()
    })

    test('adopt hands back the session\'s locks with their tokens and leases, announcing nothing', async () => {
      const { table, doc, changes } = await setup()
      const mine = await table.acquire(doc, 'r', owner('a'), { ttlMs: 30_000, waitMs: 0 })
      await table.acquire(doc, 's', owner('b'), LONG)
      const announced = changes.length
      const adopted = await table.adopt(doc, 'session-a')
      expect(adopted.map(({ lock, ttlMs }) => [lock.resource, lock.token, lock.sessionId, ttlMs])).toEqual([['r', mine.token, 'session-a', 30_000]])
      expect(await table.adopt(doc, 'session-nobody')).toEqual([])
      table.letGo(doc, 'session-a')
      expect((await table.list(doc)).map(lock => [lock.resource, lock.sessionId, lock.token])).toContainEqual(['r', 'session-a', mine.token])
      expect(changes).toHaveLength(announced)
    })

    test('documents are independent, resource names are checked', async () => {
      const { table, doc } = await setup()
      await table.acquire(doc, 'r', owner('a'), LONG)
      await table.acquire(`${doc}-other`, 'r', owner('b'), LONG)
      expect(() => table.acquire(doc, '', owner('a'), LONG)).toThrow(/1 to 256/)
      expect(() => table.acquire(doc, 'x'.repeat(257), owner('a'), LONG)).toThrow(/1 to 256/)
      await table.acquire(doc, 'x'.repeat(256), owner('a'), LONG)
    })
  })
}
