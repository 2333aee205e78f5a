import { describe, expect, test } from 'vitest'
import * as Y from 'yjs'
import { startServer, stockClient, synced, waitFor, docName } from '../support/helpers.js'

describe('sync with the stock y-websocket client', () => {
  test('two clients see each other\'s edits', async () => {
    const server = await startServer()
    const name = docName()
    const a = stockClient(server.url, name)
    const b = stockClient(server.url, name)
    await Promise.all([synced(a.provider), synced(b.provider)])
    a.text.insert(0, 'hello')
    await waitFor(() => b.text.toString() === 'hello', 5_000, 'b sees a')
    b.text.insert(5, ' world')
    await waitFor(() => a.text.toString() === 'hello world', 5_000, 'a sees b')
  })

  test('offline edits merge on reconnect', async () => {
    const server = await startServer()
    const name = docName()
    const a = stockClient(server.url, name)
    const b = stockClient(server.url, name)
    await Promise.all([synced(a.provider), synced(b.provider)])
    a.text.insert(0, 'base')
    await waitFor(() => b.text.toString() === 'base')
    b.provider.disconnect()
    b.text.insert(4, '-offline')
    a.text.insert(0, 'online-')
    await waitFor(() => a.text.toString() === 'online-base')
    b.provider.connect()
    await waitFor(() => a.text.toString() === 'online-base-offline' && b.text.toString() === 'online-base-offline', 5_000, 'merge')
  })

  test('a late joiner receives the whole document', async () => {
    const server = await startServer()
    const name = docName()
    const a = stockClient(server.url, name)
    await synced(a.provider)
    a.doc.getMap('m').set('k', 42)
    a.text.insert(0, 'abc')
    const b = stockClient(server.url, name)
    await synced(b.provider)
    await waitFor(() => b.text.toString() === 'abc')
    expect(b.doc.getMap('m').get('k')).toBe(42)
  })

  test('document names may contain slashes and percent-encoded characters', async () => {
    const server = await startServer()
    const name = `team/${docName()}/notes é`
    const a = stockClient(server.url, name)
    await synced(a.provider)
    a.text.insert(0, 'x')
    await waitFor(() => server.documents.get(name)?.ydoc.getText('t').toString() === 'x', 5_000, 'server has the edit under the decoded name')
  })

  test('updates made on the server side document are not lost when the state is large', async () => {
    const server = await startServer()
    const name = docName()
    const a = stockClient(server.url, name)
    await synced(a.provider)
    const big = 'x'.repeat(200_000)
    a.text.insert(0, big)
    const b = stockClient(server.url, name)
    await synced(b.provider)
    await waitFor(() => b.text.length === big.length)
    expect(Y.encodeStateVector(b.doc)).toEqual(Y.encodeStateVector(a.doc))
  })
})
