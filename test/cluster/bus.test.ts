import { describe, expect, onTestFinished, test } from 'vitest'
import { pino } from 'pino'
import { LocalHub } from '../../server/cluster/local-bus.js'
import { RedisBus } from '../../server/cluster/redis-bus.js'
import type { BusMessage } from '../../server/cluster/bus.js'
import { decodeBusMessage, encodeBusMessage } from '../../server/cluster/bus-codec.js'
import { busContract } from './bus-contract.js'
import { docName, testLogger, waitFor } from '../support/helpers.js'
import { REDIS_URL, privateRedis, privateRedisCluster, redisPrefix, redisUp, testWith } from '../support/services.js'

busContract('in-process', async () => {
  const hub = new LocalHub()
  return () => hub.bus()
})

busContract('redis', async () => {
  const prefix = redisPrefix()
  return () => new RedisBus({ url: REDIS_URL, prefix, livenessMs: 500, logger: testLogger })
}, redisUp || process.env.CI === 'true')

busContract('redis cluster', async () => {
  const url = await privateRedisCluster()
  const prefix = redisPrefix()
  return () => new RedisBus({ url, prefix, livenessMs: 500, logger: testLogger })
}, redisUp || process.env.CI === 'true')

describe('bus message codec', () => {
  const messages: BusMessage[] = [
    { type: 'update', from: 'n1', doc: 'a/b é', update: Uint8Array.of(1, 2, 3) },
    { type: 'awareness', from: 'n1', doc: 'd', update: new Uint8Array(0) },
    { type: 'sync', from: 'n2', doc: 'd', to: '', stateVector: Uint8Array.of(0) },
    { type: 'sync-reply', from: 'n2', doc: 'd', to: 'n1', update: Uint8Array.of(0, 0) },
    { type: 'awareness-snapshot', from: 'n3', doc: '{x}', update: Uint8Array.of(0) },
    { type: 'presence', from: 'n1', doc: 'd', userId: 'u', entry: { userId: 'u', name: 'Ada', color: '#f80', status: 'idle', connections: 2, joinedAt: 1_732_000_000_000, lastActiveAt: 1_732_000_000_500 }, reason: '' },
    { type: 'presence', from: 'n1', doc: 'd', userId: 'u', entry: null, reason: 'timeout' },
    { type: 'presence-snapshot', from: 'n2', doc: 'd', entries: [] },
    { type: 'presence-snapshot', from: 'n2', doc: 'd', entries: [{ userId: 'a', name: '', color: '', status: 'reconnecting', connections: 1, joinedAt: 0, lastActiveAt: 0 }, { userId: 'b', name: 'B', color: 'c', status: 'away', connections: 3, joinedAt: 5, lastActiveAt: 6 }] },
    { type: 'revoke', from: 'n1', doc: '', revocation: { kind: 'user', value: 'ada', revokedAt: 1_732_000_000_000, expiresAt: 1_732_086_400_000 } },
    { type: 'revoke', from: 'n1', doc: '', revocation: { kind: 'jti', value: 'é', revokedAt: 0, expiresAt: 1 } },
    { type: 'recheck', from: 'n2', doc: 'a/b' },
    { type: 'deleted', from: 'n3', doc: 'gone/é' },
    { type: 'resumed', from: 'n1', doc: '', to: 'n2', sessionId: 's-é' },
    { type: 'relay', from: 'n1', doc: 'd', seq: 7, update: Uint8Array.of(1, 2) },
    { type: 'relay', from: 'n1', doc: 'd', seq: 300, update: Uint8Array.of(1), owners: [{ client: 5, user: 'u' }] },
    { type: 'relay', from: 'n1', doc: 'd', seq: 8, update: null }
  ]

  test('round-trips every message type', () => {
    for (const message of messages) expect(decodeBusMessage(encodeBusMessage(message))).toEqual(message)
  })

  test('fixed bytes for a revocation, and an unknown kind is refused', () => {
    const bytes = [...encodeBusMessage({ type: 'revoke', from: 'n', doc: '', revocation: { kind: 'session', value: 's', revokedAt: 5, expiresAt: 6 } }, 9)]
    expect(bytes).toEqual([2, 7, 1, 110, 0, 9, 1, 1, 115, 5, 6])
    expect(() => decodeBusMessage(Uint8Array.from([2, 7, 1, 110, 0, 9, 3, 1, 115, 5, 6]))).toThrow(/revocation kind/)
  })

  test('fixed bytes for an update', () => {
    expect([...encodeBusMessage({ type: 'update', from: 'n', doc: 'd', update: Uint8Array.of(7) }, 9)]).toEqual([2, 0, 1, 110, 1, 100, 9, 1, 7])
  })

  test('fixed bytes for a relay (type 11) and its confirmation', () => {
    expect([...encodeBusMessage({ type: 'relay', from: 'n', doc: 'd', seq: 3, update: Uint8Array.of(7) }, 9)]).toEqual([2, 11, 1, 110, 1, 100, 9, 3, 1, 1, 7])
    expect([...encodeBusMessage({ type: 'relay', from: 'n', doc: 'd', seq: 3, update: null }, 9)]).toEqual([2, 11, 1, 110, 1, 100, 9, 3, 0])
    expect(() => decodeBusMessage(Uint8Array.of(2, 11, 1, 110, 1, 100, 9, 3, 2))).toThrow(/relay flag/)
    expect(() => decodeBusMessage(Uint8Array.of(2, 11, 1, 110, 1, 100, 9, 3, 0, 0))).toThrow(/trailing/)
  })

  test('fixed bytes for a deletion', () => {
    expect([...encodeBusMessage({ type: 'deleted', from: 'n', doc: 'd' }, 9)]).toEqual([2, 9, 1, 110, 1, 100, 9])
    expect(() => decodeBusMessage(Uint8Array.of(2, 9, 1, 110, 1, 100, 9, 0))).toThrow(/trailing/)
  })

  test('fixed bytes for a resumed session', () => {
    expect([...encodeBusMessage({ type: 'resumed', from: 'n', doc: '', to: 'm', sessionId: 's' }, 9)]).toEqual([2, 10, 1, 110, 0, 9, 1, 109, 1, 115])
    expect(() => decodeBusMessage(Uint8Array.of(2, 10, 1, 110, 0, 9, 1, 109))).toThrow()
  })

  test('fixed bytes for a presence removal', () => {
    expect([...encodeBusMessage({ type: 'presence', from: 'n', doc: 'd', userId: 'u', entry: null, reason: 'leave' }, 9)])
      .toEqual([2, 5, 1, 110, 1, 100, 9, 1, 117, 0, 5, 108, 101, 97, 118, 101])
  })

  test('bad presence bytes throw', () => {
    const removal = [2, 5, 1, 110, 1, 100, 9, 1, 117, 0]
    expect(() => decodeBusMessage(Uint8Array.of(...removal, 3, 98, 97, 100))).toThrow(/leave reason/)
    expect(() => decodeBusMessage(Uint8Array.of(2, 5, 1, 110, 1, 100, 9, 1, 117, 2, 0))).toThrow(/presence flag/)
    expect(() => decodeBusMessage(Uint8Array.of(2, 6, 1, 110, 1, 100, 9, 100))).toThrow(/count/)
    const withEntry = encodeBusMessage(messages[5] as BusMessage)
    expect(() => decodeBusMessage(withEntry.slice(0, withEntry.length - 3))).toThrow()
  })

  test('seeded random presence messages round-trip', () => {
    const seed = Date.now() % 100_000
    let state = seed
    const next = (): number => (state = (state * 1_103_515_245 + 12_345) % 2_147_483_648)
    const statuses = ['active', 'idle', 'away', 'reconnecting'] as const
    for (let i = 0; i < 200; i++) {
      const entries = Array.from({ length: next() % 4 }, (_, j) => ({
        userId: `u${next() % 1000}-${j}`, name: 'n'.repeat(next() % 5), color: `#${next() % 999}`, status: statuses[next() % 4]!, connections: next() % 9, joinedAt: next() * 1000, lastActiveAt: next()
      }))
      const message: BusMessage = { type: 'presence-snapshot', from: `n${next()}`, doc: `d${next()}`, entries }
      expect(decodeBusMessage(encodeBusMessage(message)), `seed ${seed}`).toEqual(message)
    }
  })

  test('bad bytes throw', () => {
    expect(() => decodeBusMessage(Uint8Array.of(99, 0))).toThrow(/version 99/)
    expect(() => decodeBusMessage(Uint8Array.of(2, 99, 0, 0, 0))).toThrow(/unknown/)
    expect(() => decodeBusMessage(Uint8Array.of(2, 0, 1, 110))).toThrow()
    expect(() => decodeBusMessage(Uint8Array.of(...encodeBusMessage(messages[0] as BusMessage), 0))).toThrow(/trailing/)
  })
})

describe('Redis bus', () => {
  testWith(redisUp)('refuses to start when Redis is unreachable', async () => {
    const bus = new RedisBus({ url: 'redis://127.0.0.1:1', logger: testLogger })
    await expect(bus.start({ message: () => {}, ready: () => {}, nodeDown: () => {} })).rejects.toThrow(/ECONNREFUSED/)
    await bus.close()
  })

  testWith(redisUp)('names keys with a hash tag per document', () => {
    const bus = new RedisBus({ url: REDIS_URL, prefix: 'p:', logger: testLogger })
    expect(bus.channel('team/{notes}')).toBe('p:{team%2F%7Bnotes%7D}:bus')
    expect(bus.nodeKey(bus.nodeId)).toBe(`p:node:{${bus.nodeId}}`)
  })

  testWith(redisUp)('goes down with Redis, comes back subscribed and says ready again', async () => {
    const redis = await privateRedis()
    const logger = pino({ level: 'silent' })
    const prefix = redisPrefix()
    const received: BusMessage[] = []
    let readyCount = 0
    const [a, b] = [new RedisBus({ url: redis.url, prefix, logger }), new RedisBus({ url: redis.url, prefix, logger })]
    onTestFinished(async () => { await Promise.all([a.close(), b.close()]) })
    await a.start({ message: () => {}, ready: () => {}, nodeDown: () => {} })
    await b.start({ message: m => received.push(m), ready: () => { readyCount++ }, nodeDown: () => {} })
    const doc = docName()
    await b.subscribe(doc)
    await redis.stop()
    await waitFor(() => !a.ready && !b.ready, 5_000, 'both down')
    a.publish({ type: 'update', from: a.nodeId, doc, update: Uint8Array.of(1) }) // dropped, not queued
    await redis.start()
    await waitFor(() => a.ready && b.ready && readyCount === 2, 10_000, 'both ready again')
    a.publish({ type: 'update', from: a.nodeId, doc, update: Uint8Array.of(2) })
    await waitFor(() => received.length > 0, 5_000, 'b hears a after the outage')
    expect(received.map(m => m.type === 'update' ? m.update[0] : -1)).toEqual([2])
  })

  testWith(redisUp)('a Redis that stops answering without closing counts as down', async () => {
    const redis = await privateRedis()
    const bus = new RedisBus({ url: redis.url, prefix: redisPrefix(), livenessMs: 500, logger: testLogger })
    onTestFinished(async () => {
      redis.resume()
      await bus.close()
    })
    let readyCount = 0
    await bus.start({ message: () => {}, ready: () => { readyCount++ }, nodeDown: () => {} })
    redis.pause()
    await waitFor(() => !bus.ready, 5_000, 'bus down')
    redis.resume()
    await waitFor(() => bus.ready && readyCount === 2, 10_000, 'bus ready again')
  })
})
