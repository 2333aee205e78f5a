import { describe, expect, test } from 'vitest'
import * as Y from 'yjs'
import { TokenBuckets, ConnectionCounter, withTimeout, type BucketState } from '../../server/transport/limits.js'
import { admitsFrame } from '../../server/transport/bounded-socket.js'
import { changesDocument, encodeIntegratedState } from '../../server/document/read-only.js'
import type { WebSocketLike } from '../../server/transport/socket.js'

describe('TokenBuckets', () => {
  /** A bucket, full at 0, as a connection's fields hold one. */
  function bucket (rule: TokenBuckets): BucketState {
    const state = { tokens: 0, tokensAt: 0 }
    rule.fill(state, 0)
    return state
  }

  test('absorbs a burst of `capacity`, then refuses until it refills at the rate', () => {
    const rule = new TokenBuckets(10, 5)
    const state = bucket(rule)
    for (let i = 0; i < 10; i++) expect(rule.take(state, 0)).toBe(true)
    expect(rule.take(state, 0)).toBe(false)
    expect(rule.take(state, 199)).toBe(false) // 0.995 tokens
    expect(rule.take(state, 200)).toBe(true) // one token after 200 ms at 5/s
    expect(rule.take(state, 200)).toBe(false)
  })

  test('a sender at the sustained rate is never refused; one above it eventually is', () => {
    const steadyRule = new TokenBuckets(5, 100)
    const steady = bucket(steadyRule)
    for (let t = 0; t < 10_000; t += 10) expect(steadyRule.take(steady, t)).toBe(true)
    const fastRule = new TokenBuckets(50, 100)
    const fast = bucket(fastRule)
    let refusedAt = -1
    for (let t = 0; t < 10_000 && refusedAt < 0; t += 5) if (!fastRule.take(fast, t)) refusedAt = t
    // 200/s against 100/s drains 50 tokens in about half a second
    expect(refusedAt).toBeGreaterThan(400)
    expect(refusedAt).toBeLessThan(600)
  })

  test('never holds more than its capacity, and ignores a clock going backwards', () => {
    const rule = new TokenBuckets(3, 1000)
    const state = bucket(rule)
    rule.take(state, 1_000_000)
    expect(rule.available(state)).toBeLessThanOrEqual(3)
    expect(rule.take(state, 10)).toBe(true)
    expect(rule.available(state)).toBeLessThanOrEqual(3)
  })

  test('keeps its state in whole numbers (thousandths of a token)', () => {
    const rule = new TokenBuckets(2, 7)
    const state = bucket(rule)
    rule.take(state, 0)
    rule.take(state, 0)
    rule.take(state, 33)
    expect(state.tokens).toBe(231)
    expect(Number.isInteger(state.tokens)).toBe(true)
  })
})

describe('ConnectionCounter', () => {
  test('refuses a key at max, frees a slot on release, forgets keys at zero', () => {
    const counter = new ConnectionCounter(2)
    const a1 = counter.acquire('a')
    const a2 = counter.acquire('a')
    expect(a1).not.toBeNull()
    expect(a2).not.toBeNull()
    expect(counter.acquire('a')).toBeNull()
    expect(counter.acquire('b')).not.toBeNull()
    a1!()
    a1!() // twice is harmless
    expect(counter.count('a')).toBe(1)
    expect(counter.acquire('a')).not.toBeNull()
    expect(counter.size).toBe(2)
  })

  test('max 0 means no limit', () => {
    const counter = new ConnectionCounter(0)
    const releases = Array.from({ length: 1000 }, () => counter.acquire('x'))
    expect(releases.every(r => r !== null)).toBe(true)
    for (const release of releases) release!()
    expect(counter.size).toBe(0)
  })
})

describe('withTimeout', () => {
  test('settles like the work when it is in time, rejects with onTimeout otherwise', async () => {
    await expect(withTimeout(Promise.resolve(1), 1000, () => new Error('late'))).resolves.toBe(1)
    await expect(withTimeout(Promise.reject(new Error('own')), 1000, () => new Error('late'))).rejects.toThrow('own')
    await expect(withTimeout(new Promise(() => {}), 10, () => new Error('late'))).rejects.toThrow('late')
    await expect(withTimeout(Promise.resolve(2), 0, () => new Error('late'))).resolves.toBe(2)
  })
})

/** A WebSocketLike whose buffer only grows: a peer that never reads. */
class StalledSocket implements WebSocketLike {
  readyState = 1
  bufferedAmount = 0
  terminated = 0
  send (data: Uint8Array): void { this.bufferedAmount += data.byteLength }
  close (): void { this.readyState = 2 }
  ping (): void {}
  terminate (): void { this.terminated++; this.readyState = 3 }
}

describe('admitsFrame (a socket\'s sends, bounded)', () => {
  /** Sends on `inner` as SyncSocket does: a frame only when admitted. */
  function bounded (inner: StalledSocket, limit: number, overflows: number[]): { send: (data: Uint8Array) => void } {
    return { send: data => { if (admitsFrame(inner, limit, bytes => overflows.push(bytes), undefined)) inner.send(data) } }
  }

  test('queues up to the limit, then terminates once instead of queueing more', () => {
    const inner = new StalledSocket()
    const overflows: number[] = []
    const socket = bounded(inner, 1000, overflows)
    for (let i = 0; i < 100; i++) socket.send(new Uint8Array(100))
    expect(inner.terminated).toBe(1)
    expect(overflows).toEqual([1100])
    expect(inner.bufferedAmount).toBe(1100) // the limit plus at most one frame
  })

  test('one frame larger than the limit still goes out on an empty buffer', () => {
    const inner = new StalledSocket()
    const overflows: number[] = []
    bounded(inner, 1000, overflows).send(new Uint8Array(5000))
    expect(inner.terminated).toBe(0)
    expect(overflows).toEqual([])
    expect(inner.bufferedAmount).toBe(5000)
  })

  test('a socket no longer open takes nothing and is not terminated again', () => {
    const inner = new StalledSocket()
    const overflows: number[] = []
    inner.close()
    bounded(inner, 1000, overflows).send(new Uint8Array(10))
    expect(inner.bufferedAmount).toBe(0)
    expect(inner.terminated).toBe(0)
    expect(overflows).toEqual([])
  })
})

describe('changesDocument (read-only sessions)', () => {
  test('is false for what the document already has, true for anything new', () => {
    const server = new Y.Doc()
    server.getText('t').insert(0, 'hello world')
    server.getText('t').delete(0, 6)
    const client = new Y.Doc()
    Y.applyUpdate(client, Y.encodeStateAsUpdate(server))
    expect(changesDocument(server, Y.encodeStateAsUpdate(client))).toBe(false)
    expect(changesDocument(server, Y.encodeStateAsUpdate(new Y.Doc()))).toBe(false)
    const edit = new Y.Doc()
    Y.applyUpdate(edit, Y.encodeStateAsUpdate(server))
    const updates: Uint8Array[] = []
    edit.on('update', (u: Uint8Array) => updates.push(u))
    edit.getText('t').delete(0, 1) // a deletion only
    edit.getText('t').insert(0, 'x') // an insertion
    expect(changesDocument(server, updates[0]!)).toBe(true)
    expect(changesDocument(server, updates[1]!)).toBe(true)
    Y.applyUpdate(server, updates[0]!)
    expect(changesDocument(server, updates[0]!)).toBe(false)
  })
})

describe('encodeIntegratedState', () => {
  test('leaves out what Yjs keeps pending, so no client gets content the server never integrated', () => {
    const author = new Y.Doc()
    const updates: Uint8Array[] = []
    author.on('update', (u: Uint8Array) => updates.push(u))
    author.getText('t').insert(0, 'first')
    author.getText('t').insert(5, ' second')
    const server = new Y.Doc()
    Y.applyUpdate(server, updates[1]!) // the second without the first: pending
    expect(server.getText('t').toString()).toBe('')
    const fresh = new Y.Doc()
    Y.applyUpdate(fresh, encodeIntegratedState(server))
    Y.applyUpdate(fresh, updates[0]!)
    expect(fresh.getText('t').toString()).toBe('first') // the pending part never reached it
    expect(server.store.pendingStructs).not.toBeNull() // and the server still waits for it
    Y.applyUpdate(server, updates[0]!)
    expect(server.getText('t').toString()).toBe('first second')
    expect(Y.encodeStateAsUpdate(server)).toEqual(encodeIntegratedState(server))
  })
})
