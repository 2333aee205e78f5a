import { describe, expect, onTestFinished } from 'vitest'
import { Redis } from 'ioredis'
import type { PresenceEntry } from '../../shared/tandem.js'
import { docName, waitFor } from '../support/helpers.js'
import { POSTGRES_URL, pgSchema, postgresUp, privateRedis, redisPrefix, redisUp, testWith, type PrivateRedis } from '../support/services.js'
import { httpStatus, startTandem, type TandemProcess } from '../support/cli.js'
import { dropSocket, leftEvents, record, tandemClient } from '../support/tandem-helpers.js'
import type { TandemClient } from '../../client/index.js'

const it = testWith(postgresUp && redisUp)

/** Short heartbeats, so a killed instance is noticed within 2 s. */
const HEARTBEAT_TIMEOUT_MS = 2_000
const HEARTBEAT = ['--heartbeat-interval', '500', '--heartbeat-timeout', String(HEARTBEAT_TIMEOUT_MS)]

/** Two tandem processes sharing a private redis-server and a fresh PostgreSQL schema. */
interface Pair {
  p1: TandemProcess
  p2: TandemProcess
  redis: PrivateRedis
  /** Length of a resource's queue of waiters in Redis. */
  queued: (doc: string, resource: string) => Promise<number>
}

async function pair (graceMs: number): Promise<Pair> {
  const redis = await privateRedis()
  const schema = pgSchema()
  const prefix = redisPrefix()
  const args = ['--persistence', `${POSTGRES_URL}?schema=${schema}`, '--redis', redis.url, '--redis-prefix', prefix, '--reconnect-grace', String(graceMs), ...HEARTBEAT]
  const client = new Redis(redis.url)
  client.on('error', () => {}) // the outage test kills this Redis
  onTestFinished(() => { client.disconnect() })
  const queued = (doc: string, resource: string): Promise<number> => client.llen(`${prefix}{${encodeURIComponent(doc)}}:q:${resource}`)
  return { p1: await startTandem(args), p2: await startTandem(args), redis, queued }
}

function entryOf (client: TandemClient, userId: string): PresenceEntry | undefined {
  return client.presence.list().find(entry => entry.userId === userId)
}

async function api<T> (instance: TandemProcess, path: string, init?: RequestInit): Promise<{ status: number, body: T }> {
  const response = await fetch(instance.http + path, init)
  return { status: response.status, body: await response.json() as T }
}

/** Logs a figure for the report (not asserted: performance belongs to bench/). */
function figure (what: string, startedAt: number): void {
  process.stdout.write(`[figure] ${what}: ${Date.now() - startedAt} ms\n`)
}

describe('presence and locks across tandem processes', () => {
  it('presence: one entry per user across instances, events everywhere, removal within 1 s of a drop (grace 0)', async () => {
    const { p1, p2 } = await pair(0)
    const name = docName()
    const watcher1 = tandemClient(p1.url, name, { user: { id: 'w1', name: 'W1' } })
    const watcher2 = tandemClient(p2.url, name, { user: { id: 'w2', name: 'W2' } })
    const [seen1, seen2] = [record(watcher1), record(watcher2)]
    await Promise.all([watcher1.synced(), watcher2.synced()])
    await waitFor(() => entryOf(watcher1, 'w2') !== undefined && entryOf(watcher2, 'w1') !== undefined, 5_000, 'watchers see each other')

    const adaOn1 = tandemClient(p1.url, name, { user: { id: 'ada', name: 'Ada' } })
    await adaOn1.synced()
    await waitFor(() => entryOf(watcher2, 'ada')?.connections === 1, 5_000, 'ada joined, seen on the other instance')
    const adaOn2 = tandemClient(p2.url, name, { user: { id: 'ada', name: 'Ada' } })
    await adaOn2.synced()
    await waitFor(() => [watcher1, watcher2, adaOn1, adaOn2].every(c => entryOf(c, 'ada')?.connections === 2), 5_000, 'one entry, two connections, everywhere')
    for (const seen of [seen1, seen2]) {
      expect(seen.presence.filter(e => e.type === 'joined' && e.user.userId === 'ada')).toHaveLength(1)
    }
    for (const instance of [p1, p2]) {
      const { body } = await api<PresenceEntry[]>(instance, `/api/documents/${encodeURIComponent(name)}/presence`)
      expect(body.map(e => `${e.userId}:${e.connections}`).sort()).toEqual(['ada:2', 'w1:1', 'w2:1'])
    }

    // the tab on instance one drops (no resume with grace 0): one connection left, no `left`
    dropSocket(adaOn1)
    adaOn1.destroy()
    await waitFor(() => entryOf(watcher2, 'ada')?.connections === 1, 1_000, 'connection count drops on the other instance within 1 s')
    expect(leftEvents(seen2)).toEqual([])
    // the last tab drops on instance two: `left` with `disconnect` on instance one within 1 s
    const dropped = Date.now()
    dropSocket(adaOn2)
    adaOn2.destroy()
    await waitFor(() => leftEvents(seen1).some(e => e.user.userId === 'ada'), 1_000, 'ada left on the other instance within 1 s')
    figure('drop on one instance to `left` on the other', dropped)
    expect(leftEvents(seen1).find(e => e.user.userId === 'ada')?.reason).toBe('disconnect')
    await waitFor(() => leftEvents(seen2).some(e => e.user.userId === 'ada'), 1_000, 'and on its own instance')
    // a clean leave keeps its reason across instances
    await watcher2.leave()
    await waitFor(() => leftEvents(seen1).some(e => e.user.userId === 'w2'), 1_000, 'w2 left')
    expect(leftEvents(seen1).find(e => e.user.userId === 'w2')?.reason).toBe('leave')
  })

  it('resume within the grace on the same instance keeps presence and locks; the other instance sees reconnecting, never left', async () => {
    const { p1, p2 } = await pair(5_000)
    const name = docName()
    const ada = tandemClient(p1.url, name, { user: { id: 'ada', name: 'Ada' } })
    const bob = tandemClient(p2.url, name, { user: { id: 'bob', name: 'Bob' } })
    const seen = record(bob)
    await Promise.all([ada.synced(), bob.synced()])
    const lock = await ada.locks.acquire('block:1')
    await waitFor(() => bob.locks.holder('block:1')?.token === lock.token && entryOf(bob, 'ada') !== undefined, 5_000, 'bob sees ada and her lock')
    const sessionId = ada.sessionId
    dropSocket(ada)
    await waitFor(() => seen.presence.some(e => e.type === 'updated' && e.user.userId === 'ada' && e.user.status === 'reconnecting'), 5_000, 'reconnecting on the other instance')
    await waitFor(() => ada.status === 'connected' && entryOf(bob, 'ada')?.status === 'active', 5_000, 'resumed, active again')
    expect(ada.sessionId).toBe(sessionId)
    expect(leftEvents(seen)).toEqual([])
    expect(bob.locks.holder('block:1')?.token).toBe(lock.token)
    expect(seen.locks.filter(e => e.type === 'released')).toEqual([])
    const { body } = await api<Array<{ token: number, userId: string }>>(p2, `/api/documents/${encodeURIComponent(name)}/locks`)
    expect(body).toMatchObject([{ token: lock.token, userId: 'ada' }])
  })

  it('locks: exclusion and fencing across instances, a FIFO waiter on the other instance, admin release on the other instance', async () => {
    const { p1, p2, queued } = await pair(0)
    const name = docName()
    const ada = tandemClient(p1.url, name, { user: { id: 'ada' } })
    const bob = tandemClient(p2.url, name, { user: { id: 'bob' } })
    const carol = tandemClient(p1.url, name, { user: { id: 'carol' } })
    const watcher = tandemClient(p2.url, name, { user: { id: 'watcher' } })
    const seen = record(watcher)
    await Promise.all([ada.synced(), bob.synced(), carol.synced(), watcher.synced()])
    const first = await ada.locks.acquire('block:1')
    const refusal = await bob.locks.acquire('block:1').catch((err: unknown) => err) as { code: string, holder: { userId: string, token: number } }
    expect(refusal.code).toBe('TANDEM_ERR_LOCK_HELD')
    expect(refusal.holder).toMatchObject({ userId: 'ada', token: first.token })
    await waitFor(() => watcher.locks.holder('block:1')?.userId === 'ada', 5_000, 'the lock is seen on the other instance')
    // bob (instance two) queues first, carol (instance one) second
    const bobs = bob.locks.acquire('block:1', { waitMs: 10_000 })
    await waitFor(async () => await queued(name, 'block:1') === 1, 5_000, 'bob queued')
    const carols = carol.locks.acquire('block:1', { waitMs: 10_000 })
    await waitFor(async () => await queued(name, 'block:1') === 2, 5_000, 'carol queued')
    // an admin on instance two releases the lock held through instance one
    const released = Date.now()
    const { status } = await api(p2, `/api/documents/${encodeURIComponent(name)}/locks/${encodeURIComponent('block:1')}`, { method: 'DELETE' })
    expect(status).toBe(200)
    const second = await bobs
    figure('admin release on one instance to the grant of the first waiter on the other', released)
    await waitFor(() => ada.locks.holder('block:1')?.userId === 'bob', 5_000, 'ada sees bob holding it')
    expect(second.token).toBeGreaterThan(first.token)
    expect(await queued(name, 'block:1')).toBe(1)
    await second.release()
    const last = await carols
    expect(last.token).toBeGreaterThan(second.token)
    await waitFor(() => watcher.locks.holder('block:1')?.userId === 'carol', 5_000, 'watcher sees carol, the last holder')
    expect(seen.locks.filter(e => e.type === 'released').map(e => e.type === 'released' && e.reason)).toEqual(['admin', 'release'])
    // tokens keep growing whichever instance grants
    await last.release()
    const again = await ada.locks.acquire('block:1')
    expect(again.token).toBeGreaterThan(last.token)
  })

  it('SIGKILL of the instance holding a lock: the lock is released and the holder\'s presence removed within the heartbeat timeout; the waiter on the other instance gets it', async () => {
    const { p1, p2, queued } = await pair(5_000)
    const name = docName()
    const ada = tandemClient(p1.url, name, { user: { id: 'ada', name: 'Ada' } })
    const bob = tandemClient(p2.url, name, { user: { id: 'bob', name: 'Bob' } })
    const watcher = tandemClient(p2.url, name, { user: { id: 'watcher' } })
    const seen = record(watcher)
    await Promise.all([ada.synced(), bob.synced(), watcher.synced()])
    const held = await ada.locks.acquire('block:1')
    await waitFor(() => watcher.locks.holder('block:1')?.userId === 'ada' && entryOf(watcher, 'ada') !== undefined, 5_000, 'watcher sees ada and her lock')
    let granted: { token: number } | undefined
    void bob.locks.acquire('block:1', { waitMs: 20_000 }).then(lock => { granted = lock })
    await waitFor(async () => await queued(name, 'block:1') === 1, 5_000, 'bob queued')
    const killed = Date.now()
    await p1.stop('SIGKILL')
    ada.destroy()
    // within the heartbeat timeout, plus a little for the grant to travel
    await waitFor(() => granted !== undefined, HEARTBEAT_TIMEOUT_MS + 500, 'the waiter on the other instance gets the lock')
    figure('SIGKILL to the grant of the waiter on the other instance', killed)
    const lock = granted as { token: number }
    expect(lock.token).toBeGreaterThan(held.token)
    await waitFor(() => leftEvents(seen).some(e => e.user.userId === 'ada'), Math.max(1, HEARTBEAT_TIMEOUT_MS + 500 - (Date.now() - killed)), 'ada removed within the heartbeat timeout')
    figure('SIGKILL to `left` on the other instance', killed)
    expect(['timeout', 'disconnect']).toContain(leftEvents(seen).find(e => e.user.userId === 'ada')?.reason)
    expect(seen.locks.find(e => e.type === 'released')).toMatchObject({ reason: 'timeout', lock: { userId: 'ada' } })
    expect(watcher.locks.holder('block:1')?.userId).toBe('bob')
  })

  it('graceful shutdown of one instance: its users leave with shutdown and its locks go to the waiters on the other', async () => {
    const { p1, p2, queued } = await pair(5_000)
    const name = docName()
    const ada = tandemClient(p1.url, name, { user: { id: 'ada' } })
    const bob = tandemClient(p2.url, name, { user: { id: 'bob' } })
    const seen = record(bob)
    await Promise.all([ada.synced(), bob.synced()])
    const held = await ada.locks.acquire('block:1')
    const waiting = bob.locks.acquire('block:1', { waitMs: 10_000 })
    await waitFor(async () => await queued(name, 'block:1') === 1, 5_000, 'bob queued')
    expect(await p1.stop('SIGTERM')).toBe(0)
    ada.destroy()
    const lock = await waiting
    expect(lock.token).toBeGreaterThan(held.token)
    await waitFor(() => leftEvents(seen).some(e => e.user.userId === 'ada'), 5_000, 'ada left')
    expect(leftEvents(seen).find(e => e.user.userId === 'ada')?.reason).toBe('shutdown')
    expect(seen.locks.find(e => e.type === 'released')).toMatchObject({ reason: 'shutdown', lock: { userId: 'ada' } })
  })

  it('Redis outage: new acquisitions are refused with TANDEM_ERR_REDIS_UNAVAILABLE, documents keep working; afterwards held locks are put back and tokens keep growing', async () => {
    const { p1, p2, redis } = await pair(5_000)
    const name = docName()
    const ada = tandemClient(p1.url, name, { user: { id: 'ada' } })
    const bob = tandemClient(p2.url, name, { user: { id: 'bob' } })
    await Promise.all([ada.synced(), bob.synced()])
    const ghost = tandemClient(p1.url, name, { user: { id: 'ghost' } })
    await ghost.synced()
    const held = await ada.locks.acquire('block:1')
    await waitFor(() => bob.locks.holder('block:1')?.userId === 'ada' && entryOf(bob, 'ghost') !== undefined, 5_000, 'bob sees the lock and ghost')

    await redis.stop() // a restart loses every key: no persistence
    await waitFor(async () => await httpStatus(p1.http, '/readyz') === 503 && await httpStatus(p2.http, '/readyz') === 503, 5_000, 'readyz 503')
    const refused = await bob.locks.acquire('block:2').catch((err: unknown) => err) as { code: string }
    expect(refused.code).toBe('TANDEM_ERR_REDIS_UNAVAILABLE')
    const local = tandemClient(p2.url, name, { user: { id: 'carol' } })
    await local.synced()
    // a user leaving instance one meanwhile: the other instance cannot hear it now
    await ghost.leave()
    expect(entryOf(bob, 'ghost')).toBeDefined()
    bob.doc.getText('t').insert(0, 'still editing')
    await waitFor(() => local.doc.getText('t').toString() === 'still editing', 5_000, 'documents are served during the outage')

    await redis.start()
    await waitFor(async () => await httpStatus(p1.http, '/readyz') === 200 && await httpStatus(p2.http, '/readyz') === 200, 10_000, 'readyz 200 again')
    // presence converges: each instance's snapshot replaces what the other had
    await waitFor(() => bob.presence.list().map(e => e.userId).sort().join() === 'ada,bob,carol' &&
      ada.presence.list().map(e => e.userId).sort().join() === 'ada,bob,carol', 10_000, 'presence converges')
    // the holder's instance puts its lock back: same token, same holder
    await waitFor(async () => {
      const response = await fetch(`${p2.http}/api/documents/${encodeURIComponent(name)}/locks`)
      const locks = await response.json() as Array<{ token: number, userId: string }>
      return locks.length === 1 && locks[0]!.token === held.token && locks[0]!.userId === 'ada'
    }, 10_000, 'the lock is back in Redis')
    const refusal = await bob.locks.acquire('block:1').catch((err: unknown) => err) as { code: string }
    expect(refusal.code).toBe('TANDEM_ERR_LOCK_HELD')
    expect(ada.locks.holder('block:1')?.token).toBe(held.token)
    await held.release()
    // Redis forgot the last token; the store did not
    const next = await bob.locks.acquire('block:1')
    expect(next.token).toBeGreaterThan(held.token)
  })
})
