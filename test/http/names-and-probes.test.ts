import { describe, expect, test, onTestFinished } from 'vitest'
import { connect, type Socket } from 'node:net'
import { request } from 'node:http'
import { startServer, waitFor, docName, stockClient, synced } from '../support/helpers.js'
import { tandemClient } from '../support/tandem-helpers.js'
import { upgrade } from '../support/security-helpers.js'
import { isTandemError } from '../../client/index.js'
import { splitTarget } from '../../server/transport/request-target.js'
import { codePointCount } from '../../shared/code-points.js'
import type { TandemServer } from '../../server/index.js'

/**
 * Sends a WebSocket handshake for `path` exactly as written (a WHATWG URL, as browsers and `ws`
 * use, would resolve `..` first). Resolves with the status line; the socket stays open.
 */
function rawUpgrade (server: TandemServer, path: string): Promise<{ status: string, socket: Socket }> {
  return new Promise((resolve, reject) => {
    const socket = connect(server.address.port, '127.0.0.1', () => {
      socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n')
    })
    onTestFinished(() => { socket.destroy() })
    socket.once('data', chunk => resolve({ status: chunk.toString('latin1').split('\r\n')[0] as string, socket }))
    socket.once('error', reject)
  })
}

/** An HTTP request with the path exactly as written; status, headers and body. */
function rawHttp (server: TandemServer, method: string, path: string): Promise<{ status: number, length: string | undefined, body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: server.address.port, method, path }, res => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { body += chunk })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, length: res.headers['content-length'], body }))
    })
    req.on('error', reject)
    req.end()
  })
}

describe('document names in request paths', () => {
  test('the name is the raw path after the first /: /a/../b opens "a/../b", on the WebSocket and the HTTP API alike', async () => {
    const server = await startServer()
    const prefix = docName()
    const { status } = await rawUpgrade(server, `/${prefix}/a/../b`)
    expect(status).toBe('HTTP/1.1 101 Switching Protocols')
    await waitFor(() => server.documents.get(`${prefix}/a/../b`) !== undefined, 5_000, 'the dotted name loaded')
    expect(server.documents.get(`${prefix}/b`)).toBeUndefined()
    const presence = await rawHttp(server, 'GET', `/api/documents/${prefix}/a/../b/presence`)
    expect(presence.status).toBe(200)
    expect(JSON.parse(presence.body)).toHaveLength(1)
    const listed = JSON.parse((await rawHttp(server, 'GET', '/api/documents')).body) as Array<{ name: string }>
    expect(listed.map(row => row.name)).toContain(`${prefix}/a/../b`)
  })

  test('//x is the document "/x", not a host: the stock client syncs it and the API finds it', async () => {
    const server = await startServer()
    const name = `/${docName()}`
    // the stock client joins the server URL and the room with a "/": ws://host:port//<name>
    const client = stockClient(server.url, name)
    await synced(client.provider)
    client.text.insert(0, 'slash')
    await waitFor(() => server.documents.get(name)?.ydoc.getText('t').toString() === 'slash', 5_000, 'the edit reached "/x"')
    const presence = await rawHttp(server, 'GET', `/api/documents/${name}/presence`)
    expect(presence.status).toBe(200)
    expect(JSON.parse(presence.body)).toHaveLength(1)
    const { status } = await rawUpgrade(server, `/${name}`)
    expect(status).toBe('HTTP/1.1 101 Switching Protocols')
  })

  test('the 512-character limit counts characters (code points), not UTF-16 units', async () => {
    const server = await startServer()
    const emoji = '\u{1F600}'
    const longest = `${docName('e')}-`.padEnd(512 - 100, 'x') + emoji.repeat(100)
    expect(codePointCount(longest)).toBe(512)
    expect(longest.length).toBe(612)
    const client = stockClient(server.url, longest)
    await synced(client.provider)
    expect(server.documents.get(longest)).toBeDefined()
    const over = await upgrade(`${server.url}/${encodeURIComponent(longest + emoji)}`)
    expect(over.status).toBe(400)
    expect(over.body).toMatch(/TANDEM_ERR_INVALID_DOCUMENT_NAME|512 characters/)
  })

  test('lock resources count code points too: 256 emoji are one name, 257 are refused', async () => {
    const server = await startServer()
    const ada = tandemClient(server.url, docName(), { user: { id: 'ada' } })
    await ada.synced()
    const lock = await ada.locks.acquire('\u{1F512}'.repeat(256))
    expect(lock.resource).toHaveLength(512)
    const err = await ada.locks.acquire('\u{1F512}'.repeat(257)).catch((e: unknown) => e)
    expect(isTandemError(err, 'TANDEM_ERR_INVALID_RESOURCE')).toBe(true)
  })

  test('splitTarget keeps the path raw and reads the query', () => {
    expect(splitTarget('/a/../b?x=1')).toMatchObject({ path: '/a/../b' })
    expect(splitTarget('/a/../b?x=1').query.get('x')).toBe('1')
    expect(splitTarget('//x').path).toBe('//x')
    expect(splitTarget('http://proxy.example:8080//x?token=t').path).toBe('//x')
    expect(splitTarget('/doc#frag').path).toBe('/doc')
    expect(splitTarget(undefined).path).toBe('/')
  })
})

describe('HEAD probes', () => {
  test('HEAD /healthz and /readyz answer like GET, without a body', async () => {
    const server = await startServer()
    for (const path of ['/healthz', '/readyz']) {
      const get = await rawHttp(server, 'GET', path)
      const head = await rawHttp(server, 'HEAD', path)
      expect(head.status).toBe(200)
      expect(head.body).toBe('')
      expect(head.length).toBe(get.length)
    }
    // POST is still refused
    expect((await rawHttp(server, 'POST', '/healthz')).status).toBe(405)
  })

  test('HEAD under /api needs the admin token, as GET does', async () => {
    const server = await startServer({ adminToken: 'admin-token-admin-token' })
    expect((await rawHttp(server, 'HEAD', '/api/documents')).status).toBe(401)
    const res = await fetch(`http://127.0.0.1:${server.address.port}/api/documents`, { method: 'HEAD', headers: { authorization: 'Bearer admin-token-admin-token' } })
    expect(res.status).toBe(200)
    expect(await res.text()).toBe('')
  })
})
