import { describe, expect, onTestFinished, test } from 'vitest'
import { createServer } from 'node:http'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { isDeepStrictEqual } from 'node:util'
import * as Y from 'yjs'
import { docName, rawClient, startServer, stockClient, synced, tempDir, waitFor, type StockClient } from '../support/helpers.js'
import { tandemClient } from '../support/tandem-helpers.js'
import { signToken } from '../support/security-helpers.js'
import { LockedError } from '../../client/index.js'
import type { TandemServer } from '../../server/index.js'
import { SqliteStore } from '../../server/store/sqlite-store.js'
import { MemoryStore } from '../../server/store/memory-store.js'
import { LocalHub } from '../../server/cluster/local-bus.js'
import { Router } from '../../server/http/router.js'
import { registerDocumentApi } from '../../server/http/documents.js'

/** `http://host:port` of a server. */
function httpOf (server: TandemServer): string {
  return server.url.replace(/^ws/, 'http')
}

function path (name: string, tail = ''): string {
  return `/api/documents/${encodeURIComponent(name)}${tail}`
}

async function call (server: TandemServer, method: string, url: string, body?: Uint8Array, headers: Record<string, string> = {}): Promise<{ status: number, json: Record<string, unknown> }> {
  const response = await fetch(httpOf(server) + url, {
    method,
    body: body as Uint8Array<ArrayBuffer> | undefined,
    headers: { ...(body !== undefined ? { 'content-type': 'application/octet-stream' } : {}), ...headers }
  })
  return { status: response.status, json: await response.json() as Record<string, unknown> }
}

async function content (server: TandemServer, name: string): Promise<{ status: number, bytes: Uint8Array }> {
  const response = await fetch(httpOf(server) + path(name, '/content'))
  return { status: response.status, bytes: new Uint8Array(await response.arrayBuffer()) }
}

async function contentJson (server: TandemServer, name: string): Promise<Record<string, unknown>> {
  const response = await fetch(httpOf(server) + path(name, '/content?format=json'))
  expect(response.status).toBe(200)
  return await response.json() as Record<string, unknown>
}

/** An update that appends `text` to text 't' of the document whose state is `state`. */
function appendUpdate (state: Uint8Array, text: string): Uint8Array {
  const doc = new Y.Doc()
  Y.applyUpdate(doc, state)
  const before = Y.encodeStateVector(doc)
  doc.getText('t').insert(doc.getText('t').length, text)
  const update = Y.encodeStateAsUpdate(doc, before)
  doc.destroy()
  return update
}

/** The close code a stock client's socket gets next, and whether it then stays closed. */
function nextClose (client: StockClient): Promise<number> {
  return new Promise(resolve => client.provider.once('connection-close', (event: CloseEvent | null) => resolve(event?.code ?? 0)))
}

/** The HTTP status an upgrade to `name` gets (101 when accepted). */
function upgradeStatus (server: TandemServer, name: string): Promise<number> {
  const ws = rawClient(`${server.url}/${encodeURIComponent(name)}`)
  return new Promise(resolve => {
    ws.once('open', () => resolve(101))
    ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0))
    ws.once('error', () => {})
  })
}

async function sqliteServer (dir = tempDir(), options: Parameters<typeof startServer>[0] = {}): Promise<TandemServer> {
  return await startServer({ persistence: 'sqlite', dataDir: dir, ...options })
}

describe('GET /api/documents/:name/content', () => {
  test('404 for a document with no data; reads a document not loaded from the store without loading it', async () => {
    const server = await sqliteServer()
    const name = docName()
    expect((await content(server, name)).status).toBe(404)
    const writer = tandemClient(server.url, name)
    await writer.synced()
    writer.doc.getText('t').insert(0, 'stored')
    await writer.flushed()
    await writer.leave()
    await waitFor(() => server.documents.get(name) === undefined, 5_000, 'unloaded')
    const { status, bytes } = await content(server, name)
    expect(status).toBe(200)
    const doc = new Y.Doc()
    Y.applyUpdate(doc, bytes)
    expect(doc.getText('t').toString()).toBe('stored')
    expect(await contentJson(server, name)).toEqual({ t: 'stored' })
    expect(server.documents.get(name)).toBeUndefined()
  })

  test('while clients edit, the content read includes every acknowledged edit', async () => {
    const server = await sqliteServer()
    const name = docName()
    const writer = tandemClient(server.url, name)
    const noise = stockClient(server.url, name)
    await Promise.all([writer.synced(), synced(noise.provider)])
    const list = writer.doc.getArray<number>('a')
    let stop = false
    const typing = (async () => {
      while (!stop) {
        noise.doc.getMap('m').set('k', Math.random())
        await new Promise(resolve => setTimeout(resolve, 1))
      }
    })()
    for (let i = 0; i < 30; i++) {
      list.push([i])
      await writer.flushed()
      const read = await contentJson(server, name)
      expect((read.a as number[]).length).toBeGreaterThanOrEqual(i + 1)
      expect(read.a).toEqual(list.toArray().slice(0, (read.a as number[]).length))
    }
    stop = true
    await typing
  })

  test('?format=json renders text, map, array and XML by their kind', async () => {
    const server = await sqliteServer()
    const name = docName()
    const client = stockClient(server.url, name)
    await synced(client.provider)
    client.doc.getText('t').insert(0, 'hi')
    client.doc.getMap('m').set('k', [1])
    client.doc.getArray('a').push(['x'])
    const p = new Y.XmlElement('p')
    p.insert(0, [new Y.XmlText('x')])
    client.doc.getXmlFragment('x').push([p])
    const want = { t: 'hi', m: { k: [1] }, a: ['x'], x: '<p>x</p>' }
    await waitFor(async () => isDeepStrictEqual(await contentJson(server, name), want), 5_000, 'all four types')
  })
})

describe('POST /api/documents/:name/updates', () => {
  test('stored, then seen by every client, and after a restart; attributed to the caller', async () => {
    const dir = tempDir()
    const server = await sqliteServer(dir)
    const name = docName()
    const [a, b] = [stockClient(server.url, name), stockClient(server.url, name)]
    await Promise.all([synced(a.provider), synced(b.provider)])
    a.text.insert(0, 'line 1\n')
    await waitFor(() => b.text.toString() === 'line 1\n', 5_000, 'b synced')
    const update = appendUpdate(Y.encodeStateAsUpdate(a.doc), 'line 2\n')
    const answer = await call(server, 'POST', path(name, '/updates?userId=importer'), update)
    expect(answer).toEqual({ status: 200, json: { stored: true } })
    // stored before it was answered
    const store = await SqliteStore.open(dir)
    const stored = new Y.Doc()
    for (const row of await store.load(name)) Y.applyUpdate(stored, row)
    await store.close()
    expect(stored.getText('t').toString()).toBe('line 1\nline 2\n')
    await waitFor(() => a.text.toString() === 'line 1\nline 2\n' && b.text.toString() === 'line 1\nline 2\n', 5_000, 'relayed')
    await server.close()
    const again = await sqliteServer(dir)
    expect(await contentJson(again, name)).toEqual({ t: 'line 1\nline 2\n' })
  })

  test('creates a document that did not exist; a no-op update is answered too', async () => {
    const server = await sqliteServer()
    const name = docName()
    const update = appendUpdate(new Uint8Array([0, 0]), 'fresh')
    expect((await call(server, 'POST', path(name, '/updates'), update)).status).toBe(200)
    expect((await call(server, 'POST', path(name, '/updates'), update)).status).toBe(200)
    expect(await contentJson(server, name)).toEqual({ t: 'fresh' })
  })

  describe('refused with nothing changed', () => {
    async function setup (options: Parameters<typeof startServer>[0] = {}) {
      const dir = tempDir()
      const server = await sqliteServer(dir, options)
      const name = docName()
      const client = stockClient(server.url, name)
      await synced(client.provider)
      client.text.insert(0, 'intact')
      await waitFor(async () => JSON.stringify(await contentJson(server, name)) === '{"t":"intact"}', 5_000, 'stored')
      const before = (await content(server, name)).bytes
      const unchanged = async (): Promise<void> => {
        expect((await content(server, name)).bytes).toEqual(before)
        expect(client.text.toString()).toBe('intact')
        expect(client.provider.wsconnected).toBe(true)
      }
      return { server, name, client, unchanged }
    }

    test.each([
      ['garbage', new Uint8Array(64).fill(0xff)],
      ['a truncated update', Uint8Array.of(1, 1, 200, 3, 0, 77, 1, 2, 3)],
      ['an empty body', new Uint8Array(0)]
    ])('%s: 400 TANDEM_ERR_INVALID_UPDATE', async (_, body) => {
      const { server, name, unchanged } = await setup()
      const answer = await call(server, 'POST', path(name, '/updates'), body)
      expect(answer.status).toBe(400)
      expect(answer.json.code).toBe('TANDEM_ERR_INVALID_UPDATE')
      await unchanged()
    })

    test('a forged update (a client id the document has, with other content): 400', async () => {
      const { server, name, client } = await setup()
      // content under an id nobody owns (an anonymous API write claims none): the live client's
      // id would be refused first, as another connection's (409 TANDEM_ERR_CLIENT_ID_IN_USE)
      const writer = new Y.Doc()
      writer.clientID = 0x5eed
      writer.getText('u').insert(0, 'by the api')
      expect((await call(server, 'POST', path(name, '/updates'), Y.encodeStateAsUpdate(writer))).status).toBe(200)
      const before = (await content(server, name)).bytes
      const forger = new Y.Doc()
      forger.clientID = 0x5eed
      // clocks 0-9 of another type, where the document has 'by the api' (clocks 0-9) in text 'u'
      forger.getArray('a').insert(0, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
      const answer = await call(server, 'POST', path(name, '/updates'), Y.encodeStateAsUpdate(forger))
      expect(answer.status).toBe(400)
      expect(answer.json.error).toMatch(/^TANDEM_ERR_INVALID_UPDATE: .*overlaps/)
      expect((await content(server, name)).bytes).toEqual(before)
      expect(client.text.toString()).toBe('intact')
      expect(client.provider.wsconnected).toBe(true)
    })

    test('an update depending on content the document lacks: 400, not kept pending', async () => {
      const { server, name, unchanged } = await setup()
      const elsewhere = new Y.Doc()
      elsewhere.getText('t').insert(0, 'abc')
      const missing = appendUpdate(Y.encodeStateAsUpdate(elsewhere), 'def')
      const answer = await call(server, 'POST', path(name, '/updates'), missing)
      expect(answer.status).toBe(400)
      expect(answer.json.code).toBe('TANDEM_ERR_UPDATE_INCOMPLETE')
      expect(answer.json.error).toMatch(/depends on content the document does not have/)
      await unchanged()
      expect(server.documents.get(name)?.ydoc.store.pendingStructs ?? null).toBeNull()
    })

    test('a body over --max-message-size: 413, by its length and when streamed without one', async () => {
      const { server, name, unchanged } = await setup({ maxMessageSize: 1024 })
      const big = appendUpdate(new Uint8Array([0, 0]), 'x'.repeat(4096))
      const answer = await call(server, 'POST', path(name, '/updates'), big)
      expect(answer.status).toBe(413)
      expect(answer.json.code).toBe('TANDEM_ERR_MESSAGE_TOO_BIG')
      const stream = new ReadableStream<Uint8Array>({
        start (controller) {
          for (let i = 0; i < 8; i++) controller.enqueue(new Uint8Array(512))
          controller.close()
        }
      })
      const streamed = await fetch(httpOf(server) + path(name, '/updates'), { method: 'POST', body: stream, duplex: 'half' } as RequestInit)
      expect(streamed.status).toBe(413)
      await unchanged()
    })

    test('a bad userId: 400', async () => {
      const { server, name, client, unchanged } = await setup()
      const update = appendUpdate(Y.encodeStateAsUpdate(client.doc), '!')
      expect((await call(server, 'POST', path(name, '/updates?userId='), update)).status).toBe(400)
      expect((await call(server, 'POST', path(name, '/updates'), update, { 'tandem-user-id': 'x'.repeat(300) })).status).toBe(400)
      await unchanged()
    })
  })
})

describe('DELETE /api/documents/:name', () => {
  test('closes every connection with 4404; 410 while retained; restore brings it back exactly', async () => {
    const server = await sqliteServer()
    const name = docName()
    const [a, b] = [stockClient(server.url, name), stockClient(server.url, name)]
    const writer = tandemClient(server.url, name)
    await Promise.all([synced(a.provider), synced(b.provider), writer.synced()])
    a.text.insert(0, 'keep me')
    writer.doc.getMap('m').set('k', 'v')
    await writer.flushed()
    await waitFor(() => b.text.toString() === 'keep me', 5_000, 'b synced')
    const before = (await content(server, name)).bytes
    const errors: string[] = []
    writer.on('error', (err: { code: string }) => errors.push(err.code))
    const closes = [nextClose(a), nextClose(b)]
    expect(await call(server, 'DELETE', path(name))).toEqual({ status: 200, json: { deleted: true } })
    expect(await Promise.all(closes)).toEqual([4404, 4404])
    await waitFor(() => errors.includes('TANDEM_ERR_DOCUMENT_DELETED'), 5_000, 'the Tandem client told')
    // the stock clients stay closed: 4404 is final for them
    expect(a.provider.shouldConnect).toBe(false)
    expect(await upgradeStatus(server, name)).toBe(410)
    expect((await content(server, name)).status).toBe(410)
    expect((await call(server, 'POST', path(name, '/updates'), appendUpdate(before, 'x'))).status).toBe(410)
    expect((await call(server, 'DELETE', path(name))).status).toBe(410)
    expect((await call(server, 'DELETE', path(docName()))).status).toBe(404)
    expect(await call(server, 'POST', path(name, '/restore'))).toEqual({ status: 200, json: { restored: true } })
    expect((await call(server, 'POST', path(name, '/restore'))).status).toBe(404)
    expect((await content(server, name)).bytes).toEqual(before)
    const back = stockClient(server.url, name)
    await synced(back.provider)
    expect(back.text.toString()).toBe('keep me')
    expect(back.doc.getMap('m').get('k')).toBe('v')
  })

  test('upgrades arriving together for a deleted document (one shared tombstone read) are all refused; after a restore all are admitted, and a delete then refuses again', async () => {
    const server = await sqliteServer()
    const name = docName()
    const writer = stockClient(server.url, name)
    await synced(writer.provider)
    writer.text.insert(0, 'x')
    await waitFor(async () => (await content(server, name)).status === 200, 5_000, 'stored')
    const closed = nextClose(writer)
    expect((await call(server, 'DELETE', path(name))).status).toBe(200)
    await closed
    const together = async (): Promise<number[]> => await Promise.all(Array.from({ length: 20 }, async () => await upgradeStatus(server, name)))
    expect(new Set(await together())).toEqual(new Set([410]))
    expect((await call(server, 'POST', path(name, '/restore'))).status).toBe(200)
    expect(new Set(await together())).toEqual(new Set([101]))
    expect((await call(server, 'DELETE', path(name))).status).toBe(200)
    expect(new Set(await together())).toEqual(new Set([410]))
  })

  test('after the retention period the data is purged and the name is free; a stale client cannot bring the content back', async () => {
    const dir = tempDir()
    const server = await sqliteServer(dir, { deletedRetentionMs: 200 })
    const name = docName()
    const old = stockClient(server.url, name)
    await synced(old.provider)
    old.text.insert(0, 'old secret')
    await waitFor(async () => (await content(server, name)).status === 200, 5_000, 'stored')
    await waitFor(async () => JSON.stringify(await contentJson(server, name)) === '{"t":"old secret"}', 5_000, 'stored')
    const oldState = Y.encodeStateAsUpdate(old.doc)
    const closing = nextClose(old)
    expect((await call(server, 'DELETE', path(name))).status).toBe(200)
    expect(await closing).toBe(4404)
    // the sweep purges it (at most a second after the retention period)
    await waitFor(async () => {
      const store = await SqliteStore.open(dir)
      try {
        return (await store.load(name)).length === 0 && (await store.tombstone(name))?.deletedAt === null
      } finally {
        await store.close()
      }
    }, 5_000, 'purged')
    expect((await content(server, name)).status).toBe(404)
    expect((await call(server, 'POST', path(name, '/restore'))).status).toBe(404)
    // a client still holding the old content (as a reload from y-indexeddb would) reconnects:
    // its sync step 2 carries the deleted content, and is refused with 4404
    const staleDoc = new Y.Doc()
    Y.applyUpdate(staleDoc, oldState)
    const stale = stockClient(server.url, name, { doc: staleDoc })
    expect(await nextClose(stale)).toBe(4404)
    expect(stale.provider.shouldConnect).toBe(false)
    expect(await contentJson(server, name).catch(() => null)).not.toEqual({ t: 'old secret' })
    // the name is free: a new client writes a new document
    const fresh = stockClient(server.url, name)
    await synced(fresh.provider)
    expect(fresh.text.toString()).toBe('')
    fresh.text.insert(0, 'new')
    await waitFor(async () => JSON.stringify(await contentJson(server, name).catch(() => null)) === '{"t":"new"}', 5_000, 'new content')
    // and the API refuses the old content too
    const answer = await call(server, 'POST', path(name, '/updates'), oldState)
    expect(answer.status).toBe(410)
    expect(answer.json.code).toBe('TANDEM_ERR_DOCUMENT_DELETED')
    expect(await contentJson(server, name)).toEqual({ t: 'new' })
  })

  test('an expired deletion is purged when the document is next opened (lazily)', async () => {
    const server = await sqliteServer(tempDir(), { deletedRetentionMs: 1 })
    const name = docName()
    expect((await call(server, 'POST', path(name, '/updates'), appendUpdate(new Uint8Array([0, 0]), 'x'))).status).toBe(200)
    expect((await call(server, 'DELETE', path(name))).status).toBe(200)
    await new Promise(resolve => setTimeout(resolve, 5)) // the retention period itself: 1 ms
    const client = stockClient(server.url, name)
    await synced(client.provider)
    expect(client.text.toString()).toBe('')
  })
})

describe('route order', () => {
  test('DELETE /api/documents/x/locks/r still reaches the lock route; users/:userId the kick route; a name with those segments is reached with %2F', async () => {
    const server = await startServer()
    const name = docName()
    const ada = tandemClient(server.url, name, { user: { id: 'ada', name: 'Ada' } })
    await ada.synced()
    ada.doc.getText('t').insert(0, 'kept')
    await ada.flushed()
    const lock = await ada.locks.acquire('r')
    const released = await call(server, 'DELETE', `/api/documents/${name}/locks/r`)
    expect(released).toMatchObject({ status: 200, json: { released: { resource: 'r', userId: 'ada' } } })
    await waitFor(() => lock.released, 5_000, 'the holder learns it lost the lock')
    expect(await call(server, 'DELETE', `/api/documents/${name}/locks/r`)).toMatchObject({ status: 404, json: { error: 'the lock is not held' } })
    expect(await call(server, 'DELETE', `/api/documents/${name}/users/nobody`)).toMatchObject({ status: 404, json: { error: 'no connection of that user here' } })
    // the bare suffixes of other routes are not document names either
    expect((await call(server, 'DELETE', `/api/documents/${name}/presence`)).status).toBe(405)
    // nothing was deleted
    expect((await content(server, name)).status).toBe(200)
    expect(await upgradeStatus(server, name)).toBe(101)

    // a document whose name ends in such segments is addressed with its slashes encoded
    const odd = `${docName()}/locks/r`
    const writer = tandemClient(server.url, odd)
    await writer.synced()
    writer.doc.getText('t').insert(0, 'odd')
    await writer.flushed()
    expect(await call(server, 'DELETE', path(odd))).toEqual({ status: 200, json: { deleted: true } })
    expect(await upgradeStatus(server, odd)).toBe(410)
  })

  test('a name that breaks the document-name rule gets 400 on every route, and no document is made', async () => {
    const server = await startServer()
    const bad = `${docName()}\u0001`
    const update = appendUpdate(new Uint8Array([0, 0]), 'x')
    for (const [method, tail, body] of [['GET', '/content', undefined], ['POST', '/updates', update], ['POST', '/restore', undefined], ['DELETE', '', undefined]] as const) {
      expect(await call(server, method, path(bad, tail), body)).toMatchObject({ status: 400, json: { code: 'TANDEM_ERR_INVALID_DOCUMENT_NAME' } })
    }
    expect((await call(server, 'POST', path('x'.repeat(513), '/updates'), update)).status).toBe(400)
    expect(server.documents.get(bad)).toBeUndefined()
  })

  test('routes added after the document API keep their paths (versions, recheck)', async () => {
    const router = new Router()
    registerDocumentApi(router, () => { throw new Error('the document API must not run') }, route => route)
    router
      .add('POST', '/api/documents/:name*/versions/:id/restore', (_req, params) => ({ status: 200, body: { route: 'versions', ...params } }))
      .add('GET', '/api/documents/:name*/versions/:id/content', (_req, params) => ({ status: 200, body: { route: 'versions', ...params } }))
      .add('DELETE', '/api/documents/:name*/versions/:id', (_req, params) => ({ status: 200, body: { route: 'versions', ...params } }))
      .add('POST', '/api/documents/:name*/recheck', (_req, params) => ({ status: 200, body: { route: 'recheck', ...params } }))
    const http = createServer((req, res) => { void router.handle(req, res) })
    http.listen(0, '127.0.0.1')
    await once(http, 'listening')
    onTestFinished(() => new Promise<void>(resolve => http.close(() => resolve())))
    const base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`
    const ask = async (method: string, url: string): Promise<unknown> => await (await fetch(base + url, { method })).json()
    expect(await ask('POST', '/api/documents/a/b/versions/3/restore')).toEqual({ route: 'versions', name: 'a/b', id: '3' })
    expect(await ask('GET', '/api/documents/a/b/versions/3/content')).toEqual({ route: 'versions', name: 'a/b', id: '3' })
    expect(await ask('DELETE', '/api/documents/a/b/versions/3')).toEqual({ route: 'versions', name: 'a/b', id: '3' })
    expect(await ask('POST', '/api/documents/a/b/recheck')).toEqual({ route: 'recheck', name: 'a/b' })
  })
})

describe('tandem.openDocument', () => {
  test('transact resolves once stored; changes are relayed both ways; close releases the document', async () => {
    const dir = tempDir()
    const server = await sqliteServer(dir)
    const name = docName()
    const client = stockClient(server.url, name)
    await synced(client.provider)
    client.text.insert(0, 'from client\n')
    await waitFor(() => server.documents.get(name)?.ydoc.getText('t').length === 12, 5_000, 'applied')
    const handle = await server.openDocument(name, { userId: 'bot' })
    expect(handle.doc.getText('t').toString()).toBe('from client\n')
    await handle.transact(doc => doc.getText('t').insert(doc.getText('t').length, 'from bot\n'))
    const store = await SqliteStore.open(dir)
    const stored = new Y.Doc()
    for (const row of await store.load(name)) Y.applyUpdate(stored, row)
    await store.close()
    expect(stored.getText('t').toString()).toBe('from client\nfrom bot\n')
    await waitFor(() => client.text.toString() === 'from client\nfrom bot\n', 5_000, 'relayed to the client')
    client.text.insert(0, '>')
    await waitFor(() => handle.doc.getText('t').toString().startsWith('>'), 5_000, 'relayed to the handle')
    await handle.transact(() => {}) // nothing changed: resolves at once
    await handle.close()
    await handle.close()
    await expect(handle.transact(doc => doc.getText('t').insert(0, 'late'))).rejects.toThrow(/closed/)
    client.provider.destroy()
    await waitFor(() => server.documents.get(name) === undefined, 5_000, 'unloaded')
  })

  test('a deleted document: openDocument rejects, an open handle\'s transact rejects', async () => {
    const server = await sqliteServer()
    const name = docName()
    const handle = await server.openDocument(name)
    await handle.transact(doc => doc.getText('t').insert(0, 'x'))
    expect((await call(server, 'DELETE', path(name))).status).toBe(200)
    await expect(handle.transact(doc => doc.getText('t').insert(0, 'y'))).rejects.toThrow(/deleted/)
    await expect(server.openDocument(name)).rejects.toThrow(/deleted/)
    await handle.close()
  })
})

describe('behind the admin token', () => {
  test('every document API route needs it', async () => {
    const server = await sqliteServer(tempDir(), { adminToken: 'secret-token' })
    const name = docName()
    const update = appendUpdate(new Uint8Array([0, 0]), 'x')
    expect((await call(server, 'POST', path(name, '/updates'), update)).status).toBe(401)
    expect((await content(server, name)).status).toBe(401)
    expect((await call(server, 'DELETE', path(name))).status).toBe(401)
    expect((await call(server, 'POST', path(name, '/restore'))).status).toBe(401)
    const auth = { authorization: 'Bearer secret-token' }
    expect((await call(server, 'POST', path(name, '/updates'), update, auth)).status).toBe(200)
    expect((await call(server, 'DELETE', path(name), undefined, auth)).status).toBe(200)
  })
})

describe('API writes meet enforced locks and client id owners as a client\'s do', () => {
  /** An update made on a copy of `state` by a fresh client id (or `clientID`). */
  function edit (state: Uint8Array, change: (doc: Y.Doc) => void, clientID?: number): Uint8Array {
    const doc = new Y.Doc()
    Y.applyUpdate(doc, state)
    // after: Yjs gives a document a new id when an update brings content under its own
    if (clientID !== undefined) doc.clientID = clientID
    const before = Y.encodeStateVector(doc)
    change(doc)
    const update = Y.encodeStateAsUpdate(doc, before)
    doc.destroy()
    return update
  }

  test('an update touching a type another session locked (y:) answers 409 with the holder; the locked content stays the holder\'s everywhere and after a reload; a free type answers 200', async () => {
    const dir = tempDir()
    const server = await sqliteServer(dir)
    const name = docName()
    const ada = tandemClient(server.url, name, { user: { id: 'ada', name: 'Ada' } })
    const stock = stockClient(server.url, name)
    await Promise.all([ada.synced(), synced(stock.provider)])
    ada.doc.getText('t').insert(0, 'ada writes here')
    await ada.flushed()
    const lock = await ada.locks.acquire(ada.doc.getText('t'))
    expect(lock.resource).toBe('y:t')
    const state = (await content(server, name)).bytes
    const holder = { resource: 'y:t', userId: 'ada', token: lock.token, sessionId: lock.info.sessionId }

    const intoLocked = edit(state, doc => doc.getText('t').insert(0, 'api: '))
    const locked = await call(server, 'POST', path(name, '/updates?userId=importer'), intoLocked)
    expect(locked.status).toBe(409)
    expect(locked.json.code).toBe('TANDEM_ERR_LOCKED')
    expect(locked.json.error).toMatch(/^TANDEM_ERR_LOCKED: /)
    expect(locked.json.holder).toMatchObject(holder)

    // one update into both: the locked part is undone, the free part stays; still 409
    const mixed = edit(state, doc => {
      doc.getText('t').delete(0, 4)
      doc.getMap('m').set('mixed', 1)
    })
    const both = await call(server, 'POST', path(name, '/updates'), mixed)
    expect(both.status).toBe(409)
    expect(both.json.holder).toMatchObject(holder)

    const free = edit(state, doc => doc.getMap('m').set('free', 2))
    expect(await call(server, 'POST', path(name, '/updates'), free)).toEqual({ status: 200, json: { stored: true } })

    const want = { t: 'ada writes here', m: { mixed: 1, free: 2 } }
    await waitFor(() => [ada.doc, stock.doc].every(doc => isDeepStrictEqual({ t: doc.getText('t').toString(), m: doc.getMap('m').toJSON() }, want)), 5_000, 'every client has the holder\'s text and the free changes')
    expect(await contentJson(server, name)).toEqual(want)
    await ada.leave()
    await server.close()
    const again = await sqliteServer(dir)
    expect(await contentJson(again, name)).toEqual(want)
  })

  test('openDocument: transact into a locked type rejects with LockedError (the holder), and the handle\'s copy is undone too', async () => {
    const server = await sqliteServer()
    const name = docName()
    const ada = tandemClient(server.url, name, { user: { id: 'ada', name: 'Ada' } })
    await ada.synced()
    ada.doc.getText('t').insert(0, 'mine')
    await ada.flushed()
    const lock = await ada.locks.acquire(ada.doc.getText('t'))
    const handle = await server.openDocument(name, { userId: 'bot' })
    const refusal = await handle.transact(doc => doc.getText('t').insert(0, 'bot: ')).then(() => null, (err: unknown) => err)
    expect(refusal).toBeInstanceOf(LockedError)
    expect((refusal as LockedError).code).toBe('TANDEM_ERR_LOCKED')
    expect((refusal as LockedError).holder).toMatchObject({ resource: 'y:t', userId: 'ada', token: lock.token })
    await waitFor(() => handle.doc.getText('t').toString() === 'mine', 5_000, 'the handle\'s change undone')
    expect(ada.doc.getText('t').toString()).toBe('mine')
    await handle.transact(doc => doc.getMap('m').set('k', 'v'))
    await waitFor(() => ada.doc.getMap('m').get('k') === 'v', 5_000, 'a free type is written')
    await handle.close()
  })

  test('with authentication, an API write under a client id another user owns is refused 409 TANDEM_ERR_CLIENT_ID_TAKEN; the API\'s own ids are its user\'s', async () => {
    const secret = 'document-api-client-ids-secret-0123'
    const server = await sqliteServer(tempDir(), { authSecret: secret })
    const name = docName()
    const alice = stockClient(server.url, name, { params: { token: await signToken(secret, { sub: 'alice' }) } })
    await synced(alice.provider)
    alice.text.insert(0, 'alice')
    await waitFor(() => server.documents.get(name)?.ydoc.getText('t').toString() === 'alice', 5_000, 'applied')
    let state = (await content(server, name)).bytes
    const asAlice = edit(state, doc => doc.getText('t').insert(5, '!'), alice.doc.clientID)

    const taken = await call(server, 'POST', path(name, '/updates?userId=mallory'), asAlice)
    expect(taken.status).toBe(409)
    expect(taken.json.code).toBe('TANDEM_ERR_CLIENT_ID_TAKEN')
    expect(await contentJson(server, name)).toEqual({ t: 'alice' })
    expect(alice.provider.wsconnected).toBe(true)
    // alice's claim outlives her connection; the owner itself may write (an administrator on
    // alice's behalf). Disconnected first: content under its own id, relayed to it, would make
    // Yjs give alice's document a new id, which the stock provider's awareness does not expect
    alice.provider.destroy()
    expect((await call(server, 'POST', path(name, '/updates?userId=mallory'), asAlice)).json.code).toBe('TANDEM_ERR_CLIENT_ID_TAKEN')
    expect((await call(server, 'POST', path(name, '/updates?userId=alice'), asAlice)).status).toBe(200)

    // an id an API write used is its user's from then on
    state = (await content(server, name)).bytes
    const importerId = 0x7ead
    expect((await call(server, 'POST', path(name, '/updates?userId=importer'), edit(state, doc => doc.getMap('m').set('a', 1), importerId))).status).toBe(200)
    state = (await content(server, name)).bytes
    const again = await call(server, 'POST', path(name, '/updates?userId=someone-else'), edit(state, doc => doc.getMap('m').set('b', 2), importerId))
    expect(again.status).toBe(409)
    expect(again.json.code).toBe('TANDEM_ERR_CLIENT_ID_TAKEN')
    expect(await contentJson(server, name)).toEqual({ t: 'alice!', m: { a: 1 } })
  })

  test('without authentication, an API write under the client id of a live connection is refused 409 TANDEM_ERR_CLIENT_ID_IN_USE', async () => {
    const server = await sqliteServer()
    const name = docName()
    const client = stockClient(server.url, name)
    await synced(client.provider)
    client.text.insert(0, 'typed')
    // an anonymous connection claims the id of its awareness state
    await waitFor(() => server.documents.get(name)?.owners.owner(client.doc.clientID) !== undefined, 5_000, 'its id claimed')
    await waitFor(() => server.documents.get(name)?.ydoc.getText('t').toString() === 'typed', 5_000, 'applied')
    const state = (await content(server, name)).bytes
    const answer = await call(server, 'POST', path(name, '/updates'), edit(state, doc => doc.getText('t').insert(5, '?'), client.doc.clientID))
    expect(answer.status).toBe(409)
    expect(answer.json.code).toBe('TANDEM_ERR_CLIENT_ID_IN_USE')
    expect(await contentJson(server, name)).toEqual({ t: 'typed' })
    // a fresh id is free
    expect((await call(server, 'POST', path(name, '/updates'), edit(state, doc => doc.getText('t').insert(5, '.')))).status).toBe(200)
    await waitFor(() => client.text.toString() === 'typed.', 5_000, 'relayed')
  })
})

describe('two servers sharing a store through an in-process bus', () => {
  async function pair (): Promise<[TandemServer, TandemServer]> {
    const hub = new LocalHub()
    const store = new MemoryStore()
    return [await startServer({ persistence: store, bus: hub.bus() }), await startServer({ persistence: store, bus: hub.bus() })]
  }

  test('an in-process handle on one server edits for clients on the other, attributed and stored; it hears them back', async () => {
    const [one, two] = await pair()
    const name = docName()
    const client = stockClient(two.url, name)
    await synced(client.provider)
    const handle = await one.openDocument(name, { userId: 'assistant' })
    expect(handle.userId).toBe('assistant')
    await handle.transact(doc => doc.getText('t').insert(0, 'from the assistant'))
    await waitFor(() => client.text.toString() === 'from the assistant', 5_000, 'the client on the other server sees it')
    client.text.insert(0, '> ')
    await waitFor(() => handle.doc.getText('t').toString() === '> from the assistant', 5_000, 'the handle hears the client')
    await handle.close()
  })

  test('delete on one server closes the other\'s connections with 4404 and ends its handles', async () => {
    const [one, two] = await pair()
    const name = docName()
    const [a, b] = [stockClient(one.url, name), stockClient(two.url, name)]
    await Promise.all([synced(a.provider), synced(b.provider)])
    const handle = await two.openDocument(name)
    await handle.transact(doc => doc.getText('t').insert(0, 'x'))
    const closes = [nextClose(a), nextClose(b)]
    expect((await call(one, 'DELETE', path(name))).status).toBe(200)
    expect(await Promise.all(closes)).toEqual([4404, 4404])
    await expect(handle.transact(doc => doc.getText('t').insert(0, 'y'))).rejects.toThrow(/deleted/)
    expect(await upgradeStatus(two, name)).toBe(410)
    expect((await call(two, 'POST', path(name, '/restore'))).status).toBe(200)
    expect(await contentJson(one, name)).toEqual({ t: 'x' })
    await handle.close()
  })
})
