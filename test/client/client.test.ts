import { describe, expect, test, onTestFinished } from 'vitest'
import { WebSocketServer } from 'ws'
import type { AddressInfo } from 'node:net'
import * as Y from 'yjs'
import { UnsyncedCounter } from '../../client/unsynced.js'
import { PresenceBoard, type PresenceChange } from '../../server/presence/board.js'
import { readFrame, writeSyncStep1, writeSyncStep2, writeTandem } from '../../shared/messages.js'
import { TandemError } from '../../shared/errors.js'
import { docName, waitFor, startServer } from '../support/helpers.js'
import { tandemClient } from '../support/tandem-helpers.js'

describe('UnsyncedCounter', () => {
  test('updates are settled in order; a drop carries them into the next step 2', () => {
    const counter = new UnsyncedCounter()
    counter.sentStep2()
    counter.sentUpdate()
    counter.sentUpdate()
    expect(counter.count).toBe(2)
    expect(counter.settled(2)).toBe(1) // the step 2 carried nothing, then one update
    expect(counter.count).toBe(1)
    counter.socketClosed()
    counter.unsent()
    expect(counter.count).toBe(2)
    counter.sentStep2()
    counter.sentUpdate()
    expect(counter.count).toBe(3)
    expect(counter.settled(1)).toBe(2)
    expect(counter.settled(1)).toBe(1)
    expect(counter.count).toBe(0)
  })
})

describe('PresenceBoard', () => {
  test('joins, tabs, statuses and leaves, announcing only real changes', () => {
    const changes: PresenceChange[] = []
    const board = new PresenceBoard(60_000, change => changes.push(change))
    onTestFinished(() => board.close())
    board.connect('s1', { userId: 'u', name: 'U', color: '#000' })
    board.connect('s2', { userId: 'u', name: 'U', color: '#000' })
    board.activity('s1')
    board.setStatus('s1', 'away')
    board.suspend('s2')
    board.resume('s2')
    board.disconnect('s1', 'leave')
    board.disconnect('s2', 'disconnect')
    expect(changes.map(c => `${c.event}:${c.user.status}:${c.user.connections}${c.event === 'left' ? `:${c.reason}` : ''}`)).toEqual([
      'joined:active:1',
      'updated:active:2',
      // s1 away, s2 still active: the user shows the liveliest
      'updated:away:2', // s2 reconnecting, s1 away
      'updated:active:2',
      'updated:active:1',
      'left:active:0:disconnect'
    ])
    expect(board.size).toBe(0)
  })

  test('one board timer turns each quiet connection idle in turn, and activity brings it back', async () => {
    const changes: PresenceChange[] = []
    const board = new PresenceBoard(80, change => changes.push(change))
    onTestFinished(() => board.close())
    board.connect('a', { userId: 'ann', name: 'Ann', color: '#000' })
    board.connect('b', { userId: 'bob', name: 'Bob', color: '#000' })
    // bob keeps typing while ann goes quiet
    const typing = setInterval(() => board.activity('b'), 10)
    onTestFinished(() => clearInterval(typing))
    await waitFor(() => board.get('ann')?.status === 'idle', 2_000, 'ann idle')
    expect(board.get('bob')?.status).toBe('active')
    clearInterval(typing)
    await waitFor(() => board.get('bob')?.status === 'idle', 2_000, 'bob idle')
    board.activity('a')
    expect(board.get('ann')?.status).toBe('active')
    await waitFor(() => board.get('ann')?.status === 'idle', 2_000, 'ann idle again')
    expect(changes.filter(c => c.event === 'updated').map(c => `${c.user.userId}:${c.user.status}`))
      .toEqual(['ann:idle', 'bob:idle', 'ann:active', 'ann:idle'])
  })
})

describe('TandemClient against a server that refuses its edits', () => {
  test('refused frames are not left pending, and an error names TANDEM_ERR_READ_ONLY', async () => {
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' })
    onTestFinished(() => new Promise<void>(resolve => { for (const c of wss.clients) c.terminate(); wss.close(() => resolve()) }))
    await new Promise(resolve => wss.once('listening', resolve))
    wss.on('connection', socket => {
      socket.send(writeSyncStep1(Y.encodeStateVector(new Y.Doc())))
      socket.on('message', (data: Buffer) => {
        const frame = readFrame(data)
        if (frame.type === 'sync-step1') socket.send(writeSyncStep2(Y.encodeStateAsUpdate(new Y.Doc())))
        if (frame.type === 'sync-step2' || frame.type === 'sync-update') socket.send(writeTandem({ type: 'refused', count: 1, code: 'TANDEM_ERR_READ_ONLY' }))
      })
    })
    const client = tandemClient(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`, docName())
    const errors: TandemError[] = []
    client.on('error', err => errors.push(err))
    await client.synced()
    client.doc.getText('t').insert(0, 'nope')
    expect(client.unsyncedChanges).toBe(1)
    await client.flushed()
    expect(client.unsyncedChanges).toBe(0)
    await waitFor(() => errors.length > 0, 5_000, 'an error')
    expect(errors[0]).toBeInstanceOf(TandemError)
    expect(errors[0]?.code).toBe('TANDEM_ERR_READ_ONLY')
  })
})

describe('TandemClient lifecycle', () => {
  test('options are validated; document names with any characters reach the server intact', async () => {
    const server = await startServer()
    expect(() => tandemClient('localhost:1234', 'x')).toThrow(/url/)
    expect(() => tandemClient(server.url, '')).toThrow(/Document names/)
    expect(() => tandemClient(server.url, 'x', { leaveTimeoutMs: -1 })).toThrow(/leaveTimeoutMs/)
    const name = `team/${docName()}/50% done? #1 é`
    const client = tandemClient(server.url, name, { user: { id: 'x' } })
    await client.synced()
    client.doc.getText('t').insert(0, 'ok')
    await client.flushed()
    expect(server.documents.get(name)?.ydoc.getText('t').toString()).toBe('ok')
  })

  test('destroy() rejects what waits, and events are typed and isolated', async () => {
    const server = await startServer()
    const client = tandemClient(server.url, docName(), { connect: false, user: { id: 'x' } })
    expect(client.status).toBe('disconnected')
    const statuses: string[] = []
    client.on('status', status => statuses.push(status))
    client.on('status', () => { throw new Error('a handler that throws does not stop the others') })
    const synced = client.synced()
    client.connect()
    await synced
    expect(statuses).toEqual(['connecting', 'connected'])
    const waiting = client.locks.acquire('r').then(lock => lock.token)
    await expect(waiting).resolves.toBeGreaterThan(0)
    client.doc.getText('t').insert(0, 'x')
    client.destroy()
    client.destroy()
    await expect(client.flushed()).rejects.toMatchObject({ code: 'TANDEM_ERR_DESTROYED' })
    await expect(client.locks.acquire('r')).rejects.toMatchObject({ code: 'TANDEM_ERR_DESTROYED' })
    expect(() => client.connect()).toThrow(/destroyed/)
  })

  test('a lock request waits for the connection, then fails after connectTimeoutMs', async () => {
    const server = await startServer()
    const client = tandemClient(server.url, docName(), { connect: false, connectTimeoutMs: 100 })
    await expect(client.locks.acquire('r')).rejects.toMatchObject({ code: 'TANDEM_ERR_DISCONNECTED' })
    const pending = client.locks.acquire('r')
    client.connect()
    expect((await pending).resource).toBe('r')
    await expect(client.locks.acquire('')).rejects.toMatchObject({ code: 'TANDEM_ERR_INVALID_RESOURCE' })
  })
})
