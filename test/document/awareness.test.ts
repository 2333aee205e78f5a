import { describe, expect, test } from 'vitest'
import { startServer, stockClient, synced, waitFor, docName, countAwarenessFrames } from '../support/helpers.js'

describe('awareness with the stock client', () => {
  test('states are relayed, and removed at once when a socket closes abruptly', async () => {
    const server = await startServer()
    const name = docName()
    const a = stockClient(server.url, name)
    const b = stockClient(server.url, name)
    a.provider.awareness.setLocalState({ user: 'a' })
    b.provider.awareness.setLocalState({ user: 'b' })
    await Promise.all([synced(a.provider), synced(b.provider)])
    await waitFor(() => b.provider.awareness.getStates().get(a.doc.clientID)?.user === 'a', 5_000, 'b sees a')
    // abrupt: terminate the TCP connection without a close frame
    const ws = a.provider.ws as unknown as { terminate: () => void }
    a.provider.shouldConnect = false
    ws.terminate()
    await waitFor(() => !b.provider.awareness.getStates().has(a.doc.clientID), 3_000, 'b no longer sees a')
  })

  test('clients that open a document together (a storm: most join while it loads) all sync and each sees every other state', async () => {
    const server = await startServer()
    const name = docName()
    const clients = Array.from({ length: 12 }, () => stockClient(server.url, name, { connect: false }))
    clients.forEach((client, i) => client.provider.awareness.setLocalState({ user: `u${i}` }))
    for (const client of clients) client.provider.connect()
    await Promise.all(clients.map(async client => await synced(client.provider)))
    for (const [i, client] of clients.entries()) {
      await waitFor(() => clients.every((other, j) => client.provider.awareness.getStates().get(other.doc.clientID)?.user === `u${j}`), 5_000, `client ${i} sees every state`)
    }
  })

  test('a client that reconnects is visible again at once', async () => {
    const server = await startServer()
    const name = docName()
    const a = stockClient(server.url, name)
    const b = stockClient(server.url, name)
    a.provider.awareness.setLocalState({ user: 'a' })
    await Promise.all([synced(a.provider), synced(b.provider)])
    await waitFor(() => b.provider.awareness.getStates().has(a.doc.clientID), 5_000, 'b sees a')
    a.provider.disconnect()
    await waitFor(() => !b.provider.awareness.getStates().has(a.doc.clientID), 5_000, 'removal')
    a.provider.connect()
    // the stock reference server would hide a for up to 15 s here (a's clock is behind the removal)
    await waitFor(() => b.provider.awareness.getStates().get(a.doc.clientID)?.user === 'a', 2_000, 'b sees a again')
  })

  test('two tabs of one browser, which pass relays to each other over BroadcastChannel, settle at once', async () => {
    const server = await startServer()
    const name = docName()
    const a = stockClient(server.url, name, { broadcastChannel: true })
    const b = stockClient(server.url, name, { broadcastChannel: true })
    await Promise.all([synced(a.provider), synced(b.provider)])
    const frames = [countAwarenessFrames(a.provider), countAwarenessFrames(b.provider)]
    // each tab takes a newer clock for its own state from the other and sends it back: a server
    // that raised that clock again would start an endless echo
    a.provider.awareness.setLocalStateField('cursor', 1)
    b.provider.awareness.setLocalStateField('cursor', 2)
    a.provider.awareness.setLocalStateField('cursor', 3)
    const cursor = (from: typeof a, of: typeof a): unknown => from.provider.awareness.getStates().get(of.doc.clientID)?.cursor
    await waitFor(() => cursor(b, a) === 3 && cursor(a, b) === 2, 5_000, 'each tab sees the other')
    await new Promise(resolve => setTimeout(resolve, 1_000)) // an echo runs for as long as it is given: the point of the test
    expect(frames[0]!() + frames[1]!()).toBeLessThan(20)
    expect([cursor(b, a), cursor(a, b)]).toEqual([3, 2])
    expect(server.documents.get(name)?.awareness.size).toBe(2)
  })

  test('a joining client receives the states already known', async () => {
    const server = await startServer()
    const name = docName()
    const a = stockClient(server.url, name)
    a.provider.awareness.setLocalState({ user: 'a' })
    await synced(a.provider)
    await waitFor(() => server.documents.get(name)?.awareness.size === 1, 5_000, 'server knows a')
    const b = stockClient(server.url, name)
    await waitFor(() => b.provider.awareness.getStates().get(a.doc.clientID)?.user === 'a', 5_000, 'b sees a')
  })

  test('an idle client with no awareness state is not dropped by the stock 30 s watchdog', { timeout: 60_000 }, async () => {
    const server = await startServer()
    const name = docName()
    const a = stockClient(server.url, name)
    a.provider.awareness.setLocalState(null)
    await synced(a.provider)
    let closes = 0
    a.provider.on('connection-close', () => { closes++ })
    const socket = a.provider.ws
    await new Promise(resolve => setTimeout(resolve, 36_000)) // longer than the watchdog: the point of the test
    expect(closes).toBe(0)
    expect(a.provider.ws).toBe(socket)
    expect(a.provider.wsconnected).toBe(true)
  })
})
