import { describe, expect, test } from 'vitest'
import pino from 'pino'
import { Writable } from 'node:stream'
import { resolveOptions } from '../../server/config/config.js'
import { parseCli } from '../../server/config/cli-options.js'
import { startServer, docName, rawClient, opened, waitFor, closed } from '../support/helpers.js'
import { upgrade, docUrl } from '../support/security-helpers.js'

/** A logger whose JSON lines land in `lines`. */
function capturingLogger (): { logger: pino.Logger, lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = []
  const stream = new Writable({
    write (chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line !== '') lines.push(JSON.parse(line) as Record<string, unknown>)
      done()
    }
  })
  return { logger: pino({ level: 'info' }, stream), lines }
}

/** Opens a connection that says it forwards for `client`; resolves once it is open. */
async function via (url: string, client: string): Promise<void> {
  const ws = rawClient(url, { headers: { 'x-forwarded-for': client } })
  await opened(ws)
}

describe('--trust-proxy', () => {
  test('parsed as a list; a bad address is refused naming the option', () => {
    expect(parseCli(['--trust-proxy', '127.0.0.1, 10.0.0.0/8'], {}).trustProxy).toEqual(['127.0.0.1', '10.0.0.0/8'])
    expect(parseCli([], { TANDEM_TRUST_PROXY: 'loopback' }).trustProxy).toEqual(['loopback'])
    expect(resolveOptions({}).trustProxy).toEqual([])
    expect(() => resolveOptions({ trustProxy: ['not an address'] })).toThrow(/trustProxy/)
  })

  test('from a trusted proxy, each forwarded client has its own per-address limit, and logs name it', async () => {
    const { logger, lines } = capturingLogger()
    const server = await startServer({ maxConnectionsPerIp: 2, trustProxy: ['127.0.0.1'], logger })
    const url = docUrl(server.url, docName())
    // six connections through the one proxy address: two per client, all admitted
    for (const client of ['203.0.113.1', '203.0.113.2', '203.0.113.3']) {
      await via(url, client)
      await via(url, client)
    }
    expect(server.connections.count('203.0.113.2')).toBe(2)
    // a third from one client is over its own limit
    expect((await upgrade(url, { headers: { 'x-forwarded-for': '198.51.100.7, 203.0.113.1' } })).status).toBe(429)
    expect(lines.some(line => line.msg === 'upgrade refused' && line.address === '203.0.113.1')).toBe(true)
    // the session-end line carries the client's address, not the proxy's
    const ws = rawClient(url, { headers: { 'x-forwarded-for': '192.0.2.44' } })
    await opened(ws)
    ws.close(1000)
    await closed(ws)
    await waitFor(() => lines.some(line => line.event === 'session-end' && line.address === '192.0.2.44'), 5_000, 'session-end with the client address')
    expect(lines.some(line => /X-Forwarded-For/.test(String(line.msg)))).toBe(false)
  })

  test('from anyone else the header is ignored (the limit is the peer\'s), and a warning says why once', async () => {
    const { logger, lines } = capturingLogger()
    const server = await startServer({ maxConnectionsPerIp: 2, trustProxy: ['10.9.9.9'], logger })
    const url = docUrl(server.url, docName())
    await via(url, '203.0.113.1')
    await via(url, '203.0.113.2')
    expect((await upgrade(url, { headers: { 'x-forwarded-for': '203.0.113.3' } })).status).toBe(429)
    expect(lines.some(line => line.msg === 'upgrade refused' && line.address === '127.0.0.1')).toBe(true)
    // a trust list that does not name this peer: the proxy is probably misconfigured
    expect(lines.filter(line => /from 127\.0\.0\.1, which --trust-proxy does not list/.test(String(line.msg)))).toHaveLength(1)

    const plain = capturingLogger()
    const unset = await startServer({ maxConnectionsPerIp: 2, logger: plain.logger })
    const url2 = docUrl(unset.url, docName())
    await via(url2, '203.0.113.1')
    await via(url2, '203.0.113.2')
    expect((await upgrade(url2, { headers: { 'x-forwarded-for': '203.0.113.3' } })).status).toBe(429)
    const warnings = plain.lines.filter(line => /--trust-proxy does not list/.test(String(line.msg)))
    expect(warnings).toHaveLength(1)
    expect(warnings[0]!.level).toBe(40)
  })

  test('the warning: also for a Forwarded header, and never with the per-address limit off', async () => {
    const forwarded = capturingLogger()
    const server = await startServer({ maxConnectionsPerIp: 5, logger: forwarded.logger })
    const url = docUrl(server.url, docName())
    await opened(rawClient(url))
    expect(forwarded.lines.some(line => /--trust-proxy/.test(String(line.msg)))).toBe(false)
    await opened(rawClient(url, { headers: { forwarded: 'for=203.0.113.9' } }))
    await waitFor(() => forwarded.lines.some(line => /Forwarded from 127\.0\.0\.1, which --trust-proxy does not list/.test(String(line.msg))), 2_000, 'the warning')

    const off = capturingLogger()
    const unlimited = await startServer({ maxConnectionsPerIp: 0, logger: off.logger })
    await via(docUrl(unlimited.url, docName()), '203.0.113.1')
    expect(off.lines.some(line => /--trust-proxy/.test(String(line.msg)))).toBe(false)
  })
})
