import { describe, expect, test, vi } from 'vitest'
import { startServer, stockClient, synced, waitFor, docName, rawClient, opened, closed } from '../support/helpers.js'
import { tandemClient, record, dropSocket, leftEvents } from '../support/tandem-helpers.js'
import { readFrame, writeAwareness } from '../../shared/messages.js'
import type { TandemMessage } from '../../shared/tandem.js'

describe('presence', () => {
  test('two clients see each other, with identity from the query parameters', async () => {
    const server = await startServer()
    const name = docName()
    const ada = tandemClient(server.url, name, { user: { id: 'ada', name: 'Ada', color: '#f80' } })
    const bob = tandemClient(server.url, name, { user: { id: 'bob', name: 'Bob', color: '#08f' } })
    await Promise.all([ada.synced(), bob.synced()])
    await waitFor(() => ada.presence.list().length === 2 && bob.presence.list().length === 2, 5_000, 'both see two users')
    expect(ada.presence.self).toMatchObject({ userId: 'ada', name: 'Ada', color: '#f80', status: 'active', connections: 1 })
    expect(bob.presence.list().map(u => u.userId).sort()).toEqual(['ada', 'bob'])
  })

  test('a user in two tabs is one entry with two connections, and leaves with the last', async () => {
    const server = await startServer()
    const name = docName()
    const watcher = tandemClient(server.url, name, { user: { id: 'watcher' } })
    const events = record(watcher)
    const tab1 = tandemClient(server.url, name, { user: { id: 'ada', name: 'Ada' } })
    const tab2 = tandemClient(server.url, name, { user: { id: 'ada', name: 'Ada' } })
    await Promise.all([watcher.synced(), tab1.synced(), tab2.synced()])
    await waitFor(() => watcher.presence.list().find(u => u.userId === 'ada')?.connections === 2, 5_000, 'two connections')
    expect(watcher.presence.list()).toHaveLength(2)
    await tab1.leave()
    await waitFor(() => watcher.presence.list().find(u => u.userId === 'ada')?.connections === 1, 5_000, 'one connection left')
    expect(leftEvents(events)).toEqual([])
    await tab2.leave()
    await waitFor(() => leftEvents(events).length === 1, 5_000, 'ada left')
    expect(leftEvents(events)[0]).toMatchObject({ user: { userId: 'ada' }, reason: 'leave' })
    expect(server.collaboration.presence(name).map(u => u.userId)).toEqual(['watcher'])
  })

  test('idle after --idle-after without activity, active again on an edit; away until set active', async () => {
    const server = await startServer({ idleAfterMs: 200 })
    const name = docName()
    const watcher = tandemClient(server.url, name, { user: { id: 'watcher' } })
    const ada = tandemClient(server.url, name, { user: { id: 'ada' } })
    await Promise.all([watcher.synced(), ada.synced()])
    const statusOfAda = (): string | undefined => watcher.presence.list().find(u => u.userId === 'ada')?.status
    await waitFor(() => statusOfAda() === 'idle', 5_000, 'ada idle')
    ada.doc.getText('t').insert(0, 'x')
    await waitFor(() => statusOfAda() === 'active', 5_000, 'ada active after an edit')
    await waitFor(() => statusOfAda() === 'idle', 5_000, 'ada idle again')
    ada.awareness.setLocalStateField('cursor', { index: 1 })
    await waitFor(() => statusOfAda() === 'active', 5_000, 'ada active after an awareness change')
    ada.presence.setStatus('away')
    await waitFor(() => statusOfAda() === 'away', 5_000, 'ada away')
    ada.doc.getText('t').insert(0, 'y')
    await waitFor(() => watcher.doc.getText('t').toString() === 'yx', 5_000, 'edit relayed')
    expect(statusOfAda()).toBe('away')
    ada.presence.setStatus('active')
    await waitFor(() => statusOfAda() === 'active', 5_000, 'ada active again')
    expect(ada.presence.self?.status).toBe('active')
  })

  test('leave: left with reason leave, locks released at once', async () => {
    const server = await startServer()
    const name = docName()
    const watcher = tandemClient(server.url, name, { user: { id: 'watcher' } })
    const events = record(watcher)
    const ada = tandemClient(server.url, name, { user: { id: 'ada' } })
    await Promise.all([watcher.synced(), ada.synced()])
    await ada.locks.acquire('block:1')
    await waitFor(() => watcher.locks.holder('block:1')?.userId === 'ada', 5_000, 'watcher sees the lock')
    await ada.leave()
    await waitFor(() => leftEvents(events).length === 1 && watcher.locks.holder('block:1') === undefined, 5_000, 'ada left, lock released')
    expect(leftEvents(events)[0]).toMatchObject({ user: { userId: 'ada' }, reason: 'leave' })
    expect(events.locks.find(e => e.type === 'released')).toMatchObject({ reason: 'leave', lock: { resource: 'block:1' } })
    expect(ada.status).toBe('disconnected')
  })

  test('a drop resumed within the grace keeps locks and emits no left', async () => {
    const server = await startServer({ reconnectGraceMs: 10_000 })
    const name = docName()
    const watcher = tandemClient(server.url, name, { user: { id: 'watcher' } })
    watcher.awareness.setLocalStateField('here', true)
    const events = record(watcher)
    const ada = tandemClient(server.url, name, { user: { id: 'ada' }, maxBackoffTimeMs: 100 })
    await Promise.all([watcher.synced(), ada.synced()])
    const lock = await ada.locks.acquire('block:1')
    const sessionId = ada.sessionId
    ada.awareness.setLocalStateField('cursor', 3)
    await waitFor(() => watcher.awareness.getStates().get(ada.doc.clientID)?.cursor === 3, 5_000, 'watcher sees the cursor')
    dropSocket(ada)
    await waitFor(() => events.presence.some(e => e.type === 'updated' && e.user.userId === 'ada' && e.user.status === 'reconnecting'), 5_000, 'reconnecting shown')
    // awareness of a dropped connection goes at once, grace or not
    await waitFor(() => !watcher.awareness.getStates().has(ada.doc.clientID), 5_000, 'cursor removed at once')
    await waitFor(() => watcher.presence.list().find(u => u.userId === 'ada')?.status === 'active', 5_000, 'ada active again')
    await ada.synced()
    expect(ada.sessionId).toBe(sessionId)
    expect(leftEvents(events)).toEqual([])
    expect(events.locks.filter(e => e.type === 'released')).toEqual([])
    expect(watcher.locks.holder('block:1')).toMatchObject({ userId: 'ada', token: lock.token })
    expect(lock.released).toBe(false)
    await waitFor(() => watcher.awareness.getStates().get(ada.doc.clientID)?.cursor === 3, 5_000, 'cursor back after resume')
    // and the resumed client sees the others' states again at once, not after their 15 s renewal
    await waitFor(() => ada.awareness.getStates().get(watcher.doc.clientID)?.here === true, 5_000, 'ada sees the watcher again')
    await lock.release()
    await waitFor(() => watcher.locks.holder('block:1') === undefined, 5_000, 'released after resume')
  })

  test('resuming needs the secret, the same user and document; a half-open socket is replaced', async () => {
    const server = await startServer({ reconnectGraceMs: 10_000 })
    const name = docName()
    const watcher = tandemClient(server.url, name, { user: { id: 'watcher' } })
    const events = record(watcher)
    await watcher.synced()
    const welcomeOf = async (ws: ReturnType<typeof rawClient>): Promise<Extract<TandemMessage, { type: 'welcome' }>> => {
      return await new Promise(resolve => ws.on('message', (data: Buffer) => {
        const frame = readFrame(data)
        if (frame.type === 'tandem' && frame.message.type === 'welcome') resolve(frame.message)
      }))
    }
    const first = rawClient(`${server.url}/${name}?tandem=1&user=ada`)
    const hello = await welcomeOf(first)
    expect(hello.resumed).toBe(false)
    const resumeUrl = (secret: string, user = 'ada', doc = name): string =>
      `${server.url}/${doc}?tandem=1&user=${user}&session=${hello.sessionId}&resume=${secret}`
    // a wrong secret, another user or another document: a fresh session, the first untouched
    for (const url of [resumeUrl('wrong'), resumeUrl(hello.secret, 'eve'), resumeUrl(hello.secret, 'ada', `${name}-other`)]) {
      const other = rawClient(url)
      const welcome = await welcomeOf(other)
      expect(welcome.resumed).toBe(false)
      expect(welcome.sessionId).not.toBe(hello.sessionId)
      other.close(1000)
      await closed(other)
    }
    expect(first.readyState).toBe(first.OPEN)
    // the right secret while the first socket still looks open: it is dropped, the session moves
    const second = rawClient(resumeUrl(hello.secret))
    const welcome = await welcomeOf(second)
    expect(welcome).toMatchObject({ resumed: true, sessionId: hello.sessionId, userId: 'ada' })
    expect(welcome.secret).not.toBe(hello.secret)
    await closed(first)
    await waitFor(() => watcher.presence.list().find(u => u.userId === 'ada')?.status === 'active', 5_000, 'ada active')
    expect(leftEvents(events).filter(e => e.user.userId === 'ada')).toEqual([])
    expect(watcher.presence.list().find(u => u.userId === 'ada')?.connections).toBe(1)
  })

  test('a drop not resumed within the grace releases locks and emits left with disconnect', async () => {
    const server = await startServer({ reconnectGraceMs: 300 })
    const name = docName()
    const watcher = tandemClient(server.url, name, { user: { id: 'watcher' } })
    const events = record(watcher)
    const ada = tandemClient(server.url, name, { user: { id: 'ada' } })
    await Promise.all([watcher.synced(), ada.synced()])
    await ada.locks.acquire('block:1')
    await waitFor(() => watcher.locks.holder('block:1') !== undefined, 5_000, 'lock seen')
    // closes without a code (1005) and never reconnects: a drop, not a leave
    ada.provider.disconnect()
    await waitFor(() => leftEvents(events).length === 1, 5_000, 'ada left after the grace')
    const statuses = events.presence.filter(e => e.type === 'updated').map(e => e.type === 'updated' ? e.user.status : '')
    expect(statuses).toContain('reconnecting')
    expect(leftEvents(events)[0]).toMatchObject({ user: { userId: 'ada' }, reason: 'disconnect' })
    await waitFor(() => watcher.locks.holder('block:1') === undefined, 5_000, 'lock released')
    expect(events.locks.find(e => e.type === 'released')).toMatchObject({ reason: 'disconnect' })
    // too late to resume: a fresh session
    const before = ada.sessionId
    ada.provider.connect()
    await waitFor(() => ada.sessionId !== before && ada.presence.self?.status === 'active', 5_000, 'fresh session')
  })

  test('a heartbeat timeout ends presence with timeout once the grace is over', async () => {
    const server = await startServer({ heartbeatIntervalMs: 50, heartbeatTimeoutMs: 1_000, reconnectGraceMs: 200 })
    const name = docName()
    const watcher = tandemClient(server.url, name, { user: { id: 'watcher' } })
    const events = record(watcher)
    const ada = tandemClient(server.url, name, { user: { id: 'ada' } })
    await Promise.all([watcher.synced(), ada.synced()])
    await ada.locks.acquire('block:1')
    // a frozen peer: it neither reads pings nor answers them
    const socket = (ada.provider.ws as unknown as { _socket: { pause: () => void } })._socket
    socket.pause()
    ada.provider.shouldConnect = false // and never comes back
    await waitFor(() => leftEvents(events).length === 1, 5_000, 'ada timed out')
    expect(leftEvents(events)[0]).toMatchObject({ user: { userId: 'ada' }, reason: 'timeout' })
    await waitFor(() => watcher.locks.holder('block:1') === undefined, 5_000, 'lock released')
    expect(events.locks.find(e => e.type === 'released')).toMatchObject({ reason: 'timeout' })
    ada.destroy()
  })

  test('a session closed for bad input leaves with disconnect (nobody kicked it)', async () => {
    const server = await startServer()
    const name = docName()
    const watcher = tandemClient(server.url, name, { user: { id: 'watcher' } })
    const events = record(watcher)
    await watcher.synced()
    const raw = rawClient(`${server.url}/${name}?tandem=1&user=mallory`)
    await opened(raw)
    await waitFor(() => watcher.presence.list().length === 2, 5_000, 'mallory joined')
    raw.send(Uint8Array.of(0xff, 0xff))
    expect((await closed(raw)).code).toBe(4400)
    await waitFor(() => leftEvents(events).length === 1, 5_000, 'mallory left')
    expect(leftEvents(events)[0]).toMatchObject({ user: { userId: 'mallory' }, reason: 'disconnect' })
  })

  test('shutdown: remaining clients hear left with shutdown, locks are released', async () => {
    const server = await startServer()
    const name = docName()
    const a = tandemClient(server.url, name, { user: { id: 'a' } })
    const b = tandemClient(server.url, name, { user: { id: 'b' } })
    const eventsA = record(a)
    const eventsB = record(b)
    await Promise.all([a.synced(), b.synced()])
    await a.locks.acquire('r')
    await waitFor(() => b.locks.holder('r') !== undefined, 5_000, 'lock seen')
    await server.close()
    await waitFor(() => leftEvents(eventsA).length + leftEvents(eventsB).length === 1, 5_000, 'the first closed is seen leaving')
    const reasons = [...leftEvents(eventsA), ...leftEvents(eventsB)].map(e => e.reason)
    expect(reasons).toEqual(['shutdown'])
    const released = [...eventsA.locks, ...eventsB.locks].filter(e => e.type === 'released')
    expect(released.every(e => e.type === 'released' && e.reason === 'shutdown')).toBe(true)
  })

  test('the document unloads once the last session is gone, and presence with it', async () => {
    const server = await startServer({ reconnectGraceMs: 200 })
    const name = docName()
    const a = tandemClient(server.url, name, { user: { id: 'a' } })
    const b = tandemClient(server.url, name, { user: { id: 'b' } })
    await Promise.all([a.synced(), b.synced()])
    a.doc.getText('t').insert(0, 'kept')
    await a.flushed()
    expect(server.documents.get(name)).toBeDefined()
    await a.leave()
    b.provider.disconnect() // a drop: held for the grace, document unloads anyway
    await waitFor(() => server.documents.get(name) === undefined, 5_000, 'document unloaded')
    await waitFor(() => server.collaboration.presence(name).length === 0, 5_000, 'presence gone after the grace')
    const c = tandemClient(server.url, name, { user: { id: 'c' } })
    await c.synced()
    await waitFor(() => c.doc.getText('t').toString() === 'kept', 5_000, 'reloaded')
  })
})

describe('a stock client beside Tandem clients', () => {
  test('gets no Tandem frame, logs nothing, and shares document, awareness and presence', async () => {
    const warn = vi.spyOn(console, 'warn')
    const error = vi.spyOn(console, 'error')
    const server = await startServer({ idleAfterMs: 100 })
    const name = docName()
    const ada = tandemClient(server.url, name, { user: { id: 'ada', name: 'Ada' } })
    const events = record(ada)
    await ada.synced()
    // a raw stock-protocol socket records every frame it gets
    const raw = rawClient(`${server.url}/${name}`)
    const types: number[] = []
    raw.on('message', (data: Buffer) => types.push(data[0] as number))
    await opened(raw)
    const stock = stockClient(server.url, name)
    await synced(stock.provider)
    stock.provider.awareness.setLocalStateField('user', { name: 'Stocky' })
    await ada.locks.acquire('block:9')
    ada.presence.setStatus('away')
    ada.doc.getText('t').insert(0, 'from tandem')
    await waitFor(() => stock.text.toString() === 'from tandem', 5_000, 'stock sees the tandem edit')
    stock.text.insert(0, '> ')
    await waitFor(() => ada.doc.getText('t').toString() === '> from tandem', 5_000, 'tandem sees the stock edit')
    await waitFor(() => [...ada.awareness.getStates().values()].some(s => (s.user as { name?: string } | undefined)?.name === 'Stocky'), 5_000, 'tandem sees stock awareness')
    await waitFor(() => ada.presence.list().length === 3, 5_000, 'stock sessions appear in presence')
    // idle turns and relayed awareness renewals must not disturb the stock client
    await waitFor(() => ada.presence.list().some(u => u.status === 'idle'), 5_000, 'someone idle')
    expect(stock.provider.wsconnected).toBe(true)
    // a stock client cannot resume: its session ends at once
    stock.provider.disconnect()
    await waitFor(() => leftEvents(events).some(e => e.reason === 'disconnect'), 5_000, 'stock left at once')
    expect(types.every(t => t === 0 || t === 1)).toBe(true)
    expect(types).not.toContain(100)
    expect(warn).not.toHaveBeenCalled()
    expect(error).not.toHaveBeenCalled()
    warn.mockRestore()
    error.mockRestore()
  })

  test('two stock clients relaying each other\'s awareness are not kicked', async () => {
    const server = await startServer()
    const name = docName()
    const a = stockClient(server.url, name)
    const b = stockClient(server.url, name)
    const closes: number[] = []
    a.provider.on('connection-close', event => closes.push(event?.code ?? 0))
    b.provider.on('connection-close', event => closes.push(event?.code ?? 0))
    await Promise.all([synced(a.provider), synced(b.provider)])
    a.provider.awareness.setLocalStateField('user', { name: 'A' })
    b.provider.awareness.setLocalStateField('user', { name: 'B' })
    await waitFor(() => a.provider.awareness.getStates().size === 2 && b.provider.awareness.getStates().size === 2, 5_000, 'both see both')
    // a relay of another client's state changes nothing on the server
    const raw = rawClient(`${server.url}/${name}`)
    await opened(raw)
    const before = server.documents.get(name)?.awareness.size
    raw.send(writeAwareness(Uint8Array.of(0)))
    a.provider.awareness.setLocalStateField('user', { name: 'A2' })
    await waitFor(() => (b.provider.awareness.getStates().get(a.doc.clientID)?.user as { name: string }).name === 'A2', 5_000, 'b sees a change')
    expect(server.documents.get(name)?.awareness.size).toBe(before)
    expect(closes).toEqual([])
  })
})
