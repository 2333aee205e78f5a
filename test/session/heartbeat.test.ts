import { describe, expect, test } from 'vitest'
import { startServer, rawClient, opened, closed, stockClient, synced, waitFor, docName } from '../support/helpers.js'
import { writeAwareness, KEEPALIVE_FRAME } from '../../shared/messages.js'
import { MemoryStore } from '../../server/store/memory-store.js'
import { writeAwarenessUpdate } from '../../shared/awareness.js'

describe('heartbeats', () => {
  test('a client that stops answering pings is terminated within interval plus timeout', async () => {
    const server = await startServer({ heartbeatIntervalMs: 100, heartbeatTimeoutMs: 300 })
    const name = docName()
    const observer = stockClient(server.url, name)
    await synced(observer.provider)
    const silent = rawClient(`${server.url}/${encodeURIComponent(name)}`, { autoPong: false })
    await opened(silent)
    // the silent client holds an awareness state: it must be removed when it is terminated
    silent.send(writeAwareness(writeAwarenessUpdate([{ clientId: 4242, clock: 1, state: '{"user":"silent"}' }])))
    await waitFor(() => observer.provider.awareness.getStates().has(4242), 5_000, 'observer sees the silent client')
    const started = Date.now()
    const { code } = await closed(silent, 5_000)
    const elapsed = Date.now() - started
    expect(code).toBe(1006) // terminated, no closing handshake
    expect(elapsed).toBeLessThan(5_000)
    await waitFor(() => !observer.provider.awareness.getStates().has(4242), 2_000, 'awareness removed')
    await waitFor(() => server.sessions.size === 1, 2_000, 'session ended')
  })

  test('a client that answers pings is kept', async () => {
    const server = await startServer({ heartbeatIntervalMs: 50, heartbeatTimeoutMs: 150 })
    const ws = rawClient(`${server.url}/${docName()}`)
    await opened(ws)
    let pings = 0
    ws.on('ping', () => { pings++ })
    await waitFor(() => pings >= 8, 5_000, 'eight pings')
    expect(ws.readyState).toBe(ws.OPEN)
  })

  test('a stall of the event loop (a big document loading) is not the peers\' silence: they are kept', async () => {
    const server = await startServer({ heartbeatIntervalMs: 100, heartbeatTimeoutMs: 300 })
    const ws = rawClient(`${server.url}/${docName()}`)
    await opened(ws)
    let pings = 0
    ws.on('ping', () => { pings++ })
    await waitFor(() => pings >= 2, 5_000, 'two pings')
    // the process (server and client alike) is held for five times the timeout, as a synchronous
    // load of a 100 MB document holds it for seconds
    const until = Date.now() + 1_500
    while (Date.now() < until) { /* held */ }
    const after = pings
    await waitFor(() => pings >= after + 5, 5_000, 'five pings more')
    expect(ws.readyState).toBe(ws.OPEN)
    expect(server.sessions.size).toBe(1)
  })

  test('sessions that connected together are pinged at their own phases, not in one tick', async () => {
    const server = await startServer({ heartbeatIntervalMs: 800, heartbeatTimeoutMs: 5_000 })
    const name = docName()
    const sockets = Array.from({ length: 40 }, () => rawClient(`${server.url}/${name}`))
    await Promise.all(sockets.map(opened))
    // the first ping each socket gets, after all were open
    const firsts = await Promise.all(sockets.map(ws => new Promise<number>(resolve => ws.once('ping', () => resolve(Date.now())))))
    for (const ws of sockets) ws.close()
    firsts.sort((a, b) => a - b)
    // the most pings any 50 ms window saw: all 40 when every session pings in the same tick
    let most = 0
    for (let i = 0, j = 0; i < firsts.length; i++) {
      while (firsts[i] - firsts[j] > 50) j++
      most = Math.max(most, i - j + 1)
    }
    expect(most).toBeLessThan(20)
    expect(firsts[firsts.length - 1] - firsts[0]).toBeGreaterThan(300)
  })

  test('a client whose document is still loading hears keepalives (the stock client\'s watchdog ignores pings)', async () => {
    // a store whose first read takes as long as a big document's build
    let release = (): void => {}
    const loading = new Promise<void>(resolve => { release = resolve })
    class SlowStore extends MemoryStore {
      override async load (name: string): Promise<Uint8Array[]> {
        await loading
        return await super.load(name)
      }
    }
    const server = await startServer({ persistence: new SlowStore(), heartbeatIntervalMs: 1_000, keepaliveMs: 300 })
    const ws = rawClient(`${server.url}/${docName()}`)
    const frames: Buffer[] = []
    ws.on('message', (data: Buffer) => frames.push(data))
    await opened(ws)
    try {
      await waitFor(() => frames.filter(frame => frame.equals(KEEPALIVE_FRAME)).length >= 2, 5_000)
    } finally {
      release()
    }
    // the document was never loaded meanwhile: nothing else reached the client
    expect(frames.every(frame => frame.equals(KEEPALIVE_FRAME))).toBe(true)
  })
})

