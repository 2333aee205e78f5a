import { describe, expect, test } from 'vitest'
import * as Y from 'yjs'
import { once } from 'node:events'
import { MemoryStore } from '../../server/index.js'
import { TandemError } from '../../shared/errors.js'
import { readFrame, writeSyncUpdate, writeSyncStep2 } from '../../shared/messages.js'
import { startServer, stockClient, synced, waitFor, docName, rawClient, opened, testLogger } from '../support/helpers.js'
import { signToken, upgrade, docUrl } from '../support/security-helpers.js'

const SECRET = 'test-secret-that-is-long-enough-0123456789'

describe('JWT access', () => {
  test('a valid token in the query or in Sec-WebSocket-Protocol is admitted', async () => {
    const server = await startServer({ authSecret: SECRET })
    const token = await signToken(SECRET, { sub: 'ada' })
    expect((await upgrade(docUrl(server.url, docName(), { token }))).status).toBe('open')
    expect((await upgrade(docUrl(server.url, docName()), { protocols: [token] })).status).toBe('open')
  })

  test('missing, forged, expired, malformed tokens and bad claims are refused with 401 before the upgrade', async () => {
    const server = await startServer({ authSecret: SECRET })
    const doc = docName()
    const cases: Record<string, string | undefined> = {
      missing: undefined,
      forged: await signToken('another-secret-0123456789-0123456789', { sub: 'ada' }),
      expired: await signToken(SECRET, { sub: 'ada' }, -60),
      malformed: 'not.a.jwt',
      garbage: 'x'.repeat(300),
      'no sub': await signToken(SECRET, { name: 'ada' }),
      'bad access': await signToken(SECRET, { sub: 'ada', access: 'admin' }),
      'bad docs': await signToken(SECRET, { sub: 'ada', docs: 'everything' })
    }
    for (const [what, token] of Object.entries(cases)) {
      const result = await upgrade(docUrl(server.url, doc, token === undefined ? {} : { token }))
      expect(result.status, what).toBe(401)
    }
    // alg "none": an unsigned token with the right claims
    const header = Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')
    const payload = Buffer.from(JSON.stringify({ sub: 'ada' })).toString('base64url')
    expect((await upgrade(docUrl(server.url, doc, { token: `${header}.${payload}.` }))).status).toBe(401)
    expect(server.sessions.size).toBe(0)
    expect(server.documents.size).toBe(0)
  })

  test('a document outside the token\'s docs is refused with 403; names and prefix/* patterns admit', async () => {
    const server = await startServer({ authSecret: SECRET })
    const team = docName('team')
    const token = await signToken(SECRET, { sub: 'ada', docs: ['notes-1', `${team}/*`] })
    expect((await upgrade(docUrl(server.url, 'notes-1', { token }))).status).toBe('open')
    expect((await upgrade(docUrl(server.url, `${team}/plan`, { token }))).status).toBe('open')
    expect((await upgrade(docUrl(server.url, 'notes-2', { token }))).status).toBe(403)
    expect((await upgrade(docUrl(server.url, `${team}-other/plan`, { token }))).status).toBe(403)
    expect((await upgrade(docUrl(server.url, team, { token }))).status).toBe(403)
  })
})

describe('read access', () => {
  test('a stock client with read access syncs, sees edits and awareness, but its edits reach no one', async () => {
    const store = new MemoryStore()
    const server = await startServer({ authSecret: SECRET, persistence: store })
    const name = docName()
    const writerToken = await signToken(SECRET, { sub: 'writer' })
    const readerToken = await signToken(SECRET, { sub: 'reader', access: 'read' })
    const writer = stockClient(server.url, name, { params: { token: writerToken } })
    const reader = stockClient(server.url, name, { params: { token: readerToken } })
    await Promise.all([synced(writer.provider), synced(reader.provider)])

    writer.text.insert(0, 'from writer')
    await waitFor(() => reader.text.toString() === 'from writer', 5_000, 'reader sees the writer')

    reader.text.insert(0, 'EVIL ')
    reader.doc.getMap('m').set('k', 'evil')
    reader.text.delete(5, 4) // deletes part of the writer's text locally
    reader.provider.awareness.setLocalStateField('user', { name: 'reader' })
    await waitFor(() => [...writer.provider.awareness.getStates().values()].some(s => (s.user as { name?: string } | undefined)?.name === 'reader'),
      5_000, 'the reader\'s awareness reaches the writer')
    // the writer's next edit round-trips through the server after the reader's frames
    writer.text.insert(11, '!')
    await waitFor(() => reader.text.toString().endsWith('!'), 5_000, 'reader still receives edits')
    expect(writer.text.toString()).toBe('from writer!')
    expect(writer.doc.getMap('m').size).toBe(0)
    const serverDoc = server.documents.get(name)!.ydoc
    expect(serverDoc.getText('t').toString()).toBe('from writer!')
    expect(serverDoc.getMap('m').size).toBe(0)
    const stored = new Y.Doc()
    for (const update of await store.load(name)) Y.applyUpdate(stored, update)
    await waitFor(async () => {
      const check = new Y.Doc()
      for (const update of await store.load(name)) Y.applyUpdate(check, update)
      return check.getText('t').toString() === 'from writer!'
    }, 5_000, 'store has the writer\'s text')
    expect(stored.getMap('m').size).toBe(0)
    // a reconnect (the reader sends its whole state in sync step 2) changes nothing either
    reader.provider.disconnect()
    reader.provider.connect()
    await synced(reader.provider)
    writer.text.insert(0, '>')
    await waitFor(() => reader.text.toString().includes('>'), 5_000, 'reader synced again')
    expect(writer.text.toString()).toBe('>from writer!')
    expect(reader.provider.wsconnected).toBe(true)
  })

  test('a Tandem client with read access is told with a refused message; a no-op frame is acknowledged', async () => {
    const server = await startServer({ authSecret: SECRET })
    const name = docName()
    const token = await signToken(SECRET, { sub: 'reader', access: 'read' })
    const ws = rawClient(docUrl(server.url, name, { token, tandem: '1' }))
    const frames: ReturnType<typeof readFrame>[] = []
    ws.on('message', (data: Buffer) => frames.push(readFrame(data)))
    await opened(ws)
    const scratch = new Y.Doc()
    scratch.getText('t').insert(0, 'nope')
    ws.send(writeSyncUpdate(Y.encodeStateAsUpdate(scratch)))
    ws.send(writeSyncStep2(Y.encodeStateAsUpdate(new Y.Doc()))) // empty: changes nothing
    // other Tandem messages (welcome, presence) come too: only the replies to sync frames matter here
    const replies = (): unknown[] => frames.flatMap(f => f.type === 'tandem' && (f.message.type === 'ack' || f.message.type === 'refused') ? [f.message] : [])
    await waitFor(() => replies().length >= 2, 5_000, 'two replies')
    const tandem = replies()
    expect(tandem).toEqual([
      { type: 'refused', count: 1, code: 'TANDEM_ERR_READ_ONLY' },
      { type: 'ack', count: 1 }
    ])
    expect(server.documents.get(name)!.ydoc.getText('t').toString()).toBe('')
    expect(ws.readyState).toBe(ws.OPEN)
  })
})

describe('the authenticate hook', () => {
  test('it sees headers (cookies), query and document, and its identity and access apply', async () => {
    const seen: Array<{ cookie: unknown, document: string, q: string | null }> = []
    const server = await startServer({
      authenticate: ({ headers, document, query }) => {
        seen.push({ cookie: headers.cookie, document, q: query.get('q') })
        if (headers.cookie === 'sid=good') return { userId: 'u1', name: 'Ada' }
        if (headers.cookie === 'sid=reader') return { userId: 'u2', access: 'read' }
        if (headers.cookie === 'sid=scoped') return { userId: 'u3', docs: ['allowed'] }
        return null
      }
    })
    const name = docName()
    expect((await upgrade(docUrl(server.url, name, { q: '1' }), { headers: { cookie: 'sid=good' } })).status).toBe('open')
    expect(seen[0]).toEqual({ cookie: 'sid=good', document: name, q: '1' })
    expect((await upgrade(docUrl(server.url, name), { headers: { cookie: 'sid=bad' } })).status).toBe(401)
    expect((await upgrade(docUrl(server.url, name))).status).toBe(401)
    expect((await upgrade(docUrl(server.url, name), { headers: { cookie: 'sid=scoped' } })).status).toBe(403)
    expect((await upgrade(docUrl(server.url, 'allowed'), { headers: { cookie: 'sid=scoped' } })).status).toBe('open')

    const ws = rawClient(docUrl(server.url, name), { headers: { cookie: 'sid=reader' } })
    await opened(ws)
    await waitFor(() => server.sessions.size === 1)
    const [session] = [...server.sessions]
    expect(session!.identity).toMatchObject({ userId: 'u2', name: 'u2', access: 'read' })
  })

  test('a hook that throws is refused (TandemError: its status; anything else: logged, 500) and the server lives on', async () => {
    const errors: unknown[] = []
    const logger = testLogger.child({})
    const origError = logger.error.bind(logger)
    logger.error = ((...args: unknown[]) => { errors.push(args[0]); return (origError as (...a: unknown[]) => void)(...args) }) as typeof logger.error
    let mode = 'sync'
    const server = await startServer({
      logger,
      authenticate: async () => {
        if (mode === 'sync-throw') throw new Error('boom')
        if (mode === 'async-throw') { await Promise.resolve(); throw new TypeError('async boom') }
        if (mode === 'forbidden') throw new TandemError('TANDEM_ERR_FORBIDDEN', 'not yours')
        if (mode === 'status') throw Object.assign(new Error('teapot'), { statusCode: 418 })
        if (mode === 'weird-status') throw Object.assign(new Error('switch'), { statusCode: 101 })
        if (mode === 'throw-string') throw 'a string'
        if (mode === 'bad-identity') return { userId: '' }
        return { userId: 'ok' }
      }
    })
    const name = docName()
    const expected: Record<string, number | 'open'> = {
      'sync-throw': 500, 'async-throw': 500, forbidden: 403, status: 418, 'weird-status': 500, 'throw-string': 500, 'bad-identity': 500, ok: 'open'
    }
    for (const [m, status] of Object.entries(expected)) {
      mode = m
      const result = await upgrade(docUrl(server.url, name))
      expect(result.status, m).toBe(status)
      if (status === 500) expect(result.body).toBe('internal error\n')
    }
    expect(errors.length).toBeGreaterThanOrEqual(5)
    expect(server.status).toBe('listening')
  })

  test('a synchronous throw from a plain (non-async) hook is refused too', async () => {
    const server = await startServer({ authenticate: () => { throw new Error('sync boom') } })
    expect((await upgrade(docUrl(server.url, docName()))).status).toBe(500)
  })

  test('a hook slower than authTimeoutMs is refused with 503, and its late answer is ignored', async () => {
    let release: () => void = () => {}
    const server = await startServer({
      authTimeoutMs: 100,
      authenticate: () => new Promise(resolve => { release = () => resolve({ userId: 'late' }) })
    })
    const result = await upgrade(docUrl(server.url, docName()))
    expect(result.status).toBe(503)
    expect(result.body).toContain('--auth-timeout')
    release()
    await new Promise(resolve => setImmediate(resolve))
    expect(server.sessions.size).toBe(0)
  })
})

test('the JWT check and the hook never leave a connection slot behind', async () => {
  const server = await startServer({ authSecret: SECRET })
  for (let i = 0; i < 5; i++) expect((await upgrade(docUrl(server.url, docName()))).status).toBe(401)
  const ws = rawClient(docUrl(server.url, docName(), { token: await signToken(SECRET, { sub: 'a' }) }))
  await opened(ws)
  ws.close(1000)
  await once(ws, 'close')
  await waitFor(() => server.connections.size === 0, 5_000, 'no connection counted')
})
