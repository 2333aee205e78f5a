import { describe, expect, onTestFinished, test } from 'vitest'
import { Redis } from 'ioredis'
import { PresenceMerge, LOCAL, type LocalPresence } from '../../server/presence/merge.js'
import type { PresenceChange } from '../../server/presence/board.js'
import type { PresenceEntry } from '../../shared/tandem.js'
import { MemoryStore } from '../../server/store/memory-store.js'
import { LocalHub } from '../../server/cluster/local-bus.js'
import { docName, startServer, waitFor } from '../support/helpers.js'
import { dropSocket, leftEvents, record, tandemClient } from '../support/tandem-helpers.js'
import { REDIS_URL, redisPrefix, redisUp, testWith } from '../support/services.js'

function entry (userId: string, part: Partial<PresenceEntry> = {}): PresenceEntry {
  return { userId, name: userId.toUpperCase(), color: '#000', status: 'active', connections: 1, joinedAt: 10, lastActiveAt: 10, ...part }
}

/**
 * A merge whose local entries are given as they would come from a table: `local` makes the
 * change there (as the table has when it tells the merge), then tells the merge.
 */
function merge (): { merge: PresenceMerge, changes: PresenceChange[], local: (change: PresenceChange) => void } {
  const changes: PresenceChange[] = []
  const shown = new Map<string, PresenceEntry>()
  const entries: LocalPresence = {
    shown: userId => { const entry = shown.get(userId); return entry === undefined ? undefined : { ...entry } },
    allShown: () => [...shown.values()].map(entry => ({ ...entry })),
    get size () { return shown.size }
  }
  const m = new PresenceMerge(entries, change => changes.push(change))
  const local = (change: PresenceChange): void => {
    const last = shown.get(change.user.userId) ?? change.user
    if (change.event === 'left') shown.delete(change.user.userId)
    else shown.set(change.user.userId, change.user)
    m.local(change, change.event === 'left' ? last : change.user)
  }
  return { merge: m, changes, local }
}

describe('PresenceMerge', () => {
  test('one entry per user across nodes: connections summed, liveliest status, earliest join', () => {
    const { merge: m, changes, local } = merge()
    local({ event: 'joined', user: entry('ada', { status: 'idle', joinedAt: 20 }) })
    m.set('n2', 'ada', entry('ada', { status: 'active', connections: 2, joinedAt: 5, lastActiveAt: 30, name: 'Ada B' }), 'leave')
    expect(m.list()).toEqual([{ userId: 'ada', name: 'Ada B', color: '#000', status: 'active', connections: 3, joinedAt: 5, lastActiveAt: 30 }])
    expect(changes.map(c => c.event)).toEqual(['joined', 'updated'])
    expect(m.own()).toEqual([entry('ada', { status: 'idle', joinedAt: 20 })])
  })

  test('leaves with the reason of the last part to go; a part going first is an update', () => {
    const { merge: m, changes, local } = merge()
    local({ event: 'joined', user: entry('ada') })
    m.set('n2', 'ada', entry('ada'), 'leave')
    local({ event: 'left', user: entry('ada', { connections: 0 }), reason: 'leave' })
    expect(changes.at(-1)).toMatchObject({ event: 'updated', user: { connections: 1 } })
    m.set('n2', 'ada', null, 'kicked')
    expect(changes.at(-1)).toMatchObject({ event: 'left', reason: 'kicked', user: { userId: 'ada', connections: 0 } })
    expect(m.size).toBe(0)
  })

  test('parts are kept as given, never changed by a merge; what it hands out is a copy', () => {
    const { merge: m, changes, local } = merge()
    const own = entry('ada', { status: 'idle', joinedAt: 20 })
    const peer = entry('ada', { connections: 2, joinedAt: 5, lastActiveAt: 30, name: 'Ada B' })
    local({ event: 'joined', user: own })
    m.set('n2', 'ada', peer, 'leave')
    m.set('n3', 'ada', entry('ada', { lastActiveAt: 40, name: 'Ada C' }), 'leave')
    expect(own).toEqual(entry('ada', { status: 'idle', joinedAt: 20 }))
    expect(peer).toEqual(entry('ada', { connections: 2, joinedAt: 5, lastActiveAt: 30, name: 'Ada B' }))
    expect(m.list()[0]).toMatchObject({ name: 'Ada C', connections: 4, joinedAt: 5, lastActiveAt: 40 })
    // with one part left the merged entry is that part's: handing it out must not expose it
    m.set('n2', 'ada', null, 'leave')
    m.set('n3', 'ada', null, 'leave')
    const listed = m.list()[0] as PresenceEntry
    listed.connections = 99
    const announced = changes.at(-1)?.user as PresenceEntry
    announced.status = 'away'
    expect(m.own()).toEqual([entry('ada', { status: 'idle', joinedAt: 20 })])
    expect(m.list()).toEqual([entry('ada', { status: 'idle', joinedAt: 20 })])
  })

  test('a lastActiveAt change alone is not announced', () => {
    const { merge: m, changes } = merge()
    m.set('n2', 'ada', entry('ada'), 'leave')
    m.set('n2', 'ada', entry('ada', { lastActiveAt: 99 }), 'leave')
    expect(changes).toHaveLength(1)
    expect(m.list()[0]?.lastActiveAt).toBe(99)
  })

  test('a snapshot replaces a node\'s entries; a dead node\'s users leave with timeout', () => {
    const { merge: m, changes, local } = merge()
    m.replace('n2', [entry('ada'), entry('bob')], 'disconnect')
    m.replace('n2', [entry('bob', { status: 'away' })], 'disconnect')
    expect(changes.map(c => c.event === 'left' ? `left:${c.user.userId}:${c.reason}` : `${c.event}:${c.user.userId}`))
      .toEqual(['joined:ada', 'joined:bob', 'left:ada:disconnect', 'updated:bob'])
    local({ event: 'joined', user: entry('bob') })
    m.set('n3', 'carol', entry('carol'), 'leave')
    m.drop('n2', 'timeout')
    m.drop('n3', 'timeout')
    expect(changes.slice(4).map(c => c.event === 'left' ? `left:${c.user.userId}:${c.reason}` : `${c.event}:${c.user.userId}`))
      .toEqual(['updated:bob', 'joined:carol', 'updated:bob', 'left:carol:timeout'])
    expect(m.list().map(e => e.userId)).toEqual(['bob'])
    expect(m.remoteEmpty).toBe(true)
    expect(LOCAL).toBe('')
  })
})

/** Two servers in this process: one store, an in-process bus, and locks in the test Redis. */
async function pair (options: { reconnectGraceMs?: number, heartbeatIntervalMs?: number, heartbeatTimeoutMs?: number } = {}, prefix = redisPrefix()): Promise<Array<Awaited<ReturnType<typeof startServer>>>> {
  const hub = new LocalHub()
  const store = new MemoryStore()
  const shared = { persistence: store, redis: REDIS_URL, redisPrefix: prefix, ...options }
  return [await startServer({ ...shared, bus: hub.bus() }), await startServer({ ...shared, bus: hub.bus() })]
}

describe('presence and locks across servers in one process', () => {
  const it = testWith(redisUp)

  it('a user with a tab on each server is one entry with two connections, seen the same everywhere', async () => {
    const [one, two] = await pair({ reconnectGraceMs: 0 })
    const name = docName()
    const ada1 = tandemClient(one!.url, name, { user: { id: 'ada', name: 'Ada' } })
    const bob = tandemClient(two!.url, name, { user: { id: 'bob', name: 'Bob' } })
    const bobEvents = record(bob)
    await Promise.all([ada1.synced(), bob.synced()])
    const ada2 = tandemClient(two!.url, name, { user: { id: 'ada', name: 'Ada' } })
    await ada2.synced()
    const ada = (c: typeof bob): PresenceEntry | undefined => c.presence.list().find(e => e.userId === 'ada')
    await waitFor(() => ada(bob)?.connections === 2 && ada(ada1)?.connections === 2 && bob.presence.list().length === 2, 5_000, 'ada counted twice')
    expect(ada1.presence.list().map(e => e.userId).sort()).toEqual(['ada', 'bob'])
    const api = await fetch(`${one!.url.replace('ws:', 'http:')}/api/documents/${encodeURIComponent(name)}/presence`).then(r => r.json()) as PresenceEntry[]
    expect(api.find(e => e.userId === 'ada')?.connections).toBe(2)
    expect(api.map(e => e.userId).sort()).toEqual(['ada', 'bob'])
    // the tab on server one drops: one connection left, no `left`
    dropSocket(ada1)
    ada1.destroy()
    await waitFor(() => ada(bob)?.connections === 1, 5_000, 'one tab left')
    expect(leftEvents(bobEvents)).toEqual([])
    await ada2.leave()
    await waitFor(() => leftEvents(bobEvents).length === 1, 5_000, 'ada left')
    expect(leftEvents(bobEvents)[0]).toMatchObject({ user: { userId: 'ada' }, reason: 'leave' })
  })

  it('locks: exclusion and growing tokens across servers, FIFO waiters, admin release on the other server', async () => {
    const prefix = redisPrefix()
    const [one, two] = await pair({}, prefix)
    const redis = new Redis(REDIS_URL)
    onTestFinished(() => { redis.disconnect() })
    const name = docName()
    const queued = (): Promise<number> => redis.llen(`${prefix}{${encodeURIComponent(name)}}:q:block:1`)
    const ada = tandemClient(one!.url, name, { user: { id: 'ada' } })
    const bob = tandemClient(two!.url, name, { user: { id: 'bob' } })
    const carol = tandemClient(one!.url, name, { user: { id: 'carol' } })
    const watcher = tandemClient(two!.url, name, { user: { id: 'watcher' } })
    const seen = record(watcher)
    await Promise.all([ada.synced(), bob.synced(), carol.synced(), watcher.synced()])
    const first = await ada.locks.acquire('block:1')
    const refusal = await bob.locks.acquire('block:1').catch((err: unknown) => err) as { code: string, holder: { userId: string } }
    expect(refusal.code).toBe('TANDEM_ERR_LOCK_HELD')
    expect(refusal.holder.userId).toBe('ada')
    await waitFor(() => watcher.locks.holder('block:1')?.userId === 'ada', 5_000, 'the other server\'s client sees the lock')
    // bob (server two) queues first, carol (server one) second
    const bobs = bob.locks.acquire('block:1', { waitMs: 10_000 })
    await waitFor(async () => await queued() === 1, 5_000, 'bob queued')
    const carols = carol.locks.acquire('block:1', { waitMs: 10_000 })
    await waitFor(async () => await queued() === 2, 5_000, 'carol queued')
    // an admin on server two releases ada's lock held through server one
    const response = await fetch(`${two!.url.replace('ws:', 'http:')}/api/documents/${encodeURIComponent(name)}/locks/block%3A1`, { method: 'DELETE' })
    expect(response.status).toBe(200)
    const second = await bobs
    expect(second.token).toBeGreaterThan(first.token)
    await waitFor(() => ada.locks.list().some(l => l.userId === 'bob'), 5_000, 'ada sees bob holding it')
    await second.release()
    const third = await carols
    expect(third.token).toBeGreaterThan(second.token)
    await waitFor(() => watcher.locks.holder('block:1')?.userId === 'carol', 5_000, 'watcher sees carol')
    expect(seen.locks.filter(e => e.type === 'released').map(e => e.type === 'released' && e.reason)).toEqual(['admin', 'release'])
  })

  it('a heartbeat timeout on one server: the other sees left with timeout and the lock released with timeout', async () => {
    const [one, two] = await pair({ heartbeatIntervalMs: 50, heartbeatTimeoutMs: 1_000, reconnectGraceMs: 200 })
    const name = docName()
    const watcher = tandemClient(two!.url, name, { user: { id: 'watcher' } })
    const events = record(watcher)
    const ada = tandemClient(one!.url, name, { user: { id: 'ada' } })
    await Promise.all([watcher.synced(), ada.synced()])
    await ada.locks.acquire('block:1')
    await waitFor(() => watcher.locks.holder('block:1')?.userId === 'ada', 5_000, 'watcher sees the lock')
    // a frozen peer: it neither reads pings nor answers them
    const socket = (ada.provider.ws as unknown as { _socket: { pause: () => void } })._socket
    socket.pause()
    ada.provider.shouldConnect = false
    await waitFor(() => leftEvents(events).length === 1, 5_000, 'ada timed out')
    expect(leftEvents(events)[0]).toMatchObject({ user: { userId: 'ada' }, reason: 'timeout' })
    await waitFor(() => watcher.locks.holder('block:1') === undefined, 5_000, 'lock released')
    expect(events.locks.find(e => e.type === 'released')).toMatchObject({ reason: 'timeout' })
    expect(events.presence.some(e => e.type === 'updated' && e.user.userId === 'ada' && e.user.status === 'reconnecting')).toBe(true)
    ada.destroy()
  })
})
