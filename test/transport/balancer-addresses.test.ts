import { describe, expect, onTestFinished, test } from 'vitest'
import type WebSocket from 'ws'
import { startBalancer, type Balancer } from '../../bench/balancer.js'
import { docName, opened, rawClient, waitFor } from '../support/helpers.js'
import { upgrade } from '../support/security-helpers.js'
import { startTandem, type TandemProcess } from '../support/cli.js'

// Clients on three loopback addresses (127.0.0.2-4, all loopback on Linux) reach one tandem
// process through the balancer, which adds X-Forwarded-For: the instance sees every connection
// come from 127.0.0.1, the balancer's address.
const CLIENTS = ['127.0.0.2', '127.0.0.3', '127.0.0.4']
const LIMIT = 2

async function behindBalancer (flags: readonly string[]): Promise<{ tandem: TandemProcess, balancer: Balancer, url: string }> {
  const tandem = await startTandem(['--persistence', 'memory', '--max-connections-per-ip', String(LIMIT), ...flags])
  const balancer = await startBalancer([tandem.http], { xfwd: true })
  onTestFinished(() => balancer.close())
  return { tandem, balancer, url: `${balancer.url}/${docName()}` }
}

/** Opens a connection from `localAddress` through the balancer; resolves once it is open. */
async function from (url: string, localAddress: string): Promise<WebSocket> {
  const ws = rawClient(url, { localAddress })
  await opened(ws)
  return ws
}

/** The JSON log lines of a process with this message. */
function logged (tandem: TandemProcess, msg: RegExp): Array<Record<string, unknown>> {
  return tandem.logs.map(line => JSON.parse(line) as Record<string, unknown>).filter(line => msg.test(String(line.msg)))
}

describe('per-address limits behind a balancer', () => {
  test('without --trust-proxy everyone behind the balancer shares its limit: HTTP 429, and one warning says why', async () => {
    const { tandem, url } = await behindBalancer([])
    await from(url, CLIENTS[0]!)
    await from(url, CLIENTS[1]!)
    // a third user, at another address, is refused: the instance counts the balancer's address
    const refused = await upgrade(url, { localAddress: CLIENTS[2] })
    expect(refused.status).toBe(429)
    expect(refused.body).toMatch(/more than 2 connections from one address/)
    await waitFor(() => logged(tandem, /^upgrade refused$/).some(line => line.address === '127.0.0.1'), 5_000, 'the refusal logged with the balancer address')
    const warnings = logged(tandem, /X-Forwarded-For from 127\.0\.0\.1, which --trust-proxy does not list/)
    expect(warnings).toHaveLength(1)
    expect(warnings[0]!.level).toBe(40)
  })

  test('with --trust-proxy naming the balancer, each client address has its own limit', async () => {
    const { tandem, url, balancer } = await behindBalancer(['--trust-proxy', '127.0.0.1'])
    for (const client of CLIENTS) {
      await from(url, client)
      await from(url, client)
    }
    expect(balancer.connections).toBe(CLIENTS.length * LIMIT)
    // over its own limit, one client is refused; the others are not affected
    expect((await upgrade(url, { localAddress: CLIENTS[1] })).status).toBe(429)
    await waitFor(() => logged(tandem, /^upgrade refused$/).some(line => line.address === CLIENTS[1]), 5_000, 'the refusal logged with the client address')
    const closing = await from(url, '127.0.0.5')
    closing.close(1000)
    await waitFor(() => logged(tandem, /^session ended$/).some(line => line.address === '127.0.0.5'), 5_000, 'session-end with the client address')
    expect(logged(tandem, /--trust-proxy/)).toEqual([])
  })

  test('X-Forwarded-For from a peer --trust-proxy does not list is ignored', async () => {
    const { tandem, url } = await behindBalancer(['--trust-proxy', '10.9.9.9'])
    await from(url, CLIENTS[0]!)
    await from(url, CLIENTS[1]!)
    expect((await upgrade(url, { localAddress: CLIENTS[2] })).status).toBe(429)
    // a client cannot pick its own address by sending the header either
    expect((await upgrade(url, { localAddress: CLIENTS[2], headers: { 'x-forwarded-for': '203.0.113.1' } })).status).toBe(429)
    await waitFor(() => logged(tandem, /^upgrade refused$/).length === 2, 5_000, 'two refusals logged')
    expect(logged(tandem, /^upgrade refused$/).map(line => line.address)).toEqual(['127.0.0.1', '127.0.0.1'])
    expect(logged(tandem, /which --trust-proxy does not list/)).toHaveLength(1)
  })
})
