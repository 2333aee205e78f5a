import { describe, expect, test } from 'vitest'
import WebSocket from 'ws'
import { startServer, waitFor, docName, tempDir, stockClient, synced, rawClient, opened } from '../support/helpers.js'
import type { TandemServer } from '../../server/index.js'

/** Loaded documents as the admin API lists them. */
async function listed (server: TandemServer): Promise<Array<{ name: string, sessions: number }>> {
  const { port } = server.address
  const res = await fetch(`http://127.0.0.1:${port}/api/documents`)
  return await res.json() as Array<{ name: string, sessions: number }>
}

/** Opens `count` connections to distinct documents, each reset as soon as its handshake ends. */
async function resetAfterHandshake (url: string, count: number, prefix: string): Promise<void> {
  const batch = 50
  for (let start = 0; start < count; start += batch) {
    await Promise.all(Array.from({ length: Math.min(batch, count - start) }, (_, i) => new Promise<void>(resolve => {
      const ws = new WebSocket(`${url}/${prefix}-${start + i}`)
      ws.on('upgrade', () => {
        // the server has its session (and the load under way) by now: drop it without a close
        setImmediate(() => ws.terminate())
      })
      ws.on('close', () => resolve())
      ws.on('error', () => resolve())
    })))
  }
}

describe('a document whose sessions end while it loads', () => {
  test('is unloaded once the load finishes: 300 resets leave no document loaded (SQLite)', async () => {
    const server = await startServer({ persistence: 'sqlite', dataDir: tempDir(), maxConnectionsPerIp: 0 })
    const prefix = docName('reset')
    await resetAfterHandshake(server.url, 300, prefix)
    await waitFor(() => server.sessions.size === 0, 10_000, 'every session ended')
    await waitFor(async () => (await listed(server)).length === 0, 10_000, 'no document loaded')
    expect(server.documents.size).toBe(0)
  })

  test('under --max-documents, new documents still open after many resets', async () => {
    const server = await startServer({ persistence: 'sqlite', dataDir: tempDir(), maxConnectionsPerIp: 0, maxDocuments: 20 })
    await resetAfterHandshake(server.url, 300, docName('reset'))
    await waitFor(() => server.documents.size === 0, 10_000, 'every document unloaded')
    // twenty fresh documents, each synced by a stock client: none is refused with 503
    const names = Array.from({ length: 20 }, () => docName('fresh'))
    const clients = names.map(name => stockClient(server.url, name))
    await Promise.all(clients.map(c => synced(c.provider, 10_000)))
    expect(server.documents.size).toBe(20)
    // the twenty-first is refused while they are open...
    const refused = rawClient(`${server.url}/${docName('over')}`)
    refused.on('error', () => {})
    const status = await new Promise<number>(resolve => refused.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0)))
    expect(status).toBe(503)
    // ...and admitted once one of them leaves
    clients[0]!.provider.destroy()
    await waitFor(() => server.documents.size === 19, 10_000, 'one unloaded')
    const admitted = rawClient(`${server.url}/${docName('after')}`)
    await opened(admitted)
  })

  test('a document joined again while it loads stays loaded for the new member', async () => {
    const server = await startServer({ persistence: 'sqlite', dataDir: tempDir() })
    const name = docName()
    const first = rawClient(`${server.url}/${name}`)
    first.on('upgrade', () => setImmediate(() => first.terminate()))
    const client = stockClient(server.url, name)
    await synced(client.provider)
    client.text.insert(0, 'kept')
    await waitFor(() => server.documents.get(name)?.ydoc.getText('t').toString() === 'kept', 5_000, 'edit arrived')
    expect((await listed(server)).find(row => row.name === name)?.sessions).toBe(1)
  })
})
