import { describe, expect, onTestFinished } from 'vitest'
import { createServer as createTcpServer, connect, type Socket } from 'node:net'
import type { AddressInfo } from 'node:net'
import { Redis } from 'ioredis'
import type WebSocket from 'ws'
import type { TandemServer } from '../../server/index.js'
import type { TandemClient } from '../../client/index.js'
import { closed, docName, rawClient, startServer, waitFor } from '../support/helpers.js'
import { writeTandem } from '../../shared/messages.js'
import { POSTGRES_URL, REDIS_URL, pgSchema, postgresUp, privateRedis, redisPrefix, redisUp, testWith } from '../support/services.js'
import { collectFrames, docUrl } from '../support/security-helpers.js'
import { dropSocket, leftEvents, record, tandemClient } from '../support/tandem-helpers.js'

const it = testWith(postgresUp && redisUp)

const GRACE_MS = 4_000
const LOCK_TTL_MS = 1_500

/** Two in-process instances sharing a Redis (its own key prefix) and a fresh PostgreSQL schema. */
async function pair (graceMs = GRACE_MS): Promise<{ a: TandemServer, b: TandemServer, prefix: string, redis: Redis }> {
  const schema = pgSchema()
  const prefix = redisPrefix()
  const options = {
    persistence: `${POSTGRES_URL}?schema=${schema}`,
    redis: REDIS_URL,
    redisPrefix: prefix,
    reconnectGraceMs: graceMs,
    lockTtlMs: LOCK_TTL_MS,
    heartbeatIntervalMs: 500,
    heartbeatTimeoutMs: 20_000
  }
  const a = await startServer(options)
  const b = await startServer(options)
  const redis = new Redis(REDIS_URL)
  onTestFinished(() => { redis.disconnect() })
  return { a, b, prefix, redis }
}

/** The session id and resume secret a client would resume with. */
function credentials (client: TandemClient): { session: string, resume: string } {
  const params = client.provider.params as Record<string, string>
  return { session: params.session as string, resume: params.resume as string }
}

/** Opens a raw Tandem connection and resolves with its welcome. */
async function welcome (url: string, doc: string, query: Record<string, string>): Promise<{ ws: WebSocket, sessionId: string, resumed: boolean, secret: string }> {
  const ws = rawClient(docUrl(url, doc, { tandem: '1', ...query }))
  const frames = collectFrames(ws)
  for (;;) {
    const frame = await frames.next()
    if (frame.type === 'tandem' && frame.message.type === 'welcome') {
      return { ws, sessionId: frame.message.sessionId, resumed: frame.message.resumed, secret: frame.message.secret }
    }
  }
}

/** The node named by the lock record of a resource in Redis. */
async function lockNode (redis: Redis, prefix: string, doc: string, resource: string): Promise<string | undefined> {
  const raw = await redis.hget(`${prefix}{${encodeURIComponent(doc)}}:holders`, resource)
  return raw === null ? undefined : (JSON.parse(raw) as { node: string }).node
}

/**
 * A TCP relay whose client side can be cut while the server side stays open: the server then
 * holds a half-open connection, as when a client's network goes away without a word.
 */
async function relay (target: string): Promise<{ url: string, cut: () => void }> {
  const { hostname, port } = new URL(target.replace(/^ws/, 'http'))
  const pairs: Array<[Socket, Socket]> = []
  const server = createTcpServer(client => {
    const upstream = connect(Number(port), hostname)
    client.pipe(upstream)
    upstream.pipe(client)
    client.on('error', () => {})
    upstream.on('error', () => {})
    pairs.push([client, upstream])
  })
  server.listen(0, '127.0.0.1')
  await new Promise(resolve => server.once('listening', resolve))
  onTestFinished(() => {
    for (const [client, upstream] of pairs) {
      client.destroy()
      upstream.destroy()
    }
    server.close()
  })
  return {
    url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}`,
    cut: () => {
      for (const [client, upstream] of pairs) {
        client.unpipe(upstream)
        upstream.unpipe(client)
        client.destroy()
      }
    }
  }
}

describe('a Tandem session resumes on any instance sharing the Redis', () => {
  it('dropped on A, resumed on B: same session, same lock and token never released, no `left` anywhere, the edit made while dropped reaches everyone, A stops renewing', async () => {
    const { a, b, prefix, redis } = await pair()
    const name = docName()
    const watchA = tandemClient(a.url, name, { user: { id: 'wa' } })
    const watchB = tandemClient(b.url, name, { user: { id: 'wb' } })
    const [seenA, seenB] = [record(watchA), record(watchB)]
    const ada = tandemClient(a.url, name, { user: { id: 'ada' } })
    await Promise.all([watchA.synced(), watchB.synced(), ada.synced()])
    const lock = await ada.locks.acquire('block:1', { ttlMs: LOCK_TTL_MS })
    const sessionId = ada.sessionId as string
    // a client on B waits for the lock: it must not get it while Ada's session lives on
    const waiter = tandemClient(b.url, name, { user: { id: 'wes' } })
    await waiter.synced()
    let waited: number | undefined
    const waiting = waiter.locks.acquire('block:1', { waitMs: 15_000 }).then(granted => { waited = granted.token })
    await waitFor(() => [watchA, watchB].every(w => w.presence.list().some(e => e.userId === 'ada')), 5_000, 'ada seen everywhere')
    expect(await lockNode(redis, prefix, name, 'block:1')).toBe(await nodeOf(a))
    const joinedAt = watchA.presence.list().find(e => e.userId === 'ada')?.joinedAt

    // the client's next socket goes to B; the drop is a network drop, and Ada edits meanwhile
    ada.provider.serverUrl = b.url
    dropSocket(ada)
    ada.doc.getText('t').insert(0, 'typed while dropped')
    await waitFor(() => ada.status === 'connected' && b.sessions.size === 3, 10_000, 'ada reconnected to B')
    expect(ada.sessionId).toBe(sessionId)
    await waitFor(() => [watchA, watchB, waiter].every(c => c.doc.getText('t').toString() === 'typed while dropped'), 10_000, 'the edit reached everyone')
    expect(ada.locks.holder('block:1')?.token).toBe(lock.token)
    expect(ada.locks.holder('block:1')?.sessionId).toBe(sessionId)
    await waitFor(async () => await lockNode(redis, prefix, name, 'block:1') === await nodeOf(b), 5_000, 'the lock is B\'s now')
    await waitFor(() => a.collaboration.locksHeld === 0 && a.collaboration.held === 0, 5_000, 'A let go')
    expect(b.collaboration.locksHeld).toBe(1)

    // several leases later the lock is still Ada's, renewed by B, and the waiter still waits
    await new Promise(resolve => setTimeout(resolve, LOCK_TTL_MS * 2))
    expect(waited).toBeUndefined()
    const listed = await b.collaboration.locks.list(name)
    expect(listed.map(l => [l.resource, l.token, l.sessionId])).toEqual([['block:1', lock.token, sessionId]])
    for (const seen of [seenA, seenB]) {
      expect(leftEvents(seen)).toEqual([])
      expect(seen.locks.filter(e => e.type === 'released')).toEqual([])
    }
    // one entry, where it was in the list: it joined when it first did
    expect(watchA.presence.list().find(e => e.userId === 'ada')).toMatchObject({ connections: 1, status: 'active', joinedAt })
    expect(watchB.presence.list().find(e => e.userId === 'ada')).toMatchObject({ connections: 1, status: 'active', joinedAt })
    expect((await b.collaboration.presence(name)).find(e => e.userId === 'ada')?.joinedAt).toBe(joinedAt)

    // and back to A: the instance that let go takes it over again
    ada.provider.serverUrl = a.url
    dropSocket(ada)
    await waitFor(() => ada.status === 'connected' && a.sessions.size === 2, 10_000, 'ada back on A')
    expect(ada.sessionId).toBe(sessionId)
    await waitFor(async () => await lockNode(redis, prefix, name, 'block:1') === await nodeOf(a), 5_000, 'the lock is A\'s again')
    await waitFor(() => b.collaboration.locksHeld === 0 && b.collaboration.held === 0 && a.collaboration.locksHeld === 1, 5_000, 'B let go')
    expect(ada.locks.holder('block:1')?.token).toBe(lock.token)
    expect(waited).toBeUndefined()
    for (const seen of [seenA, seenB]) expect(leftEvents(seen)).toEqual([])

    // released, the lock goes to the waiter with a newer token
    await lock.release()
    await waiting
    expect(waited).toBeGreaterThan(lock.token)
  })

  it('a half-open socket on A is dropped without a trace when the client resumes on B', async () => {
    const { a, b } = await pair()
    const name = docName()
    const watchA = tandemClient(a.url, name, { user: { id: 'wa' } })
    const watchB = tandemClient(b.url, name, { user: { id: 'wb' } })
    const [seenA, seenB] = [record(watchA), record(watchB)]
    const via = await relay(a.url)
    const ada = tandemClient(via.url, name, { user: { id: 'ada' } })
    await Promise.all([watchA.synced(), watchB.synced(), ada.synced()])
    const lock = await ada.locks.acquire('block:1')
    const sessionId = ada.sessionId as string
    ada.presence.setStatus('away')
    await waitFor(() => [watchA, watchB].every(w => w.presence.list().some(e => e.userId === 'ada' && e.status === 'away')), 5_000, 'ada seen away everywhere')
    expect(a.sessions.size).toBe(2)

    ada.provider.serverUrl = b.url
    via.cut()
    await waitFor(() => ada.status === 'connected' && b.sessions.size === 2, 10_000, 'ada reconnected to B')
    expect(ada.sessionId).toBe(sessionId)
    // A still had the socket open: it drops it and lets the session go
    await waitFor(() => a.sessions.size === 1 && a.collaboration.held === 0 && a.collaboration.locksHeld === 0, 5_000, 'A let go of the half-open socket')
    expect(ada.locks.holder('block:1')?.token).toBe(lock.token)
    ada.doc.getText('t').insert(0, 'after')
    await waitFor(() => watchA.doc.getText('t').toString() === 'after', 5_000, 'edits flow from B')
    // the status the user chose comes along
    await waitFor(() => [watchA, watchB].every(w => w.presence.list().find(e => e.userId === 'ada')?.status === 'away'), 5_000, 'still away')
    for (const seen of [seenA, seenB]) {
      expect(leftEvents(seen)).toEqual([])
      expect(seen.locks.filter(e => e.type === 'released')).toEqual([])
    }
  })

  it('the `resumed` message lost: A lets go when its grace runs out and finds the session moved on, releasing nothing', async () => {
    const { a, b } = await pair(1_500)
    // as if the bus were down when B told A
    const cluster = (b as unknown as { cluster: { publishResumed: (sessionId: string, to: string) => void } }).cluster
    cluster.publishResumed = () => {}
    const name = docName()
    const watchA = tandemClient(a.url, name, { user: { id: 'wa' } })
    const seen = record(watchA)
    const ada = tandemClient(a.url, name, { user: { id: 'ada' } })
    await Promise.all([watchA.synced(), ada.synced()])
    const lock = await ada.locks.acquire('block:1', { ttlMs: LOCK_TTL_MS })
    const { session, resume } = credentials(ada)
    dropSocket(ada)
    ada.destroy()
    await waitFor(() => a.collaboration.held === 1, 5_000, 'held on A')
    const resumed = await welcome(b.url, name, { user: 'ada', session, resume })
    expect(resumed.resumed).toBe(true)
    expect(a.collaboration.held).toBe(1)
    await waitFor(() => a.collaboration.held === 0 && a.collaboration.locksHeld === 0, 5_000, 'A let go at the end of its grace')
    await new Promise(resolve => setTimeout(resolve, LOCK_TTL_MS))
    expect((await a.collaboration.locks.list(name)).map(l => [l.token, l.sessionId])).toEqual([[lock.token, session]])
    expect(leftEvents(seen)).toEqual([])
    expect(seen.locks.filter(e => e.type === 'released')).toEqual([])
    resumed.ws.terminate()
  })

  it('while Redis is away a session resumes on its own instance only; its new secret reaches Redis once it is back', async () => {
    const redis = await privateRedis()
    const options = { redis: redis.url, redisPrefix: redisPrefix(), reconnectGraceMs: 10_000, heartbeatIntervalMs: 500, heartbeatTimeoutMs: 20_000 }
    const a = await startServer(options)
    const b = await startServer(options)
    const name = docName()
    const ada = tandemClient(a.url, name, { user: { id: 'ada' } })
    await ada.synced()
    const sessionId = ada.sessionId
    await redis.stop()
    // elsewhere: fresh (B cannot look it up)
    const elsewhere = await welcome(b.url, name, { user: 'ada', ...credentials(ada) })
    expect(elsewhere.resumed).toBe(false)
    elsewhere.ws.terminate()
    // on its own instance: resumed
    const statuses: string[] = []
    ada.on('status', status => statuses.push(status))
    dropSocket(ada)
    await waitFor(() => statuses.includes('disconnected') && ada.status === 'connected' && a.sessions.size === 1, 10_000, 'ada back on A')
    expect(ada.sessionId).toBe(sessionId)

    // Redis returns empty: the secret of the resume above is stored again, so B resumes it
    await redis.start()
    const check = new Redis(redis.url)
    onTestFinished(() => { check.disconnect() })
    const { session, resume } = credentials(ada)
    const key = `${options.redisPrefix}{${encodeURIComponent(name)}}:resume:${session}`
    await waitFor(async () => await check.hget(key, 'node') !== null, 15_000, 'the record is back in Redis')
    ada.provider.serverUrl = b.url
    statuses.length = 0
    dropSocket(ada)
    await waitFor(() => statuses.includes('disconnected') && ada.status === 'connected' && b.sessions.size === 1, 10_000, 'ada on B')
    expect([ada.sessionId, credentials(ada).resume === resume]).toEqual([sessionId, false])
  })

  it('starts a fresh session for a wrong secret, another user, another document, a used secret, and after the grace', async () => {
    const { a, b } = await pair(1_500)
    const name = docName()
    const ada = tandemClient(a.url, name, { user: { id: 'ada' } })
    await ada.synced()
    const { session, resume } = credentials(ada)
    dropSocket(ada)
    ada.destroy()
    await waitFor(() => a.collaboration.held === 1, 5_000, 'held on A')

    const wrong = await welcome(b.url, name, { user: 'ada', session, resume: `${resume.slice(0, -1)}${resume.endsWith('A') ? 'B' : 'A'}` })
    expect([wrong.resumed, wrong.sessionId === session]).toEqual([false, false])
    const eve = await welcome(b.url, name, { user: 'eve', session, resume })
    expect([eve.resumed, eve.sessionId === session]).toEqual([false, false])
    const otherDoc = await welcome(b.url, docName(), { user: 'ada', session, resume })
    expect([otherDoc.resumed, otherDoc.sessionId === session]).toEqual([false, false])
    // the refused attempts leave (a drop would hold their fresh sessions on B for the grace too,
    // and the count of held sessions below would not be the resumed one alone)
    for (const attempt of [wrong, eve, otherDoc]) attempt.ws.send(writeTandem({ type: 'leave' }))
    await Promise.all([wrong, eve, otherDoc].map(async attempt => await closed(attempt.ws)))

    // the right one resumes; the same secret again does not (the welcome carries a new one)
    const resumed = await welcome(b.url, name, { user: 'ada', session, resume })
    expect([resumed.resumed, resumed.sessionId]).toEqual([true, session])
    expect(resumed.secret).not.toBe(resume)
    resumed.ws.terminate()
    await waitFor(() => b.collaboration.held === 1, 5_000, 'held on B')
    const replayed = await welcome(a.url, name, { user: 'ada', session, resume })
    expect(replayed.resumed).toBe(false)
    replayed.ws.terminate()

    // after the grace the new secret is void too
    await waitFor(() => b.collaboration.held === 0, 5_000, 'grace over on B')
    const late = await welcome(a.url, name, { user: 'ada', session, resume: resumed.secret })
    expect(late.resumed).toBe(false)
    late.ws.terminate()
  })

  it('a voided secret stays void on every instance: after a leave, and after a revocation of the held session', async () => {
    const { a, b } = await pair()
    const name = docName()
    const left = tandemClient(a.url, name, { user: { id: 'ada' } })
    await left.synced()
    const leftCredentials = credentials(left)
    await left.leave()
    const afterLeave = await welcome(b.url, name, { user: 'ada', ...leftCredentials })
    expect(afterLeave.resumed).toBe(false)
    afterLeave.ws.terminate()

    const revoked = tandemClient(a.url, name, { user: { id: 'bob' } })
    const kept = tandemClient(a.url, name, { user: { id: 'cara' } })
    await Promise.all([revoked.synced(), kept.synced()])
    const [revokedCredentials, keptCredentials] = [credentials(revoked), credentials(kept)]
    for (const client of [revoked, kept]) {
      dropSocket(client)
      client.destroy()
    }
    await waitFor(() => a.collaboration.held === 2, 5_000, 'both held on A')
    // revoked through B: A ends the held session, and its secret is void for B too
    await b.revoke({ kind: 'session', value: revokedCredentials.session })
    await waitFor(() => a.collaboration.held === 1, 5_000, 'A ended the revoked session')
    const afterRevoke = await welcome(b.url, name, { user: 'bob', ...revokedCredentials })
    expect(afterRevoke.resumed).toBe(false)
    afterRevoke.ws.terminate()
    // the one not revoked still resumes on B
    const control = await welcome(b.url, name, { user: 'cara', ...keptCredentials })
    expect([control.resumed, control.sessionId]).toEqual([true, keptCredentials.session])
    control.ws.terminate()
  })
})

/** The node id of an instance (its locks name it in Redis). */
async function nodeOf (server: TandemServer): Promise<string> {
  return (server as unknown as { cluster: { nodeId: string } }).cluster.nodeId
}
