import { describe, expect, test } from 'vitest'
import { startServer, waitFor, docName, tempDir, rawClient, opened } from '../support/helpers.js'
import { readFrame, writeTandem } from '../../shared/messages.js'
import { tandemClient, record } from '../support/tandem-helpers.js'
import { LockDeniedError, isTandemError } from '../../client/index.js'

describe('edit locks between clients', () => {
  test('exclusion, refusal naming the holder, and every change reaching every client', async () => {
    const server = await startServer()
    const name = docName()
    const ada = tandemClient(server.url, name, { user: { id: 'ada', name: 'Ada' } })
    const bob = tandemClient(server.url, name, { user: { id: 'bob', name: 'Bob' } })
    const carol = tandemClient(server.url, name, { user: { id: 'carol', name: 'Carol' } })
    const carolEvents = record(carol)
    await Promise.all([ada.synced(), bob.synced(), carol.synced()])
    const lock = await ada.locks.acquire('block:42')
    expect(lock.token).toBeGreaterThan(0)
    const refusal = await bob.locks.acquire('block:42').catch((err: unknown) => err)
    expect(refusal).toBeInstanceOf(LockDeniedError)
    expect((refusal as LockDeniedError).code).toBe('TANDEM_ERR_LOCK_HELD')
    expect((refusal as LockDeniedError).holder).toMatchObject({ userId: 'ada', name: 'Ada', token: lock.token, sessionId: ada.sessionId })
    await waitFor(() => carol.locks.holder('block:42')?.userId === 'ada' && bob.locks.holder('block:42')?.userId === 'ada', 5_000, 'all see the holder')
    await lock.release()
    expect(lock.released).toBe(true)
    await waitFor(() => carol.locks.list().length === 0 && bob.locks.list().length === 0, 5_000, 'all see the release')
    expect(carolEvents.locks.map(e => e.type === 'released' ? `released:${e.reason}` : e.type)).toEqual(['snapshot', 'acquired', 'released:release'])
    const bobs = await bob.locks.acquire('block:42')
    expect(bobs.token).toBeGreaterThan(lock.token)
  })

  test('only the holder releases: another client cannot', async () => {
    const server = await startServer()
    const name = docName()
    const ada = tandemClient(server.url, name, { user: { id: 'ada' } })
    const bob = tandemClient(server.url, name, { user: { id: 'bob' } })
    await Promise.all([ada.synced(), bob.synced()])
    await ada.locks.acquire('r')
    // mallory forges a release over the wire
    const raw = rawClient(`${server.url}/${name}?tandem=1&user=mallory`)
    const replies: Array<{ code: string }> = []
    raw.on('message', (data: Buffer) => {
      const frame = readFrame(data)
      if (frame.type === 'tandem' && frame.message.type === 'lock-reply') replies.push(frame.message)
    })
    await opened(raw)
    raw.send(writeTandem({ type: 'lock-release', id: 7, resource: 'r' }))
    await waitFor(() => replies.length === 1, 5_000, 'reply')
    expect(replies[0]).toMatchObject({ id: 7, code: 'TANDEM_ERR_NOT_LOCK_HOLDER', lock: null })
    expect((await server.collaboration.locks.list(name))[0]?.userId).toBe('ada')
    expect(bob.locks.holder('r')?.userId).toBe('ada')
  })

  test('queued requests are granted in order, with growing tokens', async () => {
    const server = await startServer()
    const name = docName()
    const clients = ['a', 'b', 'c', 'd'].map(id => tandemClient(server.url, name, { user: { id } }))
    await Promise.all(clients.map(c => c.synced()))
    const [a, b, c, d] = clients as [typeof clients[0], typeof clients[0], typeof clients[0], typeof clients[0]]
    const first = await a.locks.acquire('r')
    const order: string[] = []
    const wait = { waitMs: 10_000 }
    const pb = b.locks.acquire('r', wait).then(l => { order.push('b'); return l })
    const pc = c.locks.acquire('r', wait).then(l => { order.push('c'); return l })
    const pd = d.locks.acquire('r', wait).then(l => { order.push('d'); return l })
    // the requests travel over three sockets: let all three reach the queue before releasing
    await waitFor(async () => (await queued(server, name, 'r')) === 3, 5_000, 'three queued')
    await first.release()
    const lb = await pb
    await lb.release()
    const lc = await pc
    await lc.release()
    const ld = await pd
    expect(order).toEqual(['b', 'c', 'd'])
    expect([first.token, lb.token, lc.token, ld.token]).toEqual([...[first.token, lb.token, lc.token, ld.token]].sort((x, y) => x - y))
    expect(new Set([first.token, lb.token, lc.token, ld.token]).size).toBe(4)
  })

  test('waitMs runs out: LockDeniedError with TANDEM_ERR_LOCK_TIMEOUT and the holder', async () => {
    const server = await startServer()
    const name = docName()
    const ada = tandemClient(server.url, name, { user: { id: 'ada' } })
    const bob = tandemClient(server.url, name, { user: { id: 'bob' } })
    await Promise.all([ada.synced(), bob.synced()])
    await ada.locks.acquire('r')
    const err = await bob.locks.acquire('r', { waitMs: 100 }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(LockDeniedError)
    expect((err as LockDeniedError).code).toBe('TANDEM_ERR_LOCK_TIMEOUT')
    expect((err as LockDeniedError).holder?.userId).toBe('ada')
  })

  test('a lease is renewed while the session lives, beyond its ttl', async () => {
    const server = await startServer()
    const name = docName()
    const ada = tandemClient(server.url, name, { user: { id: 'ada' } })
    await ada.synced()
    const lock = await ada.locks.acquire('r', { ttlMs: 600 })
    const deadline = lock.info.expiresAt + 300
    await waitFor(() => Date.now() > deadline, 5_000, 'well past the first lease')
    const [held] = await server.collaboration.locks.list(name)
    expect(held?.token).toBe(lock.token)
    expect(held!.expiresAt).toBeGreaterThan(lock.info.expiresAt)
    expect(lock.released).toBe(false)
  })

  test('fencing tokens keep growing across a server restart', async () => {
    const dataDir = tempDir()
    const name = docName()
    const tokens: number[] = []
    for (let run = 0; run < 2; run++) {
      const server = await startServer({ persistence: 'sqlite', dataDir })
      const client = tandemClient(server.url, name, { user: { id: 'ada' } })
      await client.synced()
      for (let i = 0; i < 2; i++) {
        const lock = await client.locks.acquire('block:1')
        tokens.push(lock.token)
        await lock.release()
      }
      await client.leave()
      await server.close()
    }
    expect(tokens).toEqual([1, 2, 3, 4])
  })

  test('read-only sessions may not lock', async () => {
    const { SignJWT } = await import('jose')
    const secret = 'lock-secret-lock-secret-lock-secret'
    const server = await startServer({ authSecret: secret })
    const name = docName()
    const token = await new SignJWT({ name: 'Reader', access: 'read' }).setProtectedHeader({ alg: 'HS256' }).setSubject('reader').sign(new TextEncoder().encode(secret))
    const reader = tandemClient(server.url, name, { token })
    await reader.synced()
    const err = await reader.locks.acquire('r').catch((e: unknown) => e)
    expect(isTandemError(err, 'TANDEM_ERR_READ_ONLY')).toBe(true)
    expect(reader.access).toBe('read')
    expect(reader.presence.self).toMatchObject({ userId: 'reader', name: 'Reader' })
  })
})

/** How many requests wait for a resource, read through the table's public surface. */
async function queued (server: Awaited<ReturnType<typeof startServer>>, doc: string, resource: string): Promise<number> {
  // the queue is not part of the LockTable surface: peek into the in-memory table
  const table = server.collaboration.locks as unknown as { docs: Map<string, Map<string, { waiters: unknown[] }>> }
  return table.docs.get(doc)?.get(resource)?.waiters.length ?? 0
}
