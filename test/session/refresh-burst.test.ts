import { describe, expect, test } from 'vitest'
import type WebSocket from 'ws'
import { startServer, docName, rawClient, waitFor } from '../support/helpers.js'
import { signToken, docUrl } from '../support/security-helpers.js'
import { readFrame, writeTandem } from '../../shared/messages.js'

const SECRET = 'refresh-burst-secret'
const CONNECTIONS = 30

/** The Tandem messages a raw connection receives, with their arrival times (call before open). */
function tandemMessages (ws: WebSocket): Array<{ at: number, type: string }> {
  const seen: Array<{ at: number, type: string }> = []
  ws.on('message', (data: Buffer) => {
    const frame = readFrame(data)
    if (frame.type === 'tandem') seen.push({ at: Date.now(), type: frame.message.type })
  })
  return seen
}

describe('many tokens sharing an exp', () => {
  test('are warned over a window, not at once; refreshed together, every one is applied', async () => {
    const server = await startServer({ authSecret: SECRET })
    const name = docName()
    // an 8 s token (7 to 8 s left): warned once 3/8 to 1/2 of it passed, 2.6 to 4 s from now
    const token = await signToken(SECRET, { sub: 'shared' }, 8)
    const exp = (Math.floor(Date.now() / 1000) + 8) * 1000
    const sockets = Array.from({ length: CONNECTIONS }, () => rawClient(docUrl(server.url, name, { tandem: '1', token })))
    const messages = sockets.map(ws => tandemMessages(ws))
    await waitFor(() => server.sessions.size === CONNECTIONS, 5_000, 'all connected')
    const warnings = (): number[] => messages.flatMap(seen => seen.filter(m => m.type === 'token-expiring').map(m => m.at))
    await waitFor(() => warnings().length === CONNECTIONS, 8_000, 'every connection warned')
    const times = warnings()
    // uniform over about a second: 30 of them within 300 ms would be a burst
    expect(Math.max(...times) - Math.min(...times)).toBeGreaterThan(300)
    for (const at of times) expect(exp - at).toBeGreaterThan(2_000)

    // all refresh in one go: every refresh is applied (in slices), none refused
    const fresh = await signToken(SECRET, { sub: 'shared', name: 'Renamed' }, 3600)
    for (const ws of sockets) ws.send(writeTandem({ type: 'refresh', token: fresh }))
    await waitFor(() => messages.every(seen => seen.some(m => m.type === 'refreshed')), 5_000, 'every refresh applied')
    expect(server.sessions.size).toBe(CONNECTIONS)
    for (const session of server.sessions) expect(session.identity).toMatchObject({ name: 'Renamed', expiresAt: expect.any(Number) })
    expect([...server.sessions].every(s => (s.identity.expiresAt ?? 0) > exp + 3_000_000)).toBe(true)
    for (const ws of sockets) ws.terminate()
  })

  test('a refresh the hook does not answer within the auth timeout keeps the session; the next refresh is checked', async () => {
    let calls = 0
    const server = await startServer({
      authTimeoutMs: 300,
      // the first refresh (second call) never answers
      authenticate: () => ++calls === 2 ? new Promise(() => {}) : { userId: 'ada', name: `Ada ${calls}` }
    })
    const ws = rawClient(docUrl(server.url, docName(), { tandem: '1', token: 'x' }))
    const seen = tandemMessages(ws)
    await waitFor(() => seen.some(m => m.type === 'welcome'), 5_000, 'welcome')
    ws.send(writeTandem({ type: 'refresh', token: 'y' }))
    const sent = Date.now()
    // a second refresh while the first is checked would be a flood (4400): wait for the timeout
    await new Promise(resolve => setTimeout(resolve, 700))
    expect(calls).toBe(2)
    expect(seen.some(m => m.type === 'refreshed')).toBe(false)
    const [session] = server.sessions
    expect(session?.identity.name).toBe('Ada 1')
    ws.send(writeTandem({ type: 'refresh', token: 'z' }))
    await waitFor(() => seen.some(m => m.type === 'refreshed'), 5_000, 'the next refresh applied')
    expect(Date.now() - sent).toBeGreaterThan(300)
    expect(session?.identity.name).toBe('Ada 3')
    expect(server.sessions.size).toBe(1)
    ws.terminate()
  })
})
