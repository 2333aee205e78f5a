import { describe, expect, test } from 'vitest'
import { startServer, waitFor, docName } from '../support/helpers.js'
import { tandemClient, record } from '../support/tandem-helpers.js'

function httpUrl (wsUrl: string, path: string): string {
  return `${wsUrl.replace(/^ws/, 'http')}${path}`
}

describe('admin HTTP API', () => {
  test('documents, presence and locks; force release reaches the holder and everyone', async () => {
    const server = await startServer({ adminToken: 'admin-secret' })
    const name = `team/${docName()}`
    const auth = { authorization: 'Bearer admin-secret' }
    const ada = tandemClient(server.url, name, { user: { id: 'ada', name: 'Ada' } })
    const bob = tandemClient(server.url, name, { user: { id: 'bob', name: 'Bob' } })
    const bobEvents = record(bob)
    await Promise.all([ada.synced(), bob.synced()])
    const lock = await ada.locks.acquire('block/7')
    const waiting = bob.locks.acquire('block/7', { waitMs: 10_000 })

    const docs = await (await fetch(httpUrl(server.url, '/api/documents'), { headers: auth })).json()
    expect(docs).toContainEqual({ name, sessions: 2, users: 2 })

    const encoded = encodeURIComponent(name)
    const presence = await (await fetch(httpUrl(server.url, `/api/documents/${encoded}/presence`), { headers: auth })).json() as Array<{ userId: string }>
    expect(presence.map(p => p.userId).sort()).toEqual(['ada', 'bob'])
    // the name may also be written with its slashes as they are
    const locks = await (await fetch(httpUrl(server.url, `/api/documents/${name}/locks`), { headers: auth })).json() as Array<{ resource: string, userId: string }>
    expect(locks).toEqual([expect.objectContaining({ resource: 'block/7', userId: 'ada', token: lock.token })])

    const unauthorized = await fetch(httpUrl(server.url, `/api/documents/${encoded}/locks/${encodeURIComponent('block/7')}`), { method: 'DELETE' })
    expect(unauthorized.status).toBe(401)
    const wrong = await fetch(httpUrl(server.url, '/api/documents'), { headers: { authorization: 'Bearer nope' } })
    expect(wrong.status).toBe(401)

    const released = await fetch(httpUrl(server.url, `/api/documents/${encoded}/locks/${encodeURIComponent('block/7')}`), { method: 'DELETE', headers: auth })
    expect(released.status).toBe(200)
    expect(await released.json()).toMatchObject({ released: { resource: 'block/7', userId: 'ada' } })
    await waitFor(() => lock.released, 5_000, 'the holder learns it lost the lock')
    const next = await waiting
    expect(next.token).toBeGreaterThan(lock.token)
    expect(bobEvents.locks.find(e => e.type === 'released')).toMatchObject({ reason: 'admin' })

    const again = await fetch(httpUrl(server.url, `/api/documents/${encoded}/locks/nothing`), { method: 'DELETE', headers: auth })
    expect(again.status).toBe(404)
    await lock.release() // already released: a no-op
  })

  test('without an admin token the API is open; unknown documents are empty', async () => {
    const server = await startServer()
    const name = docName()
    expect(await (await fetch(httpUrl(server.url, `/api/documents/${name}/presence`))).json()).toEqual([])
    expect(await (await fetch(httpUrl(server.url, `/api/documents/${name}/locks`))).json()).toEqual([])
    const client = tandemClient(server.url, name, { user: { id: 'x' } })
    await client.synced()
    expect(await (await fetch(httpUrl(server.url, '/api/documents'))).json()).toContainEqual({ name, sessions: 1, users: 1 })
    expect((await fetch(httpUrl(server.url, '/api/documents'), { method: 'POST' })).status).toBe(405)
  })
})
