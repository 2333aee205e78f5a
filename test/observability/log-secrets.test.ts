import { describe, expect, test } from 'vitest'
import { randomUUID } from 'node:crypto'
import { pino } from 'pino'
import { startServer, docName, rawClient, opened, closed, waitFor } from '../support/helpers.js'
import { signToken, upgrade, docUrl } from '../support/security-helpers.js'
import { tandemClient } from '../support/tandem-helpers.js'
import { createLogger } from '../../server/observability/logger.js'

/** A destination that keeps every log line in memory. */
function memory (): { stream: { write (line: string): void }, lines: string[] } {
  const lines: string[] = []
  return { stream: { write: (line: string) => { lines.push(line) } }, lines }
}

/**
 * Connects with tokens in the query and in Sec-WebSocket-Protocol, with bad and expired ones,
 * uses the admin API, and ends sessions in several ways, all logged at debug level.
 */
async function traffic (logger: pino.Logger, secret: string, adminToken: string): Promise<string[]> {
  const server = await startServer({ authSecret: secret, adminToken, logger, heartbeatIntervalMs: 50, heartbeatTimeoutMs: 300 })
  const name = docName('secrets')
  const jwts: string[] = []
  const sign = async (claims: Record<string, unknown>, exp?: number): Promise<string> => {
    const token = await signToken(secret, claims, exp)
    jwts.push(token)
    return token
  }
  const viaQuery = rawClient(docUrl(server.url, name, { token: await sign({ sub: 'q-user' }) }))
  await opened(viaQuery)
  const viaProtocol = await upgrade(docUrl(server.url, name), { protocols: [await sign({ sub: 'p-user' })] })
  expect(viaProtocol.status).toBe('open')
  expect((await upgrade(docUrl(server.url, name, { token: await sign({ sub: 'late' }, -60) }))).status).toBe(401)
  expect((await upgrade(docUrl(server.url, name, { token: `${await sign({ sub: 'forged' })}x` }))).status).toBe(401)
  expect((await upgrade(docUrl(server.url, name, { token: await sign({ sub: 'other', docs: ['elsewhere'] }) }))).status).toBe(403)
  const client = tandemClient(server.url, name, { token: await sign({ sub: 'tandem-user' }) })
  await client.synced()
  await client.locks.acquire('block:1')
  const base = `http://127.0.0.1:${server.address.port}`
  const auth = { authorization: `Bearer ${adminToken}` }
  expect((await fetch(`${base}/api/documents`, { headers: auth })).status).toBe(200)
  expect((await fetch(`${base}/api/stats`, { headers: auth })).status).toBe(200)
  expect((await fetch(`${base}/api/documents/${encodeURIComponent(name)}/locks/block%3A1`, { method: 'DELETE', headers: auth })).status).toBe(200)
  expect((await fetch(`${base}/api/documents`, { headers: { authorization: `Bearer ${adminToken}x` } })).status).toBe(401)
  const silent = rawClient(docUrl(server.url, name, { token: await sign({ sub: 'silent' }) }), { autoPong: false })
  await opened(silent)
  await closed(silent)
  await client.leave()
  viaQuery.close(1000)
  await waitFor(() => server.sessions.size <= 1, 5_000, 'sessions ended')
  await server.close()
  return jwts
}

function expectClean (lines: string[], secrets: string[]): void {
  expect(lines.length).toBeGreaterThan(10)
  for (const line of lines) {
    for (const secret of secrets) expect(line.includes(secret), `a log line carries a secret: ${line}`).toBe(false)
  }
}

describe('no secrets in logs', () => {
  test('at debug level, through a plain pino logger (no redaction to hide behind)', async () => {
    const secret = `auth-secret-${randomUUID()}`
    const adminToken = `admin-token-${randomUUID()}`
    const { stream, lines } = memory()
    const jwts = await traffic(pino({ level: 'debug' }, stream), secret, adminToken)
    expect(lines.some(line => line.includes('"event":"session-end"'))).toBe(true)
    expectClean(lines, [secret, adminToken, ...jwts])
  })

  test('at debug level, through the server\'s own logger', async () => {
    const secret = `auth-secret-${randomUUID()}`
    const adminToken = `admin-token-${randomUUID()}`
    const { stream, lines } = memory()
    const jwts = await traffic(createLogger('debug', false, stream), secret, adminToken)
    expectClean(lines, [secret, adminToken, ...jwts])
  })
})
