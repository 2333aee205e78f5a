import { describe, expect, test } from 'vitest'
import { randomUUID } from 'node:crypto'
import { startServer, stockClient, synced, waitFor, docName, rawClient, opened, closed } from '../support/helpers.js'
import { tandemClient } from '../support/tandem-helpers.js'
import { signToken } from '../support/security-helpers.js'
import { LockDeniedError } from '../../client/index.js'
import { LocalHub } from '../../server/cluster/local-bus.js'
import { writeSyncUpdate } from '../../shared/messages.js'
import { parsePrometheusText, sampleValue, labelValues, type Family } from './prometheus-text.js'
import { frameKind, FRAME_KINDS as MESSAGE_KINDS } from '../../shared/frame-kind.js'
import { KEEPALIVE_FRAME, writeSyncStep1, writeSyncStep2 } from '../../shared/messages.js'
import type { TandemServer } from '../../server/index.js'
import { readFileSync } from 'node:fs'
import { MemoryStore } from '../../server/store/memory-store.js'
import type { StoreEntry } from '../../server/store/store.js'

/** A real in-memory store whose first `failures` writes fail, as a store that is briefly away. */
class FlakyStore extends MemoryStore {
  constructor (private failures: number) {
    super()
  }

  override async append (entries: readonly StoreEntry[]): Promise<void> {
    if (this.failures > 0) {
      this.failures--
      throw new Error('store away')
    }
    return super.append(entries)
  }
}

async function scrape (server: TandemServer): Promise<Map<string, Family>> {
  const res = await fetch(`http://127.0.0.1:${server.address.port}/metrics`)
  expect(res.status).toBe(200)
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
  return parsePrometheusText(await res.text())
}

/** No label value may carry a document or user name (cardinality, and privacy). */
function expectNoNames (families: Map<string, Family>, names: string[]): void {
  for (const value of labelValues(families)) {
    for (const name of names) expect(value.includes(name), `label value ${value} carries ${name}`).toBe(false)
  }
}

describe('frame kinds', () => {
  test('classify frames by their first bytes', () => {
    const kind = (frame: Uint8Array): string => MESSAGE_KINDS[frameKind(frame)] as string
    expect(kind(writeSyncStep1(Uint8Array.of(0)))).toBe('sync_step1')
    expect(kind(writeSyncStep2(Uint8Array.of(0, 0)))).toBe('sync_step2')
    expect(kind(writeSyncUpdate(Uint8Array.of(0, 0)))).toBe('sync_update')
    expect(kind(KEEPALIVE_FRAME)).toBe('keepalive')
    expect(kind(Uint8Array.of(1, 2, 1, 0))).toBe('awareness')
    expect(kind(Uint8Array.of(3))).toBe('query_awareness')
    expect(kind(Uint8Array.of(100, 0))).toBe('tandem')
    expect(kind(Uint8Array.of(2, 0))).toBe('auth')
    expect(kind(Uint8Array.of(77))).toBe('unknown')
    expect(kind(Uint8Array.of())).toBe('unknown')
  })
})

describe('GET /metrics', () => {
  test('counters move with real traffic: leave, heartbeat timeout and refused lock under their own labels', async () => {
    // a timeout well above the event-loop stalls of a loaded test machine: the other clients answer
    // their pings from this process, and must not be counted as timed out themselves
    const server = await startServer({ heartbeatIntervalMs: 100, heartbeatTimeoutMs: 1_500, adminToken: `admin-${randomUUID()}` })
    const name = docName('metrics')
    const users = [`ada-${randomUUID()}`, `bob-${randomUUID()}`, `stock-${randomUUID()}`]
    const [adaId, bobId, stockName] = users as [string, string, string]

    // stock clients edit, and see each other's edits
    const writer = stockClient(server.url, name, { params: { name: stockName } })
    const reader = stockClient(server.url, name)
    await Promise.all([synced(writer.provider), synced(reader.provider)])
    writer.text.insert(0, 'hello metrics')
    await waitFor(() => reader.text.toString() === 'hello metrics', 5_000, 'reader sees the edit')

    // Tandem clients: a granted lock, a refused one, then a leave
    const ada = tandemClient(server.url, name, { user: { id: adaId, name: adaId } })
    const bob = tandemClient(server.url, name, { user: { id: bobId, name: bobId } })
    await Promise.all([ada.synced(), bob.synced()])
    const lock = await ada.locks.acquire('block:1')
    const refusal = await bob.locks.acquire('block:1').catch((err: unknown) => err)
    expect(refusal).toBeInstanceOf(LockDeniedError)
    await lock.release()
    await bob.leave()

    // a client that never answers pings
    const silent = rawClient(`${server.url}/${encodeURIComponent(name)}`, { autoPong: false })
    await opened(silent)
    expect((await closed(silent)).code).toBe(1006)

    await waitFor(async () => sampleValue(await scrape(server), 'tandem_sessions_ended_total', { reason: 'timeout' }) >= 1, 5_000, 'timeout counted')
    const m = await scrape(server)
    expect(m.get('tandem_sessions_ended_total')?.type).toBe('counter')
    expect(sampleValue(m, 'tandem_sessions_ended_total', { reason: 'leave' })).toBe(1)
    expect(sampleValue(m, 'tandem_sessions_ended_total', { reason: 'timeout' })).toBe(1)
    expect(sampleValue(m, 'tandem_session_duration_seconds_count', { reason: 'leave' })).toBe(1)
    expect(sampleValue(m, 'tandem_sessions_started_total')).toBe(5)
    expect(sampleValue(m, 'tandem_heartbeat_terminations_total')).toBe(1)
    expect(sampleValue(m, 'tandem_lock_events_total', { event: 'granted' })).toBe(1)
    expect(sampleValue(m, 'tandem_lock_events_total', { event: 'refused' })).toBe(1)
    expect(sampleValue(m, 'tandem_lock_events_total', { event: 'released' })).toBe(1)
    expect(sampleValue(m, 'tandem_lock_events_total', { event: 'expired' })).toBe(0)

    // messages and bytes by type, both ways
    expect(sampleValue(m, 'tandem_messages_received_total', { type: 'sync_update' })).toBeGreaterThanOrEqual(1)
    expect(sampleValue(m, 'tandem_received_bytes_total', { type: 'sync_update' })).toBeGreaterThan(0)
    expect(sampleValue(m, 'tandem_messages_received_total', { type: 'sync_step1' })).toBeGreaterThanOrEqual(4)
    expect(sampleValue(m, 'tandem_messages_received_total', { type: 'tandem' })).toBeGreaterThanOrEqual(3)
    // the edit was relayed to the three other members: one broadcast, counted three times
    expect(sampleValue(m, 'tandem_messages_sent_total', { type: 'sync_update' })).toBeGreaterThanOrEqual(1)
    expect(sampleValue(m, 'tandem_sent_bytes_total', { type: 'sync_update' })).toBeGreaterThan(0)
    expect(sampleValue(m, 'tandem_messages_sent_total', { type: 'sync_step1' })).toBeGreaterThanOrEqual(5)
    expect(sampleValue(m, 'tandem_messages_sent_total', { type: 'tandem' })).toBeGreaterThanOrEqual(6)

    // the store
    expect(sampleValue(m, 'tandem_updates_applied_total')).toBeGreaterThanOrEqual(1)
    expect(m.get('tandem_store_write_seconds')?.type).toBe('histogram')
    expect(sampleValue(m, 'tandem_store_write_seconds_count')).toBeGreaterThanOrEqual(1)
    expect(sampleValue(m, 'tandem_store_write_seconds_bucket', { le: '+Inf' })).toBe(sampleValue(m, 'tandem_store_write_seconds_count'))
    expect(sampleValue(m, 'tandem_store_batch_updates_count')).toBeGreaterThanOrEqual(1)
    expect(sampleValue(m, 'tandem_store_batch_updates_sum')).toBe(sampleValue(m, 'tandem_updates_applied_total'))
    expect(sampleValue(m, 'tandem_store_failures_total')).toBe(0)

    // gauges: two stock clients and ada remain
    expect(sampleValue(m, 'tandem_connections_open')).toBe(3)
    expect(sampleValue(m, 'tandem_sessions_open')).toBe(3)
    expect(sampleValue(m, 'tandem_documents_loaded')).toBe(1)
    expect(sampleValue(m, 'tandem_users_present')).toBeGreaterThanOrEqual(2)
    expect(sampleValue(m, 'tandem_locks_held')).toBe(0)
    // the process defaults
    expect(m.get('process_cpu_user_seconds_total')?.type).toBe('counter')
    expect(m.get('nodejs_heap_size_used_bytes')?.type).toBe('gauge')

    expectNoNames(m, [name, ...users])
    // no admin token needed: the route is outside /api
    ada.destroy()
  })

  test('refused updates (read-only and invalid), held locks and force releases', async () => {
    const secret = `secret-${randomUUID()}`
    const adminToken = `admin-${randomUUID()}`
    const server = await startServer({ authSecret: secret, adminToken })
    const name = docName('refused')
    const readerId = `reader-${randomUUID()}`
    const writerId = `writer-${randomUUID()}`
    const reader = stockClient(server.url, name, { params: { token: await signToken(secret, { sub: readerId, access: 'read' }) } })
    await synced(reader.provider)
    reader.text.insert(0, 'not allowed')
    const holder = tandemClient(server.url, name, { token: await signToken(secret, { sub: writerId }) })
    await holder.synced()
    await holder.locks.acquire('block:9')
    await waitFor(async () => sampleValue(await scrape(server), 'tandem_locks_held') === 1, 5_000, 'lock held')
    const res = await fetch(`http://127.0.0.1:${server.address.port}/api/documents/${encodeURIComponent(name)}/locks/block%3A9`, {
      method: 'DELETE', headers: { authorization: `Bearer ${adminToken}` }
    })
    expect(res.status).toBe(200)

    const bad = rawClient(`${server.url}/${encodeURIComponent(name)}?token=${await signToken(secret, { sub: writerId })}`)
    await opened(bad)
    bad.send(writeSyncUpdate(Uint8Array.of(200, 200, 200)))
    expect((await closed(bad)).code).toBe(4400)

    await waitFor(async () => sampleValue(await scrape(server), 'tandem_updates_refused_total', { reason: 'read_only' }) >= 1, 5_000, 'read-only refusal counted')
    await waitFor(async () => sampleValue(await scrape(server), 'tandem_updates_applied_total') >= 1, 5_000, 'the undone read-only edit stored')
    const m = await scrape(server)
    expect(sampleValue(m, 'tandem_updates_refused_total', { reason: 'invalid' })).toBe(1)
    expect(sampleValue(m, 'tandem_sessions_ended_total', { reason: 'error' })).toBe(1)
    expect(sampleValue(m, 'tandem_lock_events_total', { event: 'force_released' })).toBe(1)
    expect(sampleValue(m, 'tandem_locks_held')).toBe(0)
    // the read-only edit is applied and undone as one update (enforced-locks.ts), stored as one
    expect(sampleValue(m, 'tandem_updates_applied_total')).toBe(1)
    expectNoNames(m, [name, readerId, writerId])
  })

  test('lock waits, time-outs and releases are counted', async () => {
    const server = await startServer()
    const name = docName('waits')
    const ada = tandemClient(server.url, name, { user: { id: 'ada', name: 'Ada' } })
    const bob = tandemClient(server.url, name, { user: { id: 'bob', name: 'Bob' } })
    await Promise.all([ada.synced(), bob.synced()])
    await ada.locks.acquire('block:1')
    const timedOut = await bob.locks.acquire('block:1', { waitMs: 50 }).catch((err: unknown) => err)
    expect((timedOut as LockDeniedError).code).toBe('TANDEM_ERR_LOCK_TIMEOUT')
    // a request that may wait but finds the lock free does not wait
    await bob.locks.acquire('block:2', { waitMs: 1_000 })
    const queued = bob.locks.acquire('block:1', { waitMs: 5_000 })
    await waitFor(async () => sampleValue(await scrape(server), 'tandem_lock_events_total', { event: 'waited' }) === 2, 5_000, 'second wait queued')
    await ada.leave()
    await queued
    const m = await scrape(server)
    expect(sampleValue(m, 'tandem_lock_events_total', { event: 'timed_out' })).toBe(1)
    expect(sampleValue(m, 'tandem_lock_events_total', { event: 'waited' })).toBe(2)
    expect(sampleValue(m, 'tandem_lock_events_total', { event: 'granted' })).toBe(3)
    // ada's lock, released when she left, counted once by the holder's instance
    expect(sampleValue(m, 'tandem_lock_events_total', { event: 'released' })).toBe(1)
    expect(sampleValue(m, 'tandem_locks_held')).toBe(2)
  })

  test('store failures and retries, then the write that succeeds', async () => {
    const server = await startServer({ persistence: new FlakyStore(2) })
    const name = docName('flaky')
    const a = stockClient(server.url, name)
    const b = stockClient(server.url, name)
    await Promise.all([synced(a.provider), synced(b.provider)])
    a.text.insert(0, 'eventually')
    await waitFor(() => b.text.toString() === 'eventually', 5_000, 'relayed')
    // relayed at once, stored after two failed writes and their retries
    let m = await scrape(server)
    await waitFor(async () => sampleValue(m = await scrape(server), 'tandem_store_write_seconds_count') === 1, 5_000, 'stored after retries')
    expect(sampleValue(m, 'tandem_store_failures_total')).toBe(2)
    expect(sampleValue(m, 'tandem_store_retries_total')).toBe(2)
    expect(sampleValue(m, 'tandem_updates_applied_total')).toBe(1)
    expect(sampleValue(m, 'tandem_store_batch_updates_count')).toBe(1)
    expect(sampleValue(m, 'tandem_store_write_seconds_count')).toBe(1)
  })

  test('bus messages and lag between instances', async () => {
    const hub = new LocalHub()
    const one = await startServer({ bus: hub.bus() })
    const two = await startServer({ bus: hub.bus() })
    const name = docName('bus')
    const a = stockClient(one.url, name)
    const b = stockClient(two.url, name)
    await Promise.all([synced(a.provider), synced(b.provider)])
    a.text.insert(0, 'across')
    await waitFor(() => b.text.toString() === 'across', 5_000, 'edit crosses the bus')
    const m1 = await scrape(one)
    const m2 = await scrape(two)
    expect(sampleValue(m1, 'tandem_bus_messages_total', { direction: 'out' })).toBeGreaterThanOrEqual(1)
    expect(sampleValue(m2, 'tandem_bus_messages_total', { direction: 'in' })).toBeGreaterThanOrEqual(1)
    expect(sampleValue(m2, 'tandem_bus_lag_seconds_count')).toBe(sampleValue(m2, 'tandem_bus_messages_total', { direction: 'in' }))
    expect(sampleValue(m2, 'tandem_bus_reconnects_total')).toBe(0)
    expectNoNames(m2, [name])
  })

  test('docs/operations.md lists every Tandem metric with its type', async () => {
    const server = await startServer()
    const readme = readFileSync(new URL('../../docs/operations.md', import.meta.url), 'utf8')
    const families = [...(await scrape(server)).values()].filter(f => f.name.startsWith('tandem_'))
    expect(families.length).toBeGreaterThanOrEqual(20)
    for (const family of families) expect(readme).toContain(`| \`${family.name}\` | ${family.type} |`)
  })
})
