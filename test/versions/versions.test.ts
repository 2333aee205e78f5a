import { describe, expect, test } from 'vitest'
import * as Y from 'yjs'
import { startServer, stockClient, synced, waitFor, docName, tempDir } from '../support/helpers.js'
import { tandemClient } from '../support/tandem-helpers.js'
import { POSTGRES_URL, REDIS_URL, pgSchema, postgresUp, redisPrefix, redisUp, testWith } from '../support/services.js'
import type { TandemServer } from '../../server/index.js'
import { revertUpdate } from '../../server/versions/revert.js'

interface Version { id: string, label: string | null, createdAt: number, authors: string[], automatic: boolean }

function http (server: TandemServer): string {
  return server.url.replace(/^ws/, 'http')
}

async function api (server: TandemServer, method: string, path: string, body?: unknown): Promise<{ status: number, json: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any -- JSON of several shapes
  const response = await fetch(http(server) + path, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body)
  })
  const text = await response.text()
  return { status: response.status, json: text === '' ? undefined : JSON.parse(text) }
}

const path = (name: string): string => `/api/documents/${encodeURIComponent(name)}/versions`

/** A stock client of user `user` that has synced; its edits are stored once `flushedTo` sees them. */
async function userClient (server: TandemServer, name: string, user: string) {
  const client = stockClient(server.url, name, { params: { user } })
  await synced(client.provider)
  return client
}

/** Waits until the server's copy of `name` has text `t` equal to `text` and nothing is pending. */
async function stored (server: TandemServer, name: string, text: string): Promise<void> {
  await waitFor(() => server.documents.get(name)?.ydoc.getText('t').toString() === text, 5_000, `server has ${JSON.stringify(text)}`)
  await server.documents.get(name)!.whenStored()
}

describe('versions', () => {
  test('by API: authors are the users whose updates were stored since the previous version', async () => {
    const server = await startServer()
    const name = docName()
    const ada = await userClient(server, name, 'ada')
    const bob = await userClient(server, name, 'bob')
    ada.text.insert(0, 'hello')
    await stored(server, name, 'hello')
    bob.text.insert(5, ' world')
    await stored(server, name, 'hello world')
    const first = await api(server, 'POST', path(name), { label: 'draft' })
    expect(first.status).toBe(201)
    expect(first.json).toMatchObject({ label: 'draft', authors: ['ada', 'bob'] })
    expect(typeof first.json.id).toBe('string')
    expect(typeof first.json.createdAt).toBe('number')
    ada.text.insert(0, '> ')
    await stored(server, name, '> hello world')
    const second = await api(server, 'POST', path(name))
    expect(second.status).toBe(201)
    expect(second.json).toMatchObject({ label: null, authors: ['ada'] })
    const third = await api(server, 'POST', path(name), {})
    expect(third.json.authors).toEqual([])
    const list = await api(server, 'GET', path(name))
    expect(list.json.map((v: Version) => v.id)).toEqual([third.json.id, second.json.id, first.json.id])
    const json = await api(server, 'GET', `${path(name)}/${first.json.id}/content?format=json`)
    expect(json.json).toEqual({ t: 'hello world' })
    const binary = await fetch(`${http(server)}${path(name)}/${first.json.id}/content`)
    expect(binary.headers.get('content-type')).toBe('application/octet-stream')
    const doc = new Y.Doc()
    Y.applyUpdate(doc, new Uint8Array(await binary.arrayBuffer()))
    expect(doc.getText('t').toString()).toBe('hello world')
  })

  test('bad requests get clear errors', async () => {
    const server = await startServer()
    const name = docName()
    expect((await api(server, 'POST', path(name))).status).toBe(404) // no such document
    const ada = await userClient(server, name, 'ada')
    ada.text.insert(0, 'x')
    await stored(server, name, 'x')
    expect((await api(server, 'POST', path(name), { label: 42 })).status).toBe(400)
    expect((await api(server, 'POST', path(name), { label: 'x'.repeat(257) })).status).toBe(400)
    const notJson = await fetch(http(server) + path(name), { method: 'POST', body: '{' })
    expect(notJson.status).toBe(400)
    const huge = await fetch(http(server) + path(name), { method: 'POST', body: JSON.stringify({ label: 'x'.repeat(100_000) }) })
    expect(huge.status).toBe(413)
    expect((await api(server, 'GET', `${path(name)}/nope/content`)).status).toBe(404)
    expect((await api(server, 'POST', `${path(name)}/nope/restore`)).status).toBe(404)
    const version = await api(server, 'POST', path(name))
    expect((await api(server, 'GET', `${path(name)}/${version.json.id}/content?format=xml`)).status).toBe(400)
  })

  test('behind the admin token', async () => {
    const server = await startServer({ adminToken: 'sesame' })
    const name = docName()
    expect((await api(server, 'GET', path(name))).status).toBe(401)
    const ok = await fetch(http(server) + path(name), { headers: { authorization: 'Bearer sesame' } })
    expect(ok.status).toBe(200)
  })

  test('automatic versions of changed documents, with their authors, and retention', async () => {
    const server = await startServer({ versionIntervalMs: 200, versionRetention: 2 })
    const name = docName()
    const ada = await userClient(server, name, 'ada')
    const versions = async (): Promise<Version[]> => (await api(server, 'GET', path(name))).json
    ada.text.insert(0, 'a')
    await waitFor(async () => (await versions()).length === 1, 5_000, 'a first automatic version')
    expect((await versions())[0]).toMatchObject({ label: null, authors: ['ada'], automatic: true })
    // unchanged: no new version
    const bob = await userClient(server, name, 'bob')
    const named = await api(server, 'POST', path(name), { label: 'kept' })
    bob.text.insert(0, 'b')
    await waitFor(async () => (await versions()).length === 3, 5_000, 'a version after bob edited')
    expect((await versions())[0]).toMatchObject({ automatic: true, authors: ['bob'] })
    ada.text.insert(0, 'c')
    await waitFor(async () => (await versions())[0]?.authors.join() === 'ada' && (await versions()).length >= 3, 5_000, 'a version after ada edited')
    const all = await versions()
    // two automatic versions kept, the named one never dropped
    expect(all.filter(v => v.automatic)).toHaveLength(2)
    expect(all.some(v => v.id === named.json.id)).toBe(true)
  })

  test('restore: two stock clients and a Tandem client converge to the version, without reloading', async () => {
    const server = await startServer()
    const name = docName()
    const one = await userClient(server, name, 'one')
    const two = await userClient(server, name, 'two')
    const tandem = tandemClient(server.url, name)
    await tandem.synced()
    one.text.insert(0, 'the version')
    one.doc.getMap('m').set('k', 'v1')
    one.doc.getArray<number>('a').push([1, 2])
    await stored(server, name, 'the version')
    const version = await api(server, 'POST', path(name), { label: 'v' })
    two.text.insert(3, ' later')
    two.doc.getMap('m').set('k', 'v2')
    two.doc.getMap('m').set('new', true)
    two.doc.getArray<number>('a').push([3])
    tandem.doc.getText('other').insert(0, 'added after')
    await stored(server, name, 'the later version')
    const restored = await api(server, 'POST', `${path(name)}/${version.json.id}/restore`)
    expect(restored.status).toBe(200)
    const want = { t: 'the version', m: { k: 'v1' }, a: [1, 2], other: '' }
    const content = (doc: Y.Doc) => ({ t: doc.getText('t').toString(), m: doc.getMap('m').toJSON(), a: doc.getArray('a').toJSON(), other: doc.getText('other').toString() })
    for (const doc of [one.doc, two.doc, tandem.doc]) await waitFor(() => JSON.stringify(content(doc)) === JSON.stringify(want), 5_000, 'client converged')
    expect(one.provider.wsconnected && two.provider.wsconnected).toBe(true)
    // nothing lost: the state before is a version
    const before = await api(server, 'GET', `${path(name)}/${restored.json.before}/content?format=json`)
    expect(before.json).toMatchObject({ t: 'the later version', m: { k: 'v2', new: true }, a: [1, 2, 3], other: 'added after' })
    // clients keep editing after the restore
    one.text.insert(0, '!')
    await waitFor(() => tandem.doc.getText('t').toString() === '!the version', 5_000, 'edits after restore')
  })

  test('versions survive compaction and restart (SQLite)', async () => {
    const dir = tempDir()
    const name = docName()
    const first = await startServer({ persistence: 'sqlite', dataDir: dir, compactAfterUpdates: 3 })
    const ada = await userClient(first, name, 'ada')
    ada.text.insert(0, 'v1')
    await stored(first, name, 'v1')
    const version = await api(first, 'POST', path(name), { label: 'one' })
    for (const c of 'abcdefgh') ada.text.insert(ada.text.length, c)
    await stored(first, name, 'v1abcdefgh')
    ada.provider.destroy()
    await first.close()
    const second = await startServer({ persistence: 'sqlite', dataDir: dir })
    const list = await api(second, 'GET', path(name))
    expect(list.json).toEqual([{ ...version.json }])
    const content = await api(second, 'GET', `${path(name)}/${version.json.id}/content?format=json`)
    expect(content.json).toEqual({ t: 'v1' })
    // restore with nobody connected: the document is loaded, changed, stored, unloaded
    expect((await api(second, 'POST', `${path(name)}/${version.json.id}/restore`)).status).toBe(200)
    const reader = stockClient(second.url, name)
    await synced(reader.provider)
    expect(reader.text.toString()).toBe('v1')
  })

  testWith(postgresUp)('two instances with PostgreSQL: versions taken on one are seen and restored on the other', async () => {
    const persistence = `${POSTGRES_URL}?schema=${pgSchema()}`
    const a = await startServer({ persistence })
    const b = await startServer({ persistence })
    const name = docName()
    const ada = await userClient(a, name, 'ada')
    ada.text.insert(0, 'from a')
    await stored(a, name, 'from a')
    const version = await api(a, 'POST', path(name), { label: 'on a' })
    expect(version.json.authors).toEqual(['ada'])
    expect((await api(b, 'GET', path(name))).json).toEqual([version.json])
    ada.text.insert(0, 'x')
    await stored(a, name, 'xfrom a')
    ada.provider.destroy()
    await waitFor(() => a.documents.get(name) === undefined, 5_000, 'unloaded on a')
    const restored = await api(b, 'POST', `${path(name)}/${version.json.id}/restore`)
    expect(restored.status).toBe(200)
    const reader = stockClient(a.url, name)
    await synced(reader.provider)
    await waitFor(() => reader.text.toString() === 'from a', 5_000, 'a sees the restore done on b')
  })

  testWith(postgresUp)('two instances taking automatic versions of one document save one per change', async () => {
    const persistence = `${POSTGRES_URL}?schema=${pgSchema()}`
    const a = await startServer({ persistence, versionIntervalMs: 100 })
    const b = await startServer({ persistence, versionIntervalMs: 100 })
    const name = docName()
    const versions = async (): Promise<Version[]> => (await api(b, 'GET', path(name))).json
    const ada = await userClient(a, name, 'ada')
    ada.text.insert(0, 'one')
    await waitFor(async () => (await versions()).length >= 1, 5_000, 'a first version')
    // both instances check every 20 ms; a second edit's version comes after both saw the first
    ada.text.insert(0, 'two ')
    await waitFor(async () => (await versions()).length >= 2, 5_000, 'a second version')
    const all = await versions()
    expect(all).toHaveLength(2)
    expect(all.map(v => v.authors)).toEqual([['ada'], ['ada']])
  })

  testWith(postgresUp && redisUp)('with Redis: a restore on one instance reaches the clients of the other at once', async () => {
    const shared = { persistence: `${POSTGRES_URL}?schema=${pgSchema()}`, redis: REDIS_URL, redisPrefix: redisPrefix() }
    const a = await startServer(shared)
    const b = await startServer(shared)
    const name = docName()
    const onA = await userClient(a, name, 'ada')
    const onB = await userClient(b, name, 'bob')
    onA.text.insert(0, 'kept')
    await waitFor(() => onB.text.toString() === 'kept', 5_000, 'b has a\'s edit')
    await stored(a, name, 'kept')
    const version = await api(b, 'POST', path(name))
    expect(version.json.authors).toEqual(['ada'])
    onB.text.insert(4, ' and changed')
    await waitFor(() => onA.text.toString() === 'kept and changed', 5_000, 'a has b\'s edit')
    await stored(b, name, 'kept and changed')
    expect((await api(a, 'POST', `${path(name)}/${version.json.id}/restore`)).status).toBe(200)
    for (const client of [onA, onB]) await waitFor(() => client.text.toString() === 'kept', 5_000, 'every client converged')
  })
})

describe('revertUpdate', () => {
  test('turns any state into the target content, for every kind of type', () => {
    const target = new Y.Doc()
    target.getText('t').insert(0, 'héllo 😀 world')
    target.getText('rich').insert(0, 'bold', { bold: true })
    target.getMap('m').set('nested', new Y.Map([['x', 1]]))
    target.getArray('a').insert(0, [1, 'two', { three: 3 }])
    const frag = target.getXmlFragment('x')
    const p = new Y.XmlElement('p')
    p.insert(0, [new Y.XmlText('para')])
    frag.insert(0, [p])
    const current = new Y.Doc()
    Y.applyUpdate(current, Y.encodeStateAsUpdate(target))
    current.getText('t').insert(6, '😀😀 ')
    current.getText('t').delete(0, 2)
    current.getText('rich').format(0, 4, { bold: null, italic: true })
    current.getMap('m').delete('nested')
    current.getMap('m').set('gone', 'soon')
    current.getArray('a').delete(1, 1)
    current.getXmlFragment('x').delete(0, 1)
    current.getText('extra').insert(0, 'not in the target')
    const update = revertUpdate(Y.encodeStateAsUpdate(current), Y.encodeStateAsUpdate(target))
    expect(update).not.toBeNull()
    Y.applyUpdate(current, update!)
    expect(current.getText('t').toString()).toBe('héllo 😀 world')
    expect(current.getText('rich').toDelta()).toEqual([{ insert: 'bold', attributes: { bold: true } }])
    expect(current.getMap('m').toJSON()).toEqual({ nested: { x: 1 } })
    expect(current.getArray('a').toJSON()).toEqual([1, 'two', { three: 3 }])
    expect(current.getXmlFragment('x').toString()).toBe('<p>para</p>')
    expect(current.getText('extra').toString()).toBe('')
    expect(revertUpdate(Y.encodeStateAsUpdate(current), Y.encodeStateAsUpdate(target))).toBeNull()
  })
})
