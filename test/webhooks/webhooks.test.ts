import { describe, expect, onTestFinished, test } from 'vitest'
import { createServer as createHttpServer, type IncomingMessage } from 'node:http'
import { once } from 'node:events'
import { createHmac, timingSafeEqual } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import { startServer, stockClient, synced, waitFor, docName, tempDir } from '../support/helpers.js'
import { tandemClient } from '../support/tandem-helpers.js'
import { runTandem, startTandem } from '../support/cli.js'
import { POSTGRES_URL, pgSchema, postgresUp, testWith } from '../support/services.js'
import { parseCli } from '../../server/config/cli-options.js'
import { resolveOptions } from '../../server/config/config.js'

const SECRET = 'whsec-test'

interface Received {
  id: string
  type: string
  createdAt: number
  document: string
  data: any // eslint-disable-line @typescript-eslint/no-explicit-any -- each type has its own data
  /** The signature checked out against SECRET. */
  verified: boolean
}

/** Verifies a `Tandem-Signature` header as a receiver would. */
function verify (header: string | undefined, body: string, secret: string): boolean {
  const match = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header ?? '')
  if (match === null) return false
  const expected = createHmac('sha256', secret).update(`${match[1]}.${body}`).digest()
  return timingSafeEqual(expected, Buffer.from(match[2] as string, 'hex'))
}

/** A real HTTP receiver on port 0: answers 200, or 503 while `failing`; records every POST. */
async function receiver () {
  const state = { failing: false, hanging: false, received: [] as Received[], accepted: [] as Received[] }
  const server = createHttpServer((req: IncomingMessage, res) => {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (chunk: string) => { body += chunk })
    req.on('end', () => {
      const event = { ...JSON.parse(body), verified: verify(req.headers['tandem-signature'] as string, body, SECRET) } as Received
      state.received.push(event)
      // no answer at all: Tandem's --webhook-timeout ends the attempt
      if (state.hanging) return
      if (state.failing) {
        res.writeHead(503).end()
        return
      }
      state.accepted.push(event)
      res.writeHead(204).end()
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  onTestFinished(() => new Promise<void>(resolve => {
    server.closeAllConnections()
    server.close(() => resolve())
  }))
  server.unref()
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`
  return { url, state, server }
}

const fast = { webhookSecret: SECRET, webhookDebounceMs: 50, webhookBackoffMs: 50, webhookTimeoutMs: 2_000 }

function ofDocument (events: readonly Received[], name: string): Received[] {
  return events.filter(event => event.document === name)
}

describe('webhooks', () => {
  test('signed events: document.updated (debounced), version.created, lock.acquired and lock.released, session.ended', async () => {
    const hook = await receiver()
    const server = await startServer({ ...fast, webhookDebounceMs: 300, webhookUrls: [hook.url] })
    const name = docName()
    const ada = stockClient(server.url, name, { params: { user: 'ada' } })
    await synced(ada.provider)
    for (let i = 0; i < 5; i++) ada.text.insert(0, 'x')
    await waitFor(() => ofDocument(hook.state.accepted, name).some(e => e.type === 'document.updated'), 5_000, 'document.updated')
    const tandem = tandemClient(server.url, name, { user: { id: 'bob' } })
    await tandem.synced()
    const lock = await tandem.locks.acquire('block:1')
    await lock.release()
    const version = await fetch(`${server.url.replace(/^ws/, 'http')}/api/documents/${encodeURIComponent(name)}/versions`, { method: 'POST' })
    const info = await version.json() as { id: string }
    ada.provider.destroy()
    await waitFor(() => ofDocument(hook.state.accepted, name).filter(e => ['lock.released', 'version.created', 'session.ended'].includes(e.type)).length >= 3, 5_000, 'the other events')
    const events = ofDocument(hook.state.accepted, name)
    expect(events.every(e => e.verified)).toBe(true)
    // five edits in one debounce window: one event
    expect(events.filter(e => e.type === 'document.updated')).toHaveLength(1)
    expect(events.find(e => e.type === 'document.updated')?.data).toEqual({ authors: ['ada'] })
    const acquired = events.find(e => e.type === 'lock.acquired')
    expect(acquired?.data).toMatchObject({ resource: 'block:1', userId: 'bob', token: lock.token, reason: 'granted' })
    expect(events.find(e => e.type === 'lock.released')?.data).toMatchObject({ resource: 'block:1', token: lock.token, reason: 'release' })
    expect(events.find(e => e.type === 'version.created')?.data.version).toMatchObject({ id: info.id, authors: ['ada'] })
    const ended = events.find(e => e.type === 'session.ended')
    expect(ended?.data).toMatchObject({ userId: 'ada', reason: 'disconnect' })
    expect(typeof ended?.data.durationMs).toBe('number')
    expect(typeof ended?.data.sessionId).toBe('string')
    for (const e of events) expect(e).toMatchObject({ id: expect.any(String), createdAt: expect.any(Number), document: name })
    // a forged signature does not verify
    expect(verify('t=1,v1=' + '0'.repeat(64), '{}', SECRET)).toBe(false)
    const text = await (await fetch(`${server.url.replace(/^ws/, 'http')}/metrics`)).text()
    expect(text).toMatch(/tandem_webhook_events_total\{outcome="delivered"\} [1-9]/)
    expect(text).toMatch(/tandem_webhook_events_pending 0/)
  })

  test('document.deleted: sent once when DELETE /api/documents/:name deletes a document, signed, with empty data', async () => {
    const hook = await receiver()
    const server = await startServer({ ...fast, webhookUrls: [hook.url] })
    const name = docName()
    const ada = stockClient(server.url, name, { params: { user: 'ada' } })
    await synced(ada.provider)
    ada.text.insert(0, 'to be deleted')
    await waitFor(() => ofDocument(hook.state.accepted, name).some(e => e.type === 'document.updated'), 5_000, 'document.updated')
    ada.provider.shouldConnect = false
    const response = await fetch(`${server.url.replace(/^ws/, 'http')}/api/documents/${encodeURIComponent(name)}`, { method: 'DELETE' })
    expect(response.status).toBe(200)
    await waitFor(() => ofDocument(hook.state.accepted, name).some(e => e.type === 'document.deleted'), 5_000, 'document.deleted')
    const deleted = ofDocument(hook.state.accepted, name).filter(e => e.type === 'document.deleted')
    expect(deleted).toHaveLength(1)
    expect(deleted[0]).toMatchObject({ data: {}, verified: true })
  })

  test('a receiver down for a while: every event arrives, in order per document, duplicates only with the same id', async () => {
    const hook = await receiver()
    hook.state.failing = true
    const server = await startServer({ ...fast, webhookUrls: [hook.url], persistence: 'sqlite', dataDir: tempDir() })
    const names = [docName(), docName()]
    const emitted: Record<string, number> = {}
    // session.ended events, a known number per document, while the receiver fails
    for (const name of names) {
      emitted[name] = 0
      for (let i = 0; i < 4; i++) {
        const client = stockClient(server.url, name, { params: { user: `u${i}` } })
        await synced(client.provider)
        client.provider.destroy()
        emitted[name]++
      }
    }
    await waitFor(() => hook.state.received.filter(e => e.type === 'session.ended').length >= 4, 5_000, 'failed attempts')
    const retried = await (await fetch(`${server.url.replace(/^ws/, 'http')}/metrics`)).text()
    expect(retried).toMatch(/tandem_webhook_events_total\{outcome="retried"\} [1-9]/)
    hook.state.failing = false
    for (const name of names) {
      await waitFor(() => ofDocument(hook.state.accepted, name).filter(e => e.type === 'session.ended').length === emitted[name], 15_000, 'every event')
      const ended = ofDocument(hook.state.accepted, name).filter(e => e.type === 'session.ended')
      // in order: the users connected and left u0, u1, u2, u3
      expect(ended.map(e => e.data.userId)).toEqual(['u0', 'u1', 'u2', 'u3'])
      expect(new Set(ended.map(e => e.id)).size).toBe(ended.length)
      // every attempt of one event carried the same id and body
      const attempts = ofDocument(hook.state.received, name).filter(e => e.type === 'session.ended')
      expect(new Set(attempts.map(e => e.id))).toEqual(new Set(ended.map(e => e.id)))
    }
  })

  test('a receiver that does not answer: editing goes on, the event is retried after the timeout and arrives once it answers', async () => {
    const hook = await receiver()
    hook.state.hanging = true
    const server = await startServer({ ...fast, webhookTimeoutMs: 200, webhookUrls: [hook.url] })
    const name = docName()
    const writer = tandemClient(server.url, name, { user: { id: 'ada' } })
    await writer.synced()
    writer.doc.getText('t').insert(0, 'first')
    await waitFor(() => ofDocument(hook.state.received, name).length >= 2, 10_000, 'two attempts, the first one timed out')
    // editing is not held up by the receiver: edits are stored and acknowledged meanwhile
    for (let i = 0; i < 20; i++) writer.doc.getText('t').insert(0, String(i % 10))
    await writer.flushed()
    hook.state.hanging = false
    await waitFor(() => ofDocument(hook.state.accepted, name).filter(e => e.type === 'document.updated').length >= 2, 10_000, 'the events arrive')
    const attempts = ofDocument(hook.state.received, name)
    const first = attempts[0] as Received
    // every attempt of the first event carried its id; it was accepted once
    expect(attempts.filter(e => e.id === first.id).length).toBeGreaterThanOrEqual(2)
    expect(ofDocument(hook.state.accepted, name).filter(e => e.id === first.id)).toHaveLength(1)
    expect(ofDocument(hook.state.accepted, name)[0]?.id).toBe(first.id)
  })

  test('events pending when Tandem is SIGKILLed are sent after the restart', async () => {
    const hook = await receiver()
    hook.state.failing = true
    const dir = tempDir()
    const args = ['--data', dir, '--webhook-url', hook.url, '--webhook-secret', SECRET, '--webhook-backoff', '100', '--webhook-debounce', '10', '--webhook-timeout', '1000']
    const first = await startTandem(args)
    const name = docName()
    const client = stockClient(first.url, name, { params: { user: 'ada' } })
    await synced(client.provider)
    client.text.insert(0, 'x')
    await waitFor(() => ofDocument(hook.state.received, name).some(e => e.type === 'document.updated'), 10_000, 'a failed attempt')
    client.provider.destroy()
    // in order per document: session.ended waits in the outbox behind the failing document.updated
    await waitFor(async () => /tandem_webhook_events_pending 2\b/.test(await (await fetch(`${first.http}/metrics`)).text()), 10_000, 'two events pending')
    await first.stop('SIGKILL')
    hook.state.failing = false
    await startTandem(args)
    // an event the killed process was sending waits for its lease (timeout + 5 s) to end
    await waitFor(() => ofDocument(hook.state.accepted, name).length >= 2, 15_000, 'sent after the restart')
    expect(ofDocument(hook.state.accepted, name).map(e => e.type)).toEqual(['document.updated', 'session.ended'])
    expect(hook.state.accepted.every(e => e.verified)).toBe(true)
  })

  testWith(postgresUp)('two instances sharing PostgreSQL: each event is sent once', async () => {
    const hook = await receiver()
    hook.state.failing = true
    const persistence = `${POSTGRES_URL}?schema=${pgSchema()}`
    const a = await startServer({ ...fast, webhookUrls: [hook.url], persistence })
    const b = await startServer({ ...fast, webhookUrls: [hook.url], persistence })
    const names = [docName(), docName(), docName()]
    let count = 0
    for (const name of names) {
      for (const server of [a, b]) {
        const client = stockClient(server.url, name)
        await synced(client.provider)
        client.provider.destroy()
        count++
      }
    }
    await waitFor(() => hook.state.received.length >= 3, 5_000, 'failed attempts')
    hook.state.failing = false
    const ended = () => hook.state.accepted.filter(e => e.type === 'session.ended' && names.includes(e.document))
    await waitFor(() => ended().length >= count, 15_000, 'every event')
    // both instances poll the one outbox: once it is empty and both are closed (deliveries in
    // flight awaited), a second delivery of any event would have shown
    await waitFor(async () => /tandem_webhook_events_pending 0\b/.test(await (await fetch(`${a.url.replace(/^ws/, 'http')}/metrics`)).text()), 10_000, 'the outbox is empty')
    await Promise.all([a.close(), b.close()])
    expect(ended()).toHaveLength(count)
    expect(new Set(ended().map(e => e.id)).size).toBe(count)
  })
})

describe('webhook options', () => {
  test('--webhook-url needs --webhook-secret: one clear line, exit 1', async () => {
    expect(() => resolveOptions(parseCli(['--webhook-url', 'http://127.0.0.1:9/x'], {}))).toThrow(/needs webhookSecret \(--webhook-secret\)/)
    expect(() => resolveOptions(parseCli(['--webhook-url', 'ftp://x', '--webhook-secret', 's'], {}))).toThrow(/http:\/\/ or https:\/\//)
    const options = resolveOptions(parseCli([], { TANDEM_WEBHOOK_URL: 'http://a/1, https://b/2', TANDEM_WEBHOOK_SECRET: 's', TANDEM_VERSION_INTERVAL: '0' }))
    expect(options.webhookUrls).toEqual(['http://a/1', 'https://b/2'])
    expect(options.versionIntervalMs).toBe(0)
    const result = await runTandem(['--port', '0', '--persistence', 'memory', '--webhook-url', 'http://127.0.0.1:9/x'])
    expect(result.code).toBe(1)
    expect(result.output.trim().split('\n')).toHaveLength(1)
    expect(result.output).toMatch(/^tandem: .*--webhook-secret/)
  })
})
