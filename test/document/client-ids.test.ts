import { describe, expect, test } from 'vitest'
import * as Y from 'yjs'
import type WebSocket from 'ws'
import { LocalHub } from '../../server/cluster/local-bus.js'
import { MemoryStore } from '../../server/store/memory-store.js'
import { writeSyncUpdate, writeAwareness } from '../../shared/messages.js'
import { writeAwarenessUpdate } from '../../shared/awareness.js'
import { CloseCode } from '../../shared/constants.js'
import type { TandemServer, ServerOptions } from '../../server/index.js'
import { closed, docName, opened, rawClient, startServer, stockClient, synced, tempDir, waitFor, type StockClient } from '../support/helpers.js'
import { docUrl, signToken } from '../support/security-helpers.js'
import { parsePrometheusText, sampleValue } from '../observability/prometheus-text.js'
import { POSTGRES_URL, REDIS_URL, pgSchema, postgresUp, redisPrefix, redisUp, testWith } from '../support/services.js'

const SECRET = 'client-ids-test-secret-0123456789'

/** A stock client signed in as `user`. */
async function signedIn (server: TandemServer, name: string, user: string, doc?: Y.Doc): Promise<StockClient> {
  const client = stockClient(server.url, name, { params: { token: await signToken(SECRET, { sub: user }) }, doc })
  await synced(client.provider)
  return client
}

/** A raw socket signed in as `user`, open. */
async function rawSignedIn (server: TandemServer, name: string, user: string): Promise<WebSocket> {
  const ws = rawClient(docUrl(server.url, name, { token: await signToken(SECRET, { sub: user }) }))
  await opened(ws)
  return ws
}

/**
 * What an attacker sends to take `victim`'s next ids: an update made by a Y.Doc that has the
 * document's content and the victim's client id, inserting `text` at the start.
 */
function forgedUpdate (victim: Y.Doc, text: string): Uint8Array {
  const forged = new Y.Doc()
  Y.applyUpdate(forged, Y.encodeStateAsUpdate(victim))
  // set after: Yjs picks a new id when an update brings content under its own
  forged.clientID = victim.clientID
  let update: Uint8Array | undefined
  forged.on('update', (u: Uint8Array) => { update = u })
  forged.getText('t').insert(0, text)
  forged.destroy()
  return update as Uint8Array
}

function serverText (server: TandemServer, name: string): string | undefined {
  return server.documents.get(name)?.ydoc.getText('t').toString()
}

describe('Yjs client ids belong to the user that first used them', () => {
  test('an update at another user\'s next clocks is refused with 4403 and changes nothing; the victim\'s next edit reaches everyone', async () => {
    const server = await startServer({ authSecret: SECRET })
    const name = docName()
    const victim = await signedIn(server, name, 'alice')
    const observer = await signedIn(server, name, 'carol')
    victim.text.insert(0, 'hello')
    await waitFor(() => observer.text.toString() === 'hello', 5_000, 'observer sees hello')

    const attacker = await rawSignedIn(server, name, 'mallory')
    const closing = closed(attacker)
    attacker.send(writeSyncUpdate(forgedUpdate(victim.doc, 'EVIL')))
    expect(await closing).toEqual({ code: CloseCode.FORBIDDEN, reason: 'TANDEM_ERR_CLIENT_ID_TAKEN' })
    expect(serverText(server, name)).toBe('hello')
    const metrics = parsePrometheusText(await (await fetch(`http://127.0.0.1:${server.address.port}/metrics`)).text())
    expect(sampleValue(metrics, 'tandem_updates_refused_total', { reason: 'client_id' })).toBe(1)

    victim.text.insert(5, ' world')
    await waitFor(() => observer.text.toString() === 'hello world', 5_000, 'observer sees the victim\'s edit')
    expect(serverText(server, name)).toBe('hello world')
    expect(victim.text.toString()).toBe('hello world')
  })

  test('the same forged content under a fresh client id is accepted (the id is what is refused)', async () => {
    const server = await startServer({ authSecret: SECRET })
    const name = docName()
    const victim = await signedIn(server, name, 'alice')
    victim.text.insert(0, 'hello')
    await waitFor(() => serverText(server, name) === 'hello', 5_000, 'server has hello')
    const own = new Y.Doc()
    Y.applyUpdate(own, Y.encodeStateAsUpdate(victim.doc))
    const attacker = await signedIn(server, name, 'mallory', own)
    attacker.text.insert(0, '>')
    await waitFor(() => victim.text.toString() === '>hello', 5_000, 'victim sees the other user\'s own edit')
  })

  test('a user owns an id before writing with it: its awareness state claims it', async () => {
    const server = await startServer({ authSecret: SECRET })
    const name = docName()
    const victim = await signedIn(server, name, 'alice')
    victim.provider.awareness.setLocalState({ user: 'alice' })
    await waitFor(() => server.documents.get(name)?.owners.owner(victim.doc.clientID) === 'alice', 5_000, 'awareness claims the id')
    const attacker = await rawSignedIn(server, name, 'mallory')
    const closing = closed(attacker)
    attacker.send(writeSyncUpdate(forgedUpdate(victim.doc, 'EVIL')))
    expect((await closing).code).toBe(CloseCode.FORBIDDEN)
    victim.text.insert(0, 'mine')
    await waitFor(() => serverText(server, name) === 'mine', 5_000, 'the victim\'s first edit is stored')
  })

  test('the user reconnecting with the same Y.Doc, or in a second tab, keeps writing', async () => {
    const server = await startServer({ authSecret: SECRET })
    const name = docName()
    const alice = await signedIn(server, name, 'alice')
    const observer = await signedIn(server, name, 'carol')
    alice.text.insert(0, 'a')
    await waitFor(() => observer.text.toString() === 'a', 5_000, 'a')
    alice.provider.disconnect()
    alice.text.insert(1, 'b') // offline
    alice.provider.connect()
    await waitFor(() => observer.text.toString() === 'ab', 5_000, 'the offline edit after the reconnect')
    // another connection of the same user under the same client id (its next socket)
    alice.provider.disconnect()
    const again = await rawSignedIn(server, name, 'alice')
    again.send(writeSyncUpdate(forgedUpdate(alice.doc, '>')))
    await waitFor(() => observer.text.toString() === '>ab', 5_000, 'the same user under the same id')
    expect(again.readyState).toBe(again.OPEN)
  })

  test('ownership survives a restart (SQLite store)', async () => {
    const dataDir = tempDir()
    const options: ServerOptions = { authSecret: SECRET, persistence: 'sqlite', dataDir }
    const name = docName()
    const first = await startServer(options)
    const victimDoc = new Y.Doc()
    const victim = await signedIn(first, name, 'alice', victimDoc)
    victim.text.insert(0, 'kept')
    await waitFor(() => serverText(first, name) === 'kept', 5_000, 'stored')
    victim.provider.destroy()
    await first.close()

    const second = await startServer(options)
    const attacker = await rawSignedIn(second, name, 'mallory')
    const closing = closed(attacker)
    attacker.send(writeSyncUpdate(forgedUpdate(victimDoc, 'EVIL')))
    expect((await closing).code).toBe(CloseCode.FORBIDDEN)

    const observer = await signedIn(second, name, 'carol')
    expect(observer.text.toString()).toBe('kept')
    await signedIn(second, name, 'alice', victimDoc)
    victimDoc.getText('t').insert(4, '!')
    await waitFor(() => observer.text.toString() === 'kept!', 5_000, 'the victim writes on after the restart')
  })

  /** Per deployment: a function making the options of each next instance of one deployment. */
  const deployments: Array<[string, boolean, () => () => ServerOptions]> = [
    ['an in-process bus and a shared memory store', true, () => {
      const hub = new LocalHub()
      const store = new MemoryStore()
      return () => ({ authSecret: SECRET, persistence: store, bus: hub.bus() })
    }],
    ['Redis and PostgreSQL', redisUp && postgresUp, () => {
      const [schema, prefix] = [pgSchema(), redisPrefix()]
      return () => ({ authSecret: SECRET, persistence: `${POSTGRES_URL}?schema=${schema}`, redis: REDIS_URL, redisPrefix: prefix })
    }]
  ]
  for (const [kind, up, deployment] of deployments) {
    testWith(up || process.env.CI === 'true')(`across instances (${kind}): an id claimed on one instance is refused to another user on the other, and on one that loads the document later`, async () => {
      const options = deployment()
      const one = await startServer(options())
      const two = await startServer(options())
      const name = docName()
      const onTwo = await signedIn(two, name, 'carol')
      const victim = await signedIn(one, name, 'alice')
      victim.text.insert(0, 'hi')
      await waitFor(() => onTwo.text.toString() === 'hi', 5_000, 'the other instance has it')
      await waitFor(() => two.documents.get(name)?.owners.owner(victim.doc.clientID) === 'alice', 5_000, 'the claim crossed the bus')

      const attacker = await rawSignedIn(two, name, 'mallory')
      const closing = closed(attacker)
      attacker.send(writeSyncUpdate(forgedUpdate(victim.doc, 'EVIL')))
      expect((await closing).code).toBe(CloseCode.FORBIDDEN)
      victim.text.insert(2, '!')
      await waitFor(() => onTwo.text.toString() === 'hi!', 5_000, 'the victim\'s next edit')

      // an instance that loads the document later reads the claim from the store (peers hear
      // of an update, and of its claims, once it is stored)
      const three = await startServer(options())
      const late = await rawSignedIn(three, name, 'mallory')
      await waitFor(() => three.documents.get(name)?.status === 'ready', 5_000, 'loaded')
      expect(three.documents.get(name)?.owners.owner(victim.doc.clientID)).toBe('alice')
      const lateClosing = closed(late)
      late.send(writeSyncUpdate(forgedUpdate(victim.doc, 'EVIL')))
      expect((await lateClosing).code).toBe(CloseCode.FORBIDDEN)
    })
  }

  test('anonymous mode: an id is the connection\'s while it lives (1013 to others), free once it ends', async () => {
    const server = await startServer()
    const name = docName()
    const victim = stockClient(server.url, name)
    const observer = stockClient(server.url, name)
    await Promise.all([synced(victim.provider), synced(observer.provider)])
    victim.text.insert(0, 'x')
    await waitFor(() => observer.text.toString() === 'x', 5_000, 'observer sees x')
    const other = rawClient(docUrl(server.url, name))
    await opened(other)
    const closing = closed(other)
    other.send(writeSyncUpdate(forgedUpdate(victim.doc, 'EVIL')))
    expect(await closing).toEqual({ code: CloseCode.TRY_AGAIN_LATER, reason: 'TANDEM_ERR_CLIENT_ID_IN_USE' })
    expect(serverText(server, name)).toBe('x')

    // nothing tells the connection's next socket from another's: the id is free once it ends
    victim.provider.disconnect()
    await waitFor(() => server.documents.get(name)?.members.size === 1, 5_000, 'the victim left')
    expect(server.documents.get(name)?.owners.owner(victim.doc.clientID)).toBeUndefined()
    const next = rawClient(docUrl(server.url, name))
    await opened(next)
    next.send(writeSyncUpdate(forgedUpdate(victim.doc, '>')))
    await waitFor(() => observer.text.toString() === '>x', 5_000, 'taken after the end')
  })

  test('anonymous mode: a connection passing on another tab\'s content does not take its id', async () => {
    const server = await startServer()
    const name = docName()
    const tab = stockClient(server.url, name)
    const observer = stockClient(server.url, name)
    await Promise.all([synced(tab.provider), synced(observer.provider)])
    tab.text.insert(0, 'a')
    await waitFor(() => observer.text.toString() === 'a', 5_000, 'observer sees a')
    tab.provider.disconnect()
    tab.text.insert(1, 'b') // offline; a second tab hears of it over BroadcastChannel
    const secondTab = rawClient(docUrl(server.url, name))
    await opened(secondTab)
    // its sync step 2 carries the first tab's edit
    secondTab.send(writeSyncUpdate(Y.encodeStateAsUpdate(tab.doc, Y.encodeStateVector(observer.doc))))
    await waitFor(() => observer.text.toString() === 'ab', 5_000, 'the edit passed on')
    tab.provider.connect()
    await synced(tab.provider)
    tab.text.insert(2, 'c')
    await waitFor(() => observer.text.toString() === 'abc', 5_000, 'the first tab writes on')
    expect(secondTab.readyState).toBe(secondTab.OPEN)
  })

  test('anonymous mode: a connection passing on another tab\'s awareness state (its second id) does not take that id', async () => {
    const server = await startServer()
    const name = docName()
    const tab = stockClient(server.url, name)
    const observer = stockClient(server.url, name)
    await Promise.all([synced(tab.provider), synced(observer.provider)])
    tab.provider.disconnect()
    await waitFor(() => server.documents.get(name)?.members.size === 1, 5_000, 'the tab left')
    const secondTab = rawClient(docUrl(server.url, name))
    await opened(secondTab)
    // its own state first, then the first tab's, heard over BroadcastChannel: a provisional claim
    secondTab.send(writeAwareness(writeAwarenessUpdate([{ clientId: 1234567, clock: 1, state: '{"user":"second"}' }])))
    secondTab.send(writeAwareness(writeAwarenessUpdate([{ clientId: tab.doc.clientID, clock: 5, state: '{"user":"first"}' }])))
    await waitFor(() => observer.provider.awareness.getStates().get(tab.doc.clientID) !== undefined, 5_000, 'the state passed on')
    expect(server.documents.get(name)?.owners.owner(tab.doc.clientID)).toBeUndefined()
    tab.provider.connect()
    await synced(tab.provider)
    tab.text.insert(0, 'a')
    await waitFor(() => observer.text.toString() === 'a', 5_000, 'the first tab writes')
    expect(secondTab.readyState).toBe(secondTab.OPEN)
  })
})

describe('awareness ids belong to the user that first used them', () => {
  test('a state sent under a user\'s id while they reconnect is dropped; others see the user\'s own cursor', async () => {
    const server = await startServer({ authSecret: SECRET })
    const name = docName()
    const victim = await signedIn(server, name, 'alice')
    const observer = await signedIn(server, name, 'carol')
    const id = victim.doc.clientID
    const seen: unknown[] = []
    observer.provider.awareness.on('change', () => {
      const state = observer.provider.awareness.getStates().get(id)
      if (state !== undefined) seen.push(state.cursor)
    })
    victim.provider.awareness.setLocalState({ user: 'alice', cursor: 1 })
    await waitFor(() => observer.provider.awareness.getStates().get(id)?.cursor === 1, 5_000, 'observer sees the cursor')

    victim.provider.disconnect()
    await waitFor(() => !observer.provider.awareness.getStates().has(id), 5_000, 'the removal')
    const attacker = await rawSignedIn(server, name, 'mallory')
    attacker.send(writeAwareness(writeAwarenessUpdate([{ clientId: id, clock: 1_000_000, state: JSON.stringify({ user: 'alice', cursor: 666 }) }])))
    victim.provider.connect()
    await waitFor(() => observer.provider.awareness.getStates().get(id)?.cursor === 1, 5_000, 'observer sees the user\'s own cursor again')
    // a later, changed state of the attacker is dropped too, and the user's next change is seen
    attacker.send(writeAwareness(writeAwarenessUpdate([{ clientId: id, clock: 2_000_000, state: JSON.stringify({ user: 'alice', cursor: 667 }) }])))
    victim.provider.awareness.setLocalStateField('cursor', 2)
    await waitFor(() => observer.provider.awareness.getStates().get(id)?.cursor === 2, 5_000, 'the user\'s next cursor')
    expect(seen.filter(cursor => cursor === 666 || cursor === 667)).toEqual([])
    expect(victim.provider.awareness.getLocalState()?.cursor).toBe(2)
    expect(attacker.readyState).toBe(attacker.OPEN)
  })
})
