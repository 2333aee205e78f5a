import { describe, expect, test } from 'vitest'
import * as Y from 'yjs'
import { startServer, stockClient, synced, waitFor, docName, rawClient, opened, closed } from '../support/helpers.js'
import { writeSyncUpdate, writeAwareness, writeSyncStep1 } from '../../shared/messages.js'
import { MemoryStore } from '../../server/store/memory-store.js'

async function setup (options: Parameters<typeof startServer>[0] = {}) {
  const store = new MemoryStore()
  const server = await startServer({ persistence: store, ...options })
  const name = docName()
  const observer = stockClient(server.url, name)
  await synced(observer.provider)
  observer.text.insert(0, 'intact')
  await waitFor(async () => (await store.load(name)).length > 0, 5_000, 'stored')
  const before = Y.encodeStateAsUpdate(server.documents.get(name)!.ydoc)
  const storedBefore = await store.load(name)
  const attacker = rawClient(`${server.url}/${encodeURIComponent(name)}`)
  await opened(attacker)
  const unchanged = async () => {
    expect(Y.encodeStateAsUpdate(server.documents.get(name)!.ydoc)).toEqual(before)
    expect(await store.load(name)).toEqual(storedBefore)
    expect(observer.text.toString()).toBe('intact')
    expect(observer.provider.wsconnected).toBe(true)
  }
  return { server, store, name, observer, attacker, unchanged }
}

describe('bad input closes only the offending socket and changes nothing', () => {
  const cases: Array<[string, Uint8Array]> = [
    ['an unknown message type', Uint8Array.of(42, 1, 2)],
    ['a truncated sync frame', Uint8Array.of(0, 2, 10, 1)],
    ['an unknown sync type', Uint8Array.of(0, 9, 0)],
    ['trailing bytes', Uint8Array.of(3, 0)],
    ['an empty frame', new Uint8Array(0)],
    ['a corrupt Yjs update', writeSyncUpdate(Uint8Array.of(1, 1, 200, 3, 0, 77, 1, 2, 3))],
    ['garbage as an update', writeSyncUpdate(new Uint8Array(64).fill(0xff))],
    ['an awareness update with bad JSON', writeAwareness(Uint8Array.of(1, 7, 1, 3, 123, 123, 123))],
    ['a bad state vector', writeSyncStep1(Uint8Array.of(5, 255))],
    ['a client-sent Tandem message', Uint8Array.of(100, 0, 1)]
  ]
  test.each(cases)('%s: 4400', async (_, frame) => {
    const { attacker, unchanged } = await setup()
    const closing = closed(attacker)
    attacker.send(frame)
    expect((await closing).code).toBe(4400)
    await unchanged()
  })

  test('a text frame: 4400', async () => {
    const { attacker, unchanged } = await setup()
    const closing = closed(attacker)
    attacker.send('hello')
    expect((await closing).code).toBe(4400)
    await unchanged()
  })

  test('a frame over --max-message-size: 1009', async () => {
    const { attacker, unchanged } = await setup({ maxMessageSize: 1024 })
    const closing = closed(attacker)
    attacker.send(new Uint8Array(2048))
    expect((await closing).code).toBe(1009)
    await unchanged()
  })

  test('a valid update after the bad socket still flows between the others', async () => {
    const { server, name, attacker, observer } = await setup()
    attacker.send(Uint8Array.of(42))
    await closed(attacker)
    const other = stockClient(server.url, name)
    await synced(other.provider)
    other.text.insert(0, '>')
    await waitFor(() => observer.text.toString() === '>intact')
  })
})
