import { describe, expect, test } from 'vitest'
import * as Y from 'yjs'
import { writeSyncUpdate } from '../../shared/messages.js'
import { startServer, waitFor, docName, rawClient, opened } from '../support/helpers.js'
import { docUrl } from '../support/security-helpers.js'
import type { SyncSocket } from '../../server/transport/sync-allowance.js'

describe('a server socket\'s events', () => {
  test('reach its session with no listener on the socket; a listener added later hears them too, and an unheard error is not thrown', async () => {
    const server = await startServer({ maxConnectionsPerIp: 2 })
    const name = docName()
    const client = rawClient(docUrl(server.url, name))
    await opened(client)
    await waitFor(() => server.sessions.size === 1)
    const [session] = [...server.sessions]
    const socket = session!.socket as SyncSocket
    // Tandem adds no listener of its own: the session hears the socket through emit
    expect(socket.eventNames()).toEqual([])
    expect(socket.emit('error', new Error('unheard'))).toBe(true)

    const heard: string[] = []
    socket.on('message', () => heard.push('message'))
    socket.on('close', () => heard.push('close'))
    const source = new Y.Doc()
    source.on('update', (update: Uint8Array) => client.send(writeSyncUpdate(update)))
    source.getText('t').insert(0, 'hello')
    await waitFor(() => server.documents.get(name)?.ydoc.getText('t').toString() === 'hello', 5_000, 'the session applied the update')
    expect(heard).toEqual(['message'])

    client.close()
    await waitFor(() => heard.includes('close') && server.sessions.size === 0, 5_000, 'closed')
    // its per-address slot given back at the close
    await waitFor(() => server.connections.count('127.0.0.1') === 0, 5_000, 'slot released')
  })
})
