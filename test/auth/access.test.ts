import { describe, expect, test, onTestFinished } from 'vitest'
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { once } from 'node:events'
import { createServer as createHttpServer } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import WebSocket from 'ws'
import { createServer } from '../../server/index.js'
import { readFrame } from '../../shared/messages.js'
import { startServer, stockClient, synced, waitFor, docName, tempDir, testLogger } from '../support/helpers.js'
import { upgrade, docUrl } from '../support/security-helpers.js'

function httpUrl (wsUrl: string): string {
  return wsUrl.replace(/^ws/, 'http')
}

describe('origins', () => {
  test('with --allowed-origins, other Origins (and none) are refused with 403 before the upgrade', async () => {
    const server = await startServer({ allowedOrigins: ['https://app.example', 'http://localhost:3000'] })
    const url = docUrl(server.url, docName())
    expect((await upgrade(url, { origin: 'https://app.example' })).status).toBe('open')
    expect((await upgrade(url, { origin: 'http://localhost:3000' })).status).toBe('open')
    expect((await upgrade(url, { origin: 'https://evil.example' })).status).toBe(403)
    expect((await upgrade(url, { origin: 'https://app.example.evil.example' })).status).toBe(403)
    expect((await upgrade(url, { origin: 'null' })).status).toBe(403)
    expect((await upgrade(url)).status).toBe(403)
    expect(server.documents.size).toBe(0)
  })

  test('without it, any Origin is admitted', async () => {
    const server = await startServer()
    expect((await upgrade(docUrl(server.url, docName()), { origin: 'https://anything.example' })).status).toBe('open')
  })
})

describe('document names', () => {
  test('control characters, over 512 characters, empty names and bad encodings are refused with 400', async () => {
    const server = await startServer()
    const refused = ['%00', 'a%0Ab', 'x%1Fy', 'del%7F', 'c1%C2%85', '%E0%A4%A', 'a'.repeat(513), '']
    for (const path of refused) {
      expect((await upgrade(`${server.url}/${path}`)).status, JSON.stringify(path)).toBe(400)
    }
    expect((await upgrade(`${server.url}/${'a'.repeat(512)}`)).status).toBe('open')
    expect((await upgrade(`${server.url}/${'é'.repeat(512)}`)).status).toBe('open')
    expect(server.documents.get('a'.repeat(513))).toBeUndefined()
  })
})

describe('admin endpoints', () => {
  test('with --admin-token, /api/* needs the bearer token; other paths do not', async () => {
    const token = 'admin-token-0123456789abcdef'
    const server = await startServer({ adminToken: token })
    server.router.add('GET', '/api/echo', () => ({ status: 200, body: { ok: true } }))
    const base = httpUrl(server.url)
    expect((await fetch(`${base}/api/echo`)).status).toBe(401)
    const refused = await fetch(`${base}/api/echo`, { headers: { authorization: 'Bearer wrong' } })
    expect(refused.status).toBe(401)
    expect(refused.headers.get('www-authenticate')).toContain('Bearer')
    expect((await fetch(`${base}/api/echo`, { headers: { authorization: `Basic ${token}` } })).status).toBe(401)
    expect((await fetch(`${base}/api/echo`, { headers: { authorization: `Bearer ${token}x` } })).status).toBe(401)
    const ok = await fetch(`${base}/api/echo`, { headers: { authorization: `Bearer ${token}` } })
    expect(ok.status).toBe(200)
    expect(await ok.json()).toEqual({ ok: true })
    // unknown /api routes do not reveal themselves without the token
    expect((await fetch(`${base}/api/nothing-here`)).status).toBe(401)
    expect((await fetch(`${base}/api`)).status).toBe(401)
    expect((await fetch(`${base}/api/nothing-here`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(404)
    expect((await fetch(`${base}/healthz`)).status).toBe(200)
  })

  test('without an admin token, /api/* is open', async () => {
    const server = await startServer()
    server.router.add('GET', '/api/echo', () => ({ status: 200, body: { ok: true } }))
    expect((await fetch(`${httpUrl(server.url)}/api/echo`)).status).toBe(200)
  })
})

describe('attaching to an existing server', () => {
  test('an http server: upgrades become sessions, requests stay the embedder\'s, close() leaves it running', async () => {
    const http = createHttpServer((req, res) => {
      if (req.url === '/mine') res.end('mine')
      else void tandem.router.handle(req, res)
    })
    http.listen(0, '127.0.0.1')
    await once(http, 'listening')
    onTestFinished(() => { http.closeAllConnections(); http.close() })
    const tandem = createServer({ server: http, persistence: 'memory', logger: testLogger })
    onTestFinished(() => tandem.close())
    await tandem.listen()
    const name = docName()
    const a = stockClient(tandem.url, name)
    const b = stockClient(tandem.url, name)
    await Promise.all([synced(a.provider), synced(b.provider)])
    a.text.insert(0, 'attached')
    await waitFor(() => b.text.toString() === 'attached')
    const base = httpUrl(tandem.url)
    expect(await (await fetch(`${base}/mine`)).text()).toBe('mine')
    expect((await fetch(`${base}/healthz`)).status).toBe(200)
    a.provider.destroy()
    b.provider.destroy()
    await tandem.close()
    expect(http.listening).toBe(true)
    expect(http.listenerCount('upgrade')).toBe(0)
    expect(await (await fetch(`${base}/mine`)).text()).toBe('mine')
  })

  test('an https server: Tandem serves wss:// on it', async () => {
    const dir = tempDir()
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost',
      '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' })
    const cert = readFileSync(join(dir, 'cert.pem'))
    const https = createHttpsServer({ key: readFileSync(join(dir, 'key.pem')), cert })
    https.listen(0, '127.0.0.1')
    await once(https, 'listening')
    onTestFinished(() => { https.closeAllConnections(); https.close() })
    const tandem = createServer({ server: https, persistence: 'memory', logger: testLogger })
    onTestFinished(() => tandem.close())
    await tandem.listen()
    expect(tandem.url).toMatch(/^wss:\/\/127\.0\.0\.1:\d+$/)
    const ws = new WebSocket(`${tandem.url}/${docName()}`, { ca: cert })
    onTestFinished(() => ws.terminate())
    const [data] = await once(ws, 'message') as [Buffer]
    expect(readFrame(data).type).toBe('sync-step1')
  })
})
