import { afterEach, describe, expect, test } from 'vitest'
import * as Y from 'yjs'
import type { TandemServer } from '../../server/index.js'
import { writeSyncUpdate } from '../../shared/messages.js'
import { docName, startServer, updateOf, waitFor } from '../support/helpers.js'
import { tandemSocket } from '../support/tandem-helpers.js'

// Another instance's updates are applied here before that instance stored them (the bus
// `relay`); `applyRelayed` and `relayStored` are what the cluster calls when it hears them. A
// member's frame applied after such an update is acknowledged only once it is confirmed stored.

const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

describe('acknowledgements behind updates relayed before their commit', () => {
  let server: TandemServer | undefined
  afterEach(async () => { await server?.close(); server = undefined })

  async function setup (): Promise<{ doc: NonNullable<ReturnType<TandemServer['documents']['get']>>, member: Awaited<ReturnType<typeof tandemSocket>> }> {
    server = await startServer()
    const name = docName('relayed')
    const member = await tandemSocket(server.url, name)
    await waitFor(() => server?.documents.get(name)?.status === 'ready', 5_000, 'document loaded')
    return { doc: server.documents.get(name)!, member }
  }

  test('a frame that is ready is acknowledged when its relay is confirmed, though a later one still waits', async () => {
    const { doc, member } = await setup()
    const elsewhere = new Y.Doc()
    const mine = new Y.Doc()
    doc.applyRelayed('n', 1, updateOf(elsewhere, () => elsewhere.getText('a').insert(0, 'A')))
    member.ws.send(writeSyncUpdate(updateOf(mine, () => mine.getText('m').insert(0, 'one'))))
    await waitFor(() => doc.ydoc.getText('m').toString() === 'one' && !doc.hasPending, 5_000, 'first frame applied and stored')
    doc.applyRelayed('n', 2, updateOf(elsewhere, () => elsewhere.getText('a').insert(1, 'B')))
    member.ws.send(writeSyncUpdate(updateOf(mine, () => mine.getText('m').insert(3, 'two'))))
    await waitFor(() => doc.ydoc.getText('m').toString() === 'onetwo' && !doc.hasPending, 5_000, 'second frame applied and stored')
    await sleep(50)
    expect(member.acks()).toBe(0)
    doc.relayStored('n', 1)
    await waitFor(() => member.acks() === 1, 2_000, 'the first frame acknowledged')
    await sleep(50)
    expect(member.acks()).toBe(1)
    doc.relayStored('n', 2)
    await waitFor(() => member.acks() === 2, 2_000, 'the second frame acknowledged')
  })

  test('a frame held for a relayed update\'s content waits for that update\'s confirmation', async () => {
    const { doc, member } = await setup()
    const elsewhere = new Y.Doc()
    const base = updateOf(elsewhere, () => elsewhere.getText('t').insert(0, 'base'))
    // the member has the relayed content already (another path) and builds on it
    const mine = new Y.Doc()
    Y.applyUpdate(mine, base)
    member.ws.send(writeSyncUpdate(updateOf(mine, () => mine.getText('t').insert(4, ' and more'))))
    await sleep(100)
    expect(doc.ydoc.getText('t').toString()).toBe('')
    // the content it needs arrives, relayed before its commit: the held frame applies now
    doc.applyRelayed('n', 1, base)
    await waitFor(() => doc.ydoc.getText('t').toString() === 'base and more' && !doc.hasPending, 5_000, 'held frame applied and stored')
    await sleep(100)
    expect(member.acks()).toBe(0)
    doc.relayStored('n', 1)
    await waitFor(() => member.acks() === 1, 2_000, 'acknowledged once the relay is stored')
  })
})
