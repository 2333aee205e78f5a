import { describe, expect, test } from 'vitest'
import WebSocket from 'ws'
import { startServer, stockClient, synced, waitFor, docName, rawClient, closed, tempDir } from '../support/helpers.js'
import { tandemClient, record, leftEvents, dropSocket } from '../support/tandem-helpers.js'
import { signToken, upgrade, docUrl, collectFrames } from '../support/security-helpers.js'
import { readFrame, writeTandem } from '../../shared/messages.js'
import { isTandemError } from '../../client/index.js'
import type { TandemServer } from '../../server/server.js'
import type { HookIdentity } from '../../server/auth/auth.js'
import { parseCli } from '../../server/config/cli-options.js'
import { resolveOptions } from '../../server/config/config.js'

const SECRET = 'live-sessions-secret'

/** A token of `sub` living `seconds` (whole seconds: a "2 s" token lives 1 to 2 s). */
function token (claims: Record<string, unknown>, seconds = 3600): Promise<string> {
  return signToken(SECRET, claims, seconds)
}

async function post (server: TandemServer, path: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number, body: Record<string, unknown> }> {
  const response = await fetch(`${server.url.replace(/^ws/, 'http')}${path}`, {
    method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body)
  })
  return { status: response.status, body: await response.json() as Record<string, unknown> }
}

/** A raw Tandem connection: its welcome, and a promise of its close. */
async function rawSession (url: string): Promise<{ ws: WebSocket, welcome: { sessionId: string, secret: string, resumed: boolean }, closed: Promise<{ code: number, reason: string }> }> {
  const ws = rawClient(url)
  const frames = collectFrames(ws)
  const end = closed(ws, 15_000)
  for (;;) {
    const frame = await frames.next()
    if (frame.type === 'tandem' && frame.message.type === 'welcome') return { ws, welcome: frame.message, closed: end }
  }
}

/** A new raw connection that asks to resume `welcome`'s session: resolves with its welcome. */
async function tryResume (base: string, name: string, query: Record<string, string>, welcome: { sessionId: string, secret: string }): Promise<{ resumed: boolean, sessionId: string }> {
  const url = docUrl(base, name, { ...query, tandem: '1', session: welcome.sessionId, resume: welcome.secret })
  const { welcome: again, ws } = await rawSession(url)
  ws.close()
  return { resumed: again.resumed, sessionId: again.sessionId }
}

describe('token expiry on open connections', () => {
  test('a stock client is closed with 4401 at exp; presence shows it left, expired', async () => {
    const server = await startServer({ authSecret: SECRET })
    const name = docName()
    const watcher = tandemClient(server.url, name, { token: await token({ sub: 'watcher' }) })
    const events = record(watcher)
    await watcher.synced()
    const stock = stockClient(server.url, name, { params: { token: await token({ sub: 'stock' }, 2) } })
    await synced(stock.provider)
    stock.text.insert(0, 'before exp')
    const closedWith = new Promise<{ code: number, reason: string }>(resolve => stock.provider.on('connection-close', (event: CloseEvent | null) => { if (event !== null) resolve({ code: event.code, reason: event.reason }) }))
    expect(await closedWith).toEqual({ code: 4401, reason: 'TANDEM_ERR_TOKEN_EXPIRED' })
    await waitFor(() => leftEvents(events).some(e => e.user.userId === 'stock' && e.reason === 'expired'), 5_000, 'left: expired')
    expect(watcher.doc.getText('t').toString()).toBe('before exp')
    // an expired token is refused at the door
    expect((await upgrade(docUrl(server.url, name, { token: await token({ sub: 'stock' }, -1) }))).status).toBe(401)
  })

  test('the authenticate hook\'s expiresAt is enforced the same way; a past or malformed one is refused', async () => {
    let expiresAt: unknown = Date.now() + 1_000
    const server = await startServer({ authenticate: () => ({ userId: 'hooked', expiresAt: expiresAt as number }) })
    const name = docName()
    const hooked = await rawSession(docUrl(server.url, name, { tandem: '1', token: 'x' }))
    expect(await hooked.closed).toEqual({ code: 4401, reason: 'TANDEM_ERR_TOKEN_EXPIRED' })
    expiresAt = Date.now() - 1
    expect((await upgrade(docUrl(server.url, name, { token: 'x' }))).status).toBe(401)
    expiresAt = '2030-01-01'
    expect((await upgrade(docUrl(server.url, name, { token: 'x' }))).status).toBe(500)
  })

  test('--session-idle-timeout and --revocation-ttl are flags with variables', () => {
    expect(parseCli(['--session-idle-timeout', '60000'], { TANDEM_REVOCATION_TTL: '3600000' })).toMatchObject({ sessionIdleTimeoutMs: 60_000, revocationTtlMs: 3_600_000 })
    expect(resolveOptions({}).sessionIdleTimeoutMs).toBe(0)
    expect(() => resolveOptions({ revocationTtlMs: 10 })).toThrow(/revocationTtlMs/)
  })

  test('a Tandem client without a token function loses its lock at exp', async () => {
    const server = await startServer({ authSecret: SECRET })
    const name = docName()
    const watcher = tandemClient(server.url, name, { token: await token({ sub: 'watcher' }) })
    const events = record(watcher)
    const holder = tandemClient(server.url, name, { token: await token({ sub: 'holder' }, 2) })
    const errors = record(holder).errors
    await Promise.all([watcher.synced(), holder.synced()])
    await holder.locks.acquire('para:1')
    await waitFor(() => watcher.locks.holder('para:1')?.userId === 'holder', 5_000, 'lock seen')
    await waitFor(() => watcher.locks.holder('para:1') === undefined, 5_000, 'lock released at exp')
    expect(events.locks.some(e => e.type === 'released' && e.reason === 'expired')).toBe(true)
    await waitFor(() => errors.some(e => isTandemError(e, 'TANDEM_ERR_TOKEN_EXPIRED')), 5_000, 'expiry reported')
    await waitFor(() => leftEvents(events).some(e => e.user.userId === 'holder' && e.reason === 'expired'), 5_000, 'left: expired')
  })

  test('a Tandem client with a token function keeps its session, presence and locks across expiries, losing no edit', async () => {
    const server = await startServer({ authSecret: SECRET })
    const name = docName()
    let calls = 0
    const ada = tandemClient(server.url, name, { token: async () => { calls++; return await token({ sub: 'ada', name: `Ada ${calls}` }, 2) } })
    const adaEvents = record(ada)
    const watcher = tandemClient(server.url, name, { token: await token({ sub: 'watcher' }) })
    const events = record(watcher)
    await Promise.all([ada.synced(), watcher.synced()])
    const sessionId = ada.sessionId
    const lock = await ada.locks.acquire('para:1')
    // edits in flight across at least three expiries of 1 to 2 s each
    let typed = 0
    const typing = setInterval(() => { ada.doc.getText('t').insert(typed, 'x'); typed++ }, 20)
    await waitFor(() => calls >= 5, 15_000, 'four refreshes')
    clearInterval(typing)
    await ada.flushed()
    await waitFor(() => watcher.doc.getText('t').length === typed, 5_000, 'every edit arrived')
    expect(ada.sessionId).toBe(sessionId)
    expect(ada.status).toBe('connected')
    expect(lock.released).toBe(false)
    expect(watcher.locks.holder('para:1')?.sessionId).toBe(sessionId)
    expect(leftEvents(events).filter(e => e.user.userId === 'ada')).toEqual([])
    expect(adaEvents.errors).toEqual([])
    // the new name of each token shows in presence
    await waitFor(() => watcher.presence.list().find(u => u.userId === 'ada')?.name === `Ada ${calls}`, 5_000, 'renamed')
    expect(events.presence.some(e => e.type === 'updated' && e.user.name.startsWith('Ada '))).toBe(true)
  })

  test('a dropped client calls its token function again and resumes its session with the fresh token', async () => {
    const server = await startServer({ authSecret: SECRET, reconnectGraceMs: 10_000 })
    const name = docName()
    let calls = 0
    const ada = tandemClient(server.url, name, { token: async () => { calls++; return await token({ sub: 'ada' }) } })
    await ada.synced()
    const sessionId = ada.sessionId
    expect(calls).toBe(1)
    dropSocket(ada)
    await waitFor(() => calls === 2 && ada.status === 'connected', 10_000, 'reconnected with a fresh token')
    await waitFor(() => ada.sessionId === sessionId && server.sessions.size === 1, 5_000, 'resumed')
    expect(server.collaboration.held).toBe(0)
  })

  test('a token function that throws keeps the session until exp, reporting errors', async () => {
    const server = await startServer({ authSecret: SECRET })
    const name = docName()
    let calls = 0
    const ada = tandemClient(server.url, name, {
      token: async () => {
        if (calls++ > 0) throw new Error('identity provider down')
        // 3 s: the retries (with backoff) between the warning and exp must fit on a loaded machine
        return await token({ sub: 'ada' }, 3)
      }
    })
    const errors = record(ada).errors
    await ada.synced()
    await waitFor(() => errors.some(e => isTandemError(e, 'TANDEM_ERR_TOKEN_REFRESH_FAILED')), 5_000, 'refresh failure reported')
    expect(ada.status).toBe('connected')
    await waitFor(() => errors.some(e => isTandemError(e, 'TANDEM_ERR_TOKEN_EXPIRED')), 8_000, 'expired in the end')
    expect(calls).toBeGreaterThan(2)
  })

  test('a refresh with another sub ends the session with 4401', async () => {
    const server = await startServer({ authSecret: SECRET })
    const name = docName()
    let calls = 0
    const ada = tandemClient(server.url, name, { token: async () => await token({ sub: calls++ === 0 ? 'ada' : 'eve' }, 2) })
    const errors = record(ada).errors
    await ada.synced()
    await waitFor(() => errors.some(e => isTandemError(e, 'TANDEM_ERR_UNAUTHENTICATED')), 5_000, 'closed for another sub')
    expect(server.stats.summary().endsByReason.revoked).toBe(1)
  })

  test('a refresh down to read refuses edits from then on; one without the document ends with 4403', async () => {
    const server = await startServer({ authSecret: SECRET })
    const name = docName()
    let calls = 0
    // the read-only token is handed out only once the write is stored: a slow machine must not
    // see the downgrade overtake the edit made with write access
    let writeStored!: () => void
    const stored = new Promise<void>(resolve => { writeStored = resolve })
    const ada = tandemClient(server.url, name, {
      token: async () => {
        if (calls++ === 0) return await token({ sub: 'ada', access: 'write' }, 4)
        await stored
        return await token({ sub: 'ada', access: 'read' }, 4)
      }
    })
    const adaErrors = record(ada).errors
    const watcher = tandemClient(server.url, name, { token: await token({ sub: 'watcher' }) })
    await Promise.all([ada.synced(), watcher.synced()])
    ada.doc.getText('t').insert(0, 'w')
    await ada.flushed()
    writeStored()
    await waitFor(() => ada.access === 'read', 10_000, 'downgraded')
    ada.doc.getText('t').insert(0, 'r')
    await waitFor(() => adaErrors.some(e => isTandemError(e, 'TANDEM_ERR_READ_ONLY')), 5_000, 'edit refused')
    expect(watcher.doc.getText('t').toString()).toBe('w')

    const other = docName()
    let bobCalls = 0
    const bob = tandemClient(server.url, other, { token: async () => await token({ sub: 'bob', docs: bobCalls++ === 0 ? [other] : ['elsewhere'] }, 2) })
    const bobErrors = record(bob).errors
    await bob.synced()
    await waitFor(() => bobErrors.some(e => isTandemError(e, 'TANDEM_ERR_FORBIDDEN')), 5_000, 'closed with 4403')
  })
})

describe('revocation', () => {
  test('by user, session and jti: sessions end with 4401 and the tokens are refused, also after a restart', async () => {
    const dataDir = tempDir()
    const options = { authSecret: SECRET, persistence: 'sqlite', dataDir, adminToken: 'admin' }
    let server = await startServer(options)
    const name = docName()
    const admin = { authorization: 'Bearer admin' }
    const malloryToken = await token({ sub: 'mallory' })
    const m1 = await rawSession(docUrl(server.url, name, { tandem: '1', token: malloryToken }))
    const m2 = stockClient(server.url, name, { params: { token: malloryToken } })
    await synced(m2.provider)
    const bobToken = await token({ sub: 'bob', jti: 'bob-1' })
    const bob = await rawSession(docUrl(server.url, name, { tandem: '1', token: bobToken }))
    const carolToken = await token({ sub: 'carol' })
    const carol = await rawSession(docUrl(server.url, name, { tandem: '1', token: carolToken }))

    expect(await post(server, '/api/revocations', { userId: 'mallory' })).toMatchObject({ status: 401 })
    const byUser = await post(server, '/api/revocations', { userId: 'mallory' }, admin)
    expect(byUser).toMatchObject({ status: 200, body: { sessions: 2, revocation: { kind: 'user', value: 'mallory' } } })
    expect(await m1.closed).toEqual({ code: 4401, reason: 'TANDEM_ERR_REVOKED' })
    expect((await upgrade(docUrl(server.url, name, { token: malloryToken }))).status).toBe(401)

    expect(await post(server, '/api/revocations', { jti: 'bob-1' }, admin)).toMatchObject({ status: 200, body: { sessions: 1 } })
    expect(await bob.closed).toEqual({ code: 4401, reason: 'TANDEM_ERR_REVOKED' })
    expect(await post(server, '/api/revocations', { sessionId: carol.welcome.sessionId }, admin)).toMatchObject({ status: 200, body: { sessions: 1 } })
    expect(await carol.closed).toEqual({ code: 4401, reason: 'TANDEM_ERR_REVOKED' })
    // a new session of carol is fine: only that session was revoked
    expect((await upgrade(docUrl(server.url, name, { token: carolToken }))).status).toBe('open')
    expect(server.stats.summary().endsByReason.revoked).toBe(4)

    await server.close()
    server = await startServer(options)
    expect((await upgrade(docUrl(server.url, name, { token: malloryToken }))).status).toBe(401)
    expect((await upgrade(docUrl(server.url, name, { token: bobToken }))).status).toBe(401)
    expect((await upgrade(docUrl(server.url, name, { token: await token({ sub: 'bob', jti: 'bob-2' }) }))).status).toBe('open')
  })

  test('a revoked token is refused at an in-band refresh', async () => {
    const server = await startServer({ authSecret: SECRET })
    const name = docName()
    const first = await token({ sub: 'ada', jti: 'a1' }, 2)
    const second = await token({ sub: 'ada', jti: 'a2' }, 60)
    await server.revoke({ kind: 'jti', value: 'a2' })
    let calls = 0
    const ada = tandemClient(server.url, name, { token: () => calls++ === 0 ? first : second })
    const errors = record(ada).errors
    await ada.synced()
    await waitFor(() => errors.some(e => isTandemError(e, 'TANDEM_ERR_REVOKED')), 5_000, 'refresh refused')
    expect(calls).toBe(2)
  })

  test('bad requests get 400 or 413 with one readable line', async () => {
    const server = await startServer({ authSecret: SECRET })
    for (const body of ['not json', '[]', '{}', '{"userId": ""}', '{"userId": 5}', '{"userId": "a", "jti": "b"}', '{"nobody": "x"}']) {
      const answer = await post(server, '/api/revocations', body)
      expect(answer.status, body).toBe(400)
      expect(answer.body.error).toMatch(/^[^\n]+$/)
    }
    expect((await post(server, '/api/revocations', { userId: 'x'.repeat(600) })).status).toBe(400)
    expect((await post(server, '/api/revocations', { userId: 'x'.repeat(10_000) })).status).toBe(413)
  })
})

describe('recheck, idle timeout, and no resume after an end', () => {
  test('recheck applies what the authenticate hook answers now', async () => {
    const grants = new Map<string, HookIdentity | null>([['ada', { userId: 'ada' }], ['bob', { userId: 'bob' }], ['carol', { userId: 'carol' }]])
    const server = await startServer({ authenticate: ({ token }) => grants.get(token ?? '') ?? null })
    const name = docName()
    const ada = tandemClient(server.url, name, { token: 'ada' })
    const bob = await rawSession(docUrl(server.url, name, { tandem: '1', token: 'bob' }))
    const carol = await rawSession(docUrl(server.url, name, { tandem: '1', token: 'carol' }))
    await ada.synced()
    grants.set('ada', { userId: 'ada', access: 'read', name: 'Ada (viewer)' })
    grants.set('bob', null)
    grants.set('carol', { userId: 'carol', docs: ['elsewhere'] })
    expect(await post(server, `/api/documents/${encodeURIComponent(name)}/recheck`, {})).toEqual({ status: 200, body: { rechecked: 3 } })
    expect(await bob.closed).toEqual({ code: 4401, reason: 'TANDEM_ERR_UNAUTHENTICATED' })
    expect(await carol.closed).toEqual({ code: 4403, reason: 'TANDEM_ERR_FORBIDDEN' })
    await waitFor(() => ada.access === 'read', 5_000, 'ada downgraded')
    await waitFor(() => ada.presence.list().find(u => u.userId === 'ada')?.name === 'Ada (viewer)', 5_000, 'renamed')
  })

  test('a recheck gives the hook the upgrade request again: its headers (not the handshake\'s), its query, its token', async () => {
    const seen: Array<{ cookie: unknown, key: unknown, q: string | null, token: string | undefined }> = []
    const server = await startServer({
      authenticate: ({ headers, query, token }) => {
        seen.push({ cookie: headers.cookie, key: headers['sec-websocket-key'], q: query.get('q'), token })
        return { userId: 'ada' }
      }
    })
    const name = docName()
    const ws = rawClient(docUrl(server.url, name, { q: 'a b+c', token: 't1' }), { headers: { cookie: 'sid=1' } })
    await new Promise(resolve => ws.once('open', resolve))
    await waitFor(() => server.sessions.size === 1)
    expect(await post(server, `/api/documents/${encodeURIComponent(name)}/recheck`, {})).toEqual({ status: 200, body: { rechecked: 1 } })
    expect(seen).toHaveLength(2)
    expect(seen[0]).toMatchObject({ cookie: 'sid=1', q: 'a b+c', token: 't1' })
    expect(seen[1]).toEqual({ cookie: 'sid=1', key: undefined, q: 'a b+c', token: 't1' })
    ws.close()
  })

  test('an inactive session ends with 4408 (idle); an active one stays', async () => {
    const server = await startServer({ sessionIdleTimeoutMs: 400 })
    const name = docName()
    const quiet = await rawSession(docUrl(server.url, name, { tandem: '1', user: 'quiet' }))
    const busy = tandemClient(server.url, name, { user: { id: 'busy' } })
    await busy.synced()
    let n = 0
    const typing = setInterval(() => busy.doc.getText('t').insert(0, String(n++ % 10)), 50)
    try {
      expect(await quiet.closed).toEqual({ code: 4408, reason: 'TANDEM_ERR_IDLE_TIMEOUT' })
      const busyEvents = record(busy)
      await waitFor(() => n > 30, 5_000, 'typing on')
      expect(busy.status).toBe('connected')
      expect(busyEvents.errors).toEqual([])
    } finally {
      clearInterval(typing)
    }
    expect(server.stats.summary().endsByReason.idle).toBe(1)
  })

  test('no resume after a kick, an expiry, a revocation or an idle end; a drop resumes', async () => {
    const server = await startServer({ authSecret: SECRET, sessionIdleTimeoutMs: 1_500, reconnectGraceMs: 5_000 })
    const name = docName()
    const http = server.url.replace(/^ws/, 'http')
    const long = await token({ sub: 'ada' })
    const query = { token: long }

    // a drop: resumes
    const dropped = await rawSession(docUrl(server.url, name, { tandem: '1', ...query }))
    dropped.ws.terminate()
    await waitFor(() => server.collaboration.held === 1, 5_000, 'held')
    expect(await tryResume(server.url, name, query, dropped.welcome)).toEqual({ resumed: true, sessionId: dropped.welcome.sessionId })

    const ends: Array<[string, () => Promise<unknown>, number]> = [
      ['kicked', async () => await fetch(`${http}/api/documents/${encodeURIComponent(name)}/users/ada`, { method: 'DELETE' }), 4403],
      ['revoked', async () => await server.revoke({ kind: 'session', value: (await current()).welcome.sessionId }), 4401],
      ['idle', async () => {}, 4408]
    ]
    let session: Awaited<ReturnType<typeof rawSession>> | undefined
    const current = async (): Promise<NonNullable<typeof session>> => session as NonNullable<typeof session>
    for (const [reason, end, code] of ends) {
      session = await rawSession(docUrl(server.url, name, { tandem: '1', ...query }))
      await end()
      expect((await session.closed).code, reason).toBe(code)
      const outcome = await tryResume(server.url, name, query, session.welcome)
      expect(outcome, reason).toMatchObject({ resumed: false })
      expect((outcome as { sessionId: string }).sessionId, reason).not.toBe(session.welcome.sessionId)
    }

    // an expiry: the token lives 1 to 2 s (a "1 s" token lives 0 to 1 s: under load the upgrade
    // could come after its exp, refused with 401), on a server without the idle end (1.5 s, which
    // could come first); resuming with a fresh token starts a new session
    const patient = await startServer({ authSecret: SECRET, reconnectGraceMs: 5_000 })
    const expiring = await rawSession(docUrl(patient.url, name, { tandem: '1', token: await token({ sub: 'ada' }, 2) }))
    expect((await expiring.closed).code).toBe(4401)
    const outcome = await tryResume(patient.url, name, query, expiring.welcome)
    expect(outcome).toMatchObject({ resumed: false })
  })

  test('a refresh message from a stock-protocol client without tandem=1 is malformed; an oversized token too', async () => {
    const server = await startServer()
    const name = docName()
    const plain = rawClient(docUrl(server.url, name, { user: 'x' }))
    await new Promise(resolve => plain.once('open', resolve))
    plain.send(writeTandem({ type: 'refresh', token: 't' }))
    expect((await closed(plain)).code).toBe(4400)
    const tandem = await rawSession(docUrl(server.url, name, { tandem: '1', user: 'y' }))
    tandem.ws.send(writeTandem({ type: 'refresh', token: 'x'.repeat(20_000) }))
    expect((await tandem.closed).code).toBe(4400)
    expect(() => readFrame(writeTandem({ type: 'refresh', token: 'x'.repeat(20_000) }))).toThrow()
  })
})
