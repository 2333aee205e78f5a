import { describe, expect, test } from 'vitest'
import { randomUUID } from 'node:crypto'
import { pino } from 'pino'
import { startServer, waitFor, docName, rawClient, opened, closed } from '../support/helpers.js'
import { tandemClient, dropSocket } from '../support/tandem-helpers.js'
import type { StatsSummary } from '../../server/observability/stats.js'
import type { TandemServer } from '../../server/index.js'

/** A pino logger whose lines are kept in memory, parsed. */
function memoryLogger (level = 'info'): { logger: pino.Logger, lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = []
  const logger = pino({ level }, { write: (line: string) => { lines.push(JSON.parse(line) as Record<string, unknown>) } })
  return { logger, lines }
}

async function stats (server: TandemServer, adminToken: string): Promise<StatsSummary> {
  const res = await fetch(`http://127.0.0.1:${server.address.port}/api/stats`, { headers: { authorization: `Bearer ${adminToken}` } })
  expect(res.status).toBe(200)
  return await res.json() as StatsSummary
}

describe('GET /api/stats and the session-end event', () => {
  test('a scripted mix of ends: leave, disconnect, timeout, kicked; a resume is one session', async () => {
    const adminToken = `admin-${randomUUID()}`
    const { logger, lines } = memoryLogger()
    const server = await startServer({ adminToken, logger, heartbeatIntervalMs: 50, heartbeatTimeoutMs: 400, reconnectGraceMs: 1_000 })
    const busy = docName('busy')
    const quiet = docName('quiet')
    const url = (doc: string): string => `${server.url}/${encodeURIComponent(doc)}`

    // busy: two Tandem clients edit and leave; one of them drops and resumes first
    const ada = tandemClient(server.url, busy, { user: { id: 'ada', name: 'Ada' } })
    const resumer = tandemClient(server.url, busy, { user: { id: 'rex', name: 'Rex' } })
    await Promise.all([ada.synced(), resumer.synced()])
    for (let i = 0; i < 5; i++) ada.doc.getText('t').insert(0, `edit ${i} `)
    await ada.flushed()
    const firstId = resumer.sessionId
    dropSocket(resumer)
    await waitFor(() => resumer.status === 'connected' && server.sessions.size === 2, 5_000, 'resumed')
    expect(resumer.sessionId).toBe(firstId)
    resumer.doc.getText('t').insert(0, 'after resume ')
    await resumer.flushed()
    await ada.leave()
    await resumer.leave()

    // quiet: a stock-style socket dropped, a Tandem client dropped for good, a silent one, a kicked one
    const dropped = rawClient(url(quiet))
    await opened(dropped)
    await waitFor(() => server.sessions.size === 1, 5_000, 'raw session open')
    dropped.terminate()
    const gone = tandemClient(server.url, quiet, { user: { id: 'gus', name: 'Gus' } })
    await gone.synced()
    dropSocket(gone)
    gone.destroy()
    const silent = rawClient(url(quiet), { autoPong: false })
    await opened(silent)
    const kicked = tandemClient(server.url, quiet, { user: { id: 'kim', name: 'Kim' } })
    const kickedErrors: Error[] = []
    kicked.on('error', err => kickedErrors.push(err))
    await kicked.synced()
    const kick = await fetch(`http://127.0.0.1:${server.address.port}/api/documents/${encodeURIComponent(quiet)}/users/kim`, {
      method: 'DELETE', headers: { authorization: `Bearer ${adminToken}` }
    })
    expect(kick.status).toBe(200)
    expect(await kick.json()).toEqual({ kicked: 1 })
    await waitFor(() => kickedErrors.some(err => (err as { code?: string }).code === 'TANDEM_ERR_KICKED'), 5_000, 'client told it was kicked')
    expect((await closed(silent)).code).toBe(1006)

    await waitFor(async () => (await stats(server, adminToken)).sessionsEnded === 6, 5_000, 'six sessions ended')
    const summary = await stats(server, adminToken)
    expect(summary.sessionsStarted).toBe(6)
    expect(summary.endsByReason).toEqual({ leave: 2, disconnect: 2, timeout: 1, kicked: 1 })
    const d = summary.durationMs
    expect(d).not.toBeNull()
    expect(d!.p50).toBeGreaterThanOrEqual(0)
    expect(d!.p50).toBeLessThanOrEqual(d!.p90)
    expect(d!.p90).toBeLessThanOrEqual(d!.p99)
    expect(d!.p99).toBeLessThanOrEqual(d!.max)
    expect(d!.max).toBeLessThan(60_000)
    expect(summary.busiestDocuments.map(doc => doc.name)).toEqual([busy, quiet])
    expect(summary.busiestDocuments[0]).toMatchObject({ sessionsStarted: 2 })
    expect(summary.busiestDocuments[0]!.updates).toBeGreaterThanOrEqual(6)
    expect(summary.busiestDocuments[1]).toEqual({ name: quiet, sessionsStarted: 4, updates: 0 })

    // one structured event per session end, the resumed session included once
    const ends = lines.filter(line => line.event === 'session-end')
    expect(ends).toHaveLength(6)
    for (const end of ends) {
      expect(Object.keys(end)).toEqual(expect.arrayContaining(['doc', 'session', 'user', 'reason', 'code', 'durationMs',
        'updatesReceived', 'updatesSent', 'bytesReceived', 'bytesSent']))
      expect(end.level).toBe(30)
    }
    const rex = ends.find(end => end.user === 'rex')
    expect(rex).toMatchObject({ doc: busy, reason: 'leave', code: 1000, session: firstId })
    expect(rex!.updatesReceived as number).toBeGreaterThanOrEqual(1)
    expect(rex!.updatesSent as number).toBeGreaterThanOrEqual(1)
    expect(ends.find(end => end.user === 'ada')).toMatchObject({ reason: 'leave', code: 1000 })
    expect((ends.find(end => end.user === 'ada')!.bytesReceived as number)).toBeGreaterThan(0)
    expect(ends.find(end => end.user === 'gus')).toMatchObject({ doc: quiet, reason: 'disconnect', code: 1006 })
    expect(ends.find(end => end.user === 'kim')).toMatchObject({ reason: 'kicked', code: 4403 })
    expect(ends.filter(end => end.reason === 'timeout')).toHaveLength(1)
  })

  test('/api/stats needs the admin token; /metrics does not', async () => {
    const adminToken = `admin-${randomUUID()}`
    const server = await startServer({ adminToken })
    const base = `http://127.0.0.1:${server.address.port}`
    expect((await fetch(`${base}/api/stats`)).status).toBe(401)
    expect((await fetch(`${base}/api/stats`, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401)
    expect((await fetch(`${base}/api/documents/x/users/y`, { method: 'DELETE' })).status).toBe(401)
    expect((await fetch(`${base}/metrics`)).status).toBe(200)
    const empty = await stats(server, adminToken)
    expect(empty).toMatchObject({ sessionsStarted: 0, sessionsEnded: 0, endsByReason: {}, durationMs: null, busiestDocuments: [] })
    expect(empty.windowMs).toBeGreaterThan(0)
  })
})
