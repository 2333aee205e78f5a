import { describe, expect, test } from 'vitest'
import * as Y from 'yjs'
import fc from 'fast-check'
import { docName, opened, rawClient, startServer, stockClient, synced, tempDir, waitFor, type StockClient } from '../support/helpers.js'
import { record, tandemClient } from '../support/tandem-helpers.js'
import { POSTGRES_URL, REDIS_URL, pgSchema, postgresUp, redisPrefix, redisUp, testWith } from '../support/services.js'
import { docUrl, signToken } from '../support/security-helpers.js'
import { LockDeniedError, LockedError, isTandemError, type Lock, type TandemClient } from '../../client/index.js'
import type { TandemServer, ServerOptions } from '../../server/index.js'
import { applyEnforced } from '../../server/document/enforced-locks.js'
import { TypeGuards } from '../../server/document/type-guards.js'
import { integrate } from '../../server/document/integrate.js'
import { integratesWhole } from '../../server/document/read-only.js'
import type { LockInfo } from '../../shared/tandem.js'
import { readFrame, writeSyncUpdate } from '../../shared/messages.js'

/** Everything the tests look at in a document, formatting included. */
function content (doc: Y.Doc): string {
  return JSON.stringify({
    t: doc.getText('t').toDelta(),
    f: doc.getText('f').toString(),
    m: doc.getMap('m').toJSON(),
    a: doc.getArray('a').toJSON(),
    x: doc.getXmlFragment('x').toString()
  })
}

type Peer = TandemClient | StockClient

/** Waits until every peer's content equals `expected` (the holder's). */
async function converged (peers: Peer[], expected: () => string, what: string): Promise<void> {
  await waitFor(() => peers.every(peer => content(peer.doc) === expected()), 5_000, what)
}

/** A server (SQLite in a fresh folder, so that it can be restarted) with its options. */
async function restartable (): Promise<{ server: TandemServer, options: ServerOptions }> {
  const options: ServerOptions = { persistence: 'sqlite', dataDir: tempDir() }
  return { server: await startServer(options), options }
}

/** Closes the server, starts it again on the same store and returns what a fresh client loads. */
async function reloaded (server: TandemServer, options: ServerOptions, name: string, params?: Record<string, string>): Promise<string> {
  await server.close()
  const again = await startServer(options)
  const fresh = stockClient(again.url, name, { params })
  await synced(fresh.provider)
  return content(fresh.doc)
}

/** A holder (Tandem), a Tandem non-holder and a stock y-websocket client on one document. */
async function trio (server: TandemServer, name: string): Promise<{ ada: TandemClient, bob: TandemClient, stock: StockClient }> {
  const ada = tandemClient(server.url, name, { user: { id: 'ada', name: 'Ada' } })
  const bob = tandemClient(server.url, name, { user: { id: 'bob', name: 'Bob' } })
  const stock = stockClient(server.url, name)
  await Promise.all([ada.synced(), bob.synced(), synced(stock.provider)])
  return { ada, bob, stock }
}

describe('locks the server enforces', () => {
  test('a stock client\'s insert, delete and format inside a guarded text are undone everywhere', async () => {
    const { server, options } = await restartable()
    const name = docName()
    const { ada, bob, stock } = await trio(server, name)
    const peers = [ada, bob, stock]
    ada.doc.getText('t').insert(0, 'hello world')
    await converged(peers, () => content(ada.doc), 'the text everywhere')
    const lock = await ada.locks.acquire(ada.doc.getText('t'))
    expect(lock.resource).toBe('y:t')
    const expected = content(ada.doc)

    stock.doc.getText('t').insert(5, ' there')
    await converged(peers, () => expected, 'insert undone')
    stock.doc.getText('t').delete(0, 6)
    await converged(peers, () => expected, 'delete undone')
    stock.doc.getText('t').format(0, 5, { bold: true })
    await converged(peers, () => expected, 'format undone')
    expect(stock.doc.getText('t').toString()).toBe('hello world')

    // the holder still writes
    ada.doc.getText('t').insert(11, '!')
    await converged(peers, () => content(ada.doc), 'the holder\'s edit everywhere')
    const final = content(ada.doc)
    await ada.flushed()
    expect(await reloaded(server, options, name)).toBe(final)
  })

  test('map and array: a Tandem non-holder\'s set, delete, insert are undone, and it hears TANDEM_ERR_LOCKED with the holder', async () => {
    const { server, options } = await restartable()
    const name = docName()
    const { ada, bob, stock } = await trio(server, name)
    const peers = [ada, bob, stock]
    const bobEvents = record(bob)
    ada.doc.transact(() => {
      ada.doc.getMap('m').set('title', 'Plan')
      ada.doc.getMap('m').set('owner', 'ada')
      ada.doc.getArray('a').insert(0, [1, 2, 3])
    })
    await converged(peers, () => content(ada.doc), 'the map and array everywhere')
    const mapLock = await ada.locks.acquire(ada.doc.getMap('m'))
    await ada.locks.acquire('y:a')
    const expected = content(ada.doc)

    bob.doc.getMap('m').set('title', 'Mine')
    await converged(peers, () => expected, 'map set undone')
    bob.doc.getMap('m').delete('owner')
    await converged(peers, () => expected, 'map delete undone')
    bob.doc.getArray('a').insert(1, ['x'])
    await converged(peers, () => expected, 'array insert undone')
    stock.doc.getArray('a').delete(0, 2)
    await converged(peers, () => expected, 'array delete undone')
    const locked = bobEvents.errors.filter((err): err is LockedError => err instanceof LockedError)
    expect(locked.length).toBe(3)
    expect(isTandemError(locked[0], 'TANDEM_ERR_LOCKED')).toBe(true)
    expect(locked[0]?.holder).toMatchObject({ resource: 'y:m', sessionId: ada.sessionId, token: mapLock.token, userId: 'ada' })
    expect(locked[2]?.holder.resource).toBe('y:a')
    expect(bob.locks.guarded().map(g => [g.resource, g.holder.userId, g.type === bob.doc.getMap('m') || g.type === bob.doc.getArray('a')]).sort())
      .toEqual([['y:a', 'ada', true], ['y:m', 'ada', true]])
    await ada.flushed()
    await bob.flushed()
    expect(await reloaded(server, options, name)).toBe(expected)
  })

  test('a nested XML element: text, attributes, children and formatting inside it are guarded; the rest of the fragment is free', async () => {
    const { server, options } = await restartable()
    const name = docName()
    const { ada, bob, stock } = await trio(server, name)
    const peers = [ada, bob, stock]
    const section = new Y.XmlElement('section')
    ada.doc.getXmlFragment('x').insert(0, [section])
    const para = new Y.XmlElement('p')
    section.insert(0, [para])
    para.insert(0, [new Y.XmlText('locked words')])
    await converged(peers, () => content(ada.doc), 'the fragment everywhere')
    const lock = await ada.locks.acquire(section)
    expect(lock.resource).toMatch(/^y:\d+:\d+$/)
    const expected = content(ada.doc)
    const theirs = stock.doc.getXmlFragment('x').get(0) as Y.XmlElement
    const theirText = (theirs.get(0) as Y.XmlElement).get(0) as Y.XmlText
    theirText.insert(0, 'not ')
    await converged(peers, () => expected, 'text insert undone')
    theirText.format(0, 6, { bold: true })
    await converged(peers, () => expected, 'format undone')
    theirs.setAttribute('class', 'mine')
    await converged(peers, () => expected, 'attribute undone')
    theirs.insert(1, [new Y.XmlElement('aside')])
    await converged(peers, () => expected, 'child insert undone')
    theirs.delete(0, 1)
    await converged(peers, () => expected, 'child delete undone')
    expect(bob.locks.guardOf(((bob.doc.getXmlFragment('x').get(0) as Y.XmlElement).get(0) as Y.XmlElement))?.userId).toBe('ada')
    // outside the element, the fragment is free
    stock.doc.getXmlFragment('x').insert(1, [new Y.XmlElement('footer')])
    await converged(peers, () => content(stock.doc), 'the free edit everywhere')
    expect(ada.doc.getXmlFragment('x').length).toBe(2)
    const final = content(ada.doc)
    await ada.flushed()
    expect(await reloaded(server, options, name)).toBe(final)
  })

  test('deleting the guarded type itself brings it back, with its content, and it stays guarded', async () => {
    const { server, options } = await restartable()
    const name = docName()
    const { ada, bob, stock } = await trio(server, name)
    const peers = [ada, bob, stock]
    const inner = new Y.Map<unknown>()
    ada.doc.getMap('m').set('inner', inner)
    inner.set('k', 'v')
    inner.set('list', Y.Array.from([1, 2]))
    await converged(peers, () => content(ada.doc), 'the nested map everywhere')
    await ada.locks.acquire(inner)
    const expected = content(ada.doc)
    stock.doc.getMap('m').delete('inner')
    await converged(peers, () => expected, 'the deletion undone')
    // the copy is guarded under the lock's name: another edit inside it is undone too
    ;(stock.doc.getMap('m').get('inner') as Y.Map<unknown>).set('k', 'changed')
    await converged(peers, () => expected, 'an edit of the copy undone')
    // and the holder edits the copy
    ;(ada.doc.getMap('m').get('inner') as Y.Map<unknown>).set('k', 'ada\'s')
    await converged(peers, () => content(ada.doc), 'the holder\'s edit everywhere')
    expect((bob.doc.getMap('m').get('inner') as Y.Map<unknown>).get('k')).toBe('ada\'s')
    const final = content(ada.doc)
    await ada.flushed()
    expect(await reloaded(server, options, name)).toBe(final)
  })

  test('one update touching a guarded and a free type: the free part takes effect', async () => {
    const { server, options } = await restartable()
    const name = docName()
    const { ada, bob, stock } = await trio(server, name)
    const peers = [ada, bob, stock]
    ada.doc.getText('t').insert(0, 'guarded')
    await converged(peers, () => content(ada.doc), 'the text everywhere')
    await ada.locks.acquire(ada.doc.getText('t'))
    stock.doc.transact(() => {
      stock.doc.getText('t').insert(0, 'X')
      stock.doc.getText('f').insert(0, 'free')
    })
    await waitFor(() => peers.every(peer => peer.doc.getText('f').toString() === 'free' && peer.doc.getText('t').toString() === 'guarded'), 5_000, 'free part kept, guarded part undone')
    await converged(peers, () => content(ada.doc), 'all equal')
    const final = content(ada.doc)
    await ada.flushed()
    expect(await reloaded(server, options, name)).toBe(final)
  })

  test('an edit that raced the acquire (made before, arriving after) is undone', async () => {
    const { server, options } = await restartable()
    const name = docName()
    const { ada, bob, stock } = await trio(server, name)
    const peers = [ada, bob, stock]
    ada.doc.getText('t').insert(0, 'mine')
    await converged(peers, () => content(ada.doc), 'the text everywhere')
    stock.provider.disconnect()
    stock.doc.getText('t').insert(4, ' and theirs')
    await ada.locks.acquire(ada.doc.getText('t'))
    stock.provider.connect()
    await converged(peers, () => content(ada.doc), 'the raced edit undone')
    expect(stock.doc.getText('t').toString()).toBe('mine')
    const final = content(ada.doc)
    await ada.flushed()
    expect(await reloaded(server, options, name)).toBe(final)
  })

  test('releasing the lock lifts the guard; other resource names stay advisory', async () => {
    const server = await startServer()
    const name = docName()
    const { ada, bob, stock } = await trio(server, name)
    const peers = [ada, bob, stock]
    const stranger = await ada.locks.acquire(new Y.Doc().getText('t')).catch((err: unknown) => err)
    expect(isTandemError(stranger, 'TANDEM_ERR_INVALID_RESOURCE')).toBe(true)
    const lock = await ada.locks.acquire(ada.doc.getText('t'))
    await ada.locks.acquire('block:t')
    await lock.release()
    stock.doc.getText('t').insert(0, 'free again')
    await converged(peers, () => content(stock.doc), 'the edit everywhere')
    expect(ada.doc.getText('t').toString()).toBe('free again')
  })

  test('a session whose undone deletions keep costing more than its budget is closed with 1013', async () => {
    const server = await startServer()
    const name = docName()
    const ada = tandemClient(server.url, name, { user: { id: 'ada' } })
    const stock = stockClient(server.url, name)
    await Promise.all([ada.synced(), synced(stock.provider)])
    const big = 'x'.repeat(1024 * 1024)
    ada.doc.getText('t').insert(0, big)
    await waitFor(() => stock.doc.getText('t').length === big.length, 10_000, 'the big text everywhere')
    await ada.locks.acquire(ada.doc.getText('t'))
    const codes: number[] = []
    stock.provider.on('connection-close', (event: CloseEvent | null) => { if (event !== null) codes.push(event.code) })
    // each deletion of 1 MiB is copied back: the 8 MiB budget runs out within a dozen
    for (let round = 0; round < 12 && codes.length === 0; round++) {
      stock.doc.getText('t').delete(0, stock.doc.getText('t').length)
      await waitFor(() => stock.doc.getText('t').length === big.length || codes.length > 0, 10_000, `round ${round} undone`)
    }
    expect(codes).toContain(1013)
    expect(ada.doc.getText('t').toString()).toBe(big)
  })

  test('a read-only stock client\'s edit is undone on its own screen, without a reload', async () => {
    const secret = 'enforce-secret-enforce-secret-enforce'
    const options: ServerOptions = { persistence: 'sqlite', dataDir: tempDir(), authSecret: secret }
    const server = await startServer(options)
    const name = docName()
    const writerParams = { token: await signToken(secret, { sub: 'w', access: 'write' }) }
    const writer = stockClient(server.url, name, { params: writerParams })
    const reader = stockClient(server.url, name, { params: { token: await signToken(secret, { sub: 'r', access: 'read' }) } })
    await Promise.all([synced(writer.provider), synced(reader.provider)])
    writer.doc.getText('t').insert(0, 'written')
    writer.doc.getMap('m').set('k', 1)
    await converged([writer, reader], () => content(writer.doc), 'the content everywhere')
    const expected = content(writer.doc)
    reader.doc.getText('t').insert(0, 'read-only ')
    await converged([writer, reader], () => expected, 'insert undone on the reader')
    reader.doc.getText('t').delete(0, 3)
    reader.doc.getMap('m').delete('k')
    await converged([writer, reader], () => expected, 'deletions undone on the reader')
    await waitFor(() => server.documents.get(name)?.hasPending === false, 5_000, 'stored')
    expect(await reloaded(server, options, name, writerParams)).toBe(expected)
  })

  test('a read-only Tandem client\'s undone edit is refused once and never acknowledged', async () => {
    const secret = 'enforce-secret-enforce-secret-enforce'
    const server = await startServer({ authSecret: secret })
    const name = docName()
    const token = await signToken(secret, { sub: 'r', access: 'read' })
    const ws = rawClient(docUrl(server.url, name, { token, tandem: '1' }))
    const frames: Array<ReturnType<typeof readFrame>> = []
    ws.on('message', (data: Buffer) => frames.push(readFrame(data)))
    await opened(ws)
    const scratch = new Y.Doc()
    scratch.getText('t').insert(0, 'nope')
    ws.send(writeSyncUpdate(Y.encodeStateAsUpdate(scratch)))
    const replies = (): unknown[] => frames.flatMap(f => f.type === 'tandem' && (f.message.type === 'ack' || f.message.type === 'refused') ? [f.message] : [])
    await waitFor(() => replies().length >= 1, 5_000, 'the reply')
    // the edit and its undo are stored as one update: nothing may acknowledge the frame after that
    await waitFor(() => server.documents.get(name)?.hasPending === false, 5_000, 'stored')
    // a round trip on the same socket (query awareness): a late ack would arrive before its answer
    const answers = (): number => frames.filter(f => f.type === 'awareness').length
    const before = answers()
    ws.send(Uint8Array.of(3))
    await waitFor(() => answers() > before, 5_000, 'the awareness answer')
    expect(replies()).toEqual([{ type: 'refused', count: 1, code: 'TANDEM_ERR_READ_ONLY' }])
    expect(server.documents.get(name)!.ydoc.getText('t').toString()).toBe('')
    ws.close()
  })

  testWith(postgresUp && redisUp)('two instances sharing Redis: a lock taken through one is enforced on the other', async () => {
    const schema = pgSchema()
    const options: ServerOptions = { persistence: `${POSTGRES_URL}?schema=${schema}`, redis: REDIS_URL, redisPrefix: redisPrefix() }
    const one = await startServer(options)
    const two = await startServer(options)
    const name = docName()
    const ada = tandemClient(one.url, name, { user: { id: 'ada' } })
    const bob = tandemClient(two.url, name, { user: { id: 'bob' } })
    const stock = stockClient(two.url, name)
    const peers = [ada, bob, stock]
    await Promise.all([ada.synced(), bob.synced(), synced(stock.provider)])
    ada.doc.getText('t').insert(0, 'across')
    await converged(peers, () => content(ada.doc), 'the text everywhere')
    await ada.locks.acquire(ada.doc.getText('t'))
    await waitFor(() => bob.locks.holder('y:t') !== undefined, 5_000, 'the lock heard on the other instance')
    const expected = content(ada.doc)
    stock.doc.getText('t').insert(0, 'X')
    await converged(peers, () => expected, 'undone by the other instance')
    bob.doc.getText('t').delete(0, 2)
    await converged(peers, () => expected, 'undone again')
    await ada.flushed()
    await bob.flushed()
    await waitFor(() => two.documents.get(name)?.hasPending === false, 5_000, 'stored')
    await one.close()
    await two.close()
    const three = await startServer(options)
    const fresh = stockClient(three.url, name)
    await synced(fresh.provider)
    expect(content(fresh.doc)).toBe(expected)
  })

  test('seeded random edits by holders and non-holders: all converge, guarded text is what holders wrote', async () => {
    const server = await startServer()
    let edits = 0
    let undone = 0
    await fc.assert(fc.asyncProperty(fc.array(step(), { minLength: 8, maxLength: 20 }), async steps => {
      const name = docName()
      const { ada, bob, stock } = await trio(server, name)
      const peers: Peer[] = [ada, bob, stock]
      const locks = new Map<TandemClient, Lock>()
      const holderOfT = (): TandemClient | StockClient | null => [...locks.entries()].find(([, lock]) => !lock.released)?.[0] ?? null
      try {
        for (const s of steps) {
          const peer = peers[s.who] as Peer
          if (s.op === 'acquire' || s.op === 'release') {
            if (!('locks' in peer)) continue
            if (s.op === 'acquire') {
              const lock = await peer.locks.acquire(peer.doc.getText('t')).catch((err: unknown) => { if (err instanceof LockDeniedError) return null; throw err })
              if (lock !== null) locks.set(peer, lock)
            } else {
              await locks.get(peer)?.release()
              locks.delete(peer)
            }
            continue
          }
          const text = peer.doc.getText(s.target)
          const before = content(peer.doc)
          const guardedBefore = JSON.stringify(peers[0]!.doc.getText('t').toDelta())
          const at = Math.min(s.at, text.length)
          if (s.op === 'insert') text.insert(at, s.text)
          else if (s.op === 'delete') {
            if (text.length === 0) continue
            text.delete(Math.min(at, text.length - 1), Math.max(1, Math.min(3, text.length - at)))
          } else {
            if (text.length === 0) continue
            text.format(0, text.length, { bold: s.at % 2 === 0 ? true : null })
          }
          if (content(peer.doc) === before) continue
          await converged(peers, () => content(peers[0]!.doc), 'convergence')
          edits++
          const holder = holderOfT()
          if (s.target === 't' && holder !== null && holder !== peer) {
            undone++
            expect(JSON.stringify(peers[0]!.doc.getText('t').toDelta())).toBe(guardedBefore)
          }
        }
      } finally {
        for (const peer of peers) if ('leave' in peer) peer.destroy()
        stock.provider.destroy()
      }
    }), { seed: 1812, numRuns: 8, endOnFailure: true })
    // the sequences did exercise the guard
    expect(edits).toBeGreaterThan(20)
    expect(undone).toBeGreaterThan(3)
  })
})

type Step =
  | { who: number, op: 'insert' | 'delete' | 'format', target: 't' | 'f', at: number, text: string }
  | { who: number, op: 'acquire' | 'release', target: 't', at: number, text: string }

function step (): fc.Arbitrary<Step> {
  return fc.record({
    who: fc.integer({ min: 0, max: 2 }),
    op: fc.constantFrom('insert', 'insert', 'delete', 'format', 'acquire', 'release'),
    target: fc.constantFrom('t', 'f'),
    at: fc.integer({ min: 0, max: 20 }),
    text: fc.string({ minLength: 1, maxLength: 4 })
  }) as fc.Arbitrary<Step>
}

describe('enforcement inside one document', () => {
  const lock = (sessionId: string): LockInfo => ({ resource: 'y:t', token: 1, sessionId, userId: sessionId, name: sessionId, color: '', acquiredAt: 0, expiresAt: 0 })

  /** Applies `update` from `sessionId` to `doc` under `guards`, as Document.applyUpdate does. */
  function apply (doc: Y.Doc, guards: TypeGuards, sessionId: string, update: Uint8Array): ReturnType<typeof applyEnforced> {
    const decoded = Y.decodeUpdate(update)
    const origin = {}
    return applyEnforced(doc, { kind: 'locks', guards, sessionId }, decoded, origin, () => integrate(doc, update, decoded.structs, origin))
  }

  /** The update a change makes in `doc`. */
  function edit (doc: Y.Doc, change: () => void): Uint8Array {
    const updates: Uint8Array[] = []
    const listener = (update: Uint8Array): void => { updates.push(update) }
    doc.on('update', listener)
    change()
    doc.off('update', listener)
    return Y.mergeUpdates(updates)
  }

  test('content another sender left pending, integrating with the holder\'s update, is undone', () => {
    const server = new Y.Doc()
    const ada = new Y.Doc()
    ada.getText('t').insert(0, 'hello')
    Y.applyUpdate(server, Y.encodeStateAsUpdate(ada))
    const guards = new TypeGuards()
    guards.acquired(lock('ada'))
    // ada types, not sent yet; mallory saw it (or guessed its id) and writes right after it
    const adas = edit(ada, () => ada.getText('t').insert(5, '!'))
    const mallory = new Y.Doc()
    Y.applyUpdate(mallory, Y.encodeStateAsUpdate(ada))
    const mallorys = edit(mallory, () => mallory.getText('t').insert(6, ' pwned'))
    const first = apply(server, guards, 'mallory', mallorys)
    expect(first.changes).toBeNull()
    expect(server.getText('t').toString()).toBe('hello')
    const second = apply(server, guards, 'ada', adas)
    expect(second.reverted).toBe(true)
    expect(server.getText('t').toString()).toBe('hello!')
    // every client converges from the relayed update
    const bob = new Y.Doc()
    Y.applyUpdate(bob, Y.encodeStateAsUpdate(ada))
    Y.applyUpdate(bob, mallorys)
    Y.applyUpdate(bob, second.changes!)
    expect(bob.getText('t').toString()).toBe('hello!')
  })

  test('deleting a free container of a guarded type brings the guarded type back inside a copy of it', () => {
    const server = new Y.Doc()
    const ada = new Y.Doc()
    const outer = new Y.Map<unknown>()
    ada.getMap('m').set('outer', outer)
    const guarded = new Y.Text('keep me')
    outer.set('guarded', guarded)
    outer.set('free', 'gone')
    Y.applyUpdate(server, Y.encodeStateAsUpdate(ada))
    const guards = new TypeGuards()
    const id = guarded._item!.id
    guards.acquired({ ...lock('ada'), resource: `y:${id.client}:${id.clock}` })
    const bob = new Y.Doc()
    Y.applyUpdate(bob, Y.encodeStateAsUpdate(ada))
    const result = apply(server, guards, 'bob', edit(bob, () => bob.getMap('m').delete('outer')))
    expect(result.reverted).toBe(true)
    expect(result.refusedBy?.sessionId).toBe('ada')
    Y.applyUpdate(bob, result.changes!)
    for (const doc of [server, bob]) {
      expect(doc.getMap('m').toJSON()).toEqual({ outer: { guarded: 'keep me' } })
    }
    // the copy is what the lock guards now: bob's edit of it is undone too
    const copy = (bob.getMap('m').get('outer') as Y.Map<unknown>).get('guarded') as Y.Text
    const again = apply(server, guards, 'bob', edit(bob, () => copy.insert(0, 'no ')))
    expect(again.reverted).toBe(true)
    expect(((server.getMap('m').get('outer') as Y.Map<unknown>).get('guarded') as Y.Text).toString()).toBe('keep me')
  })

  test('with no lock on a type the update goes through untouched', () => {
    const server = new Y.Doc()
    const guards = new TypeGuards()
    guards.acquired({ ...lock('ada'), resource: 'block:1' })
    expect(guards.active).toBe(false)
    guards.acquired(lock('ada'))
    guards.released({ ...lock('ada'), token: 0 })
    expect(guards.active).toBe(true)
    const bob = new Y.Doc()
    const update = edit(bob, () => bob.getText('f').insert(0, 'free'))
    const result = apply(server, guards, 'bob', update)
    expect(result).toEqual({ changes: update, reverted: false, refusedBy: null, revertBytes: 0 })
    guards.released(lock('ada'))
    expect(guards.active).toBe(false)
  })
})

describe('read-only updates that would leave content pending', () => {
  test('integratesWhole: an honest edit integrates whole; one that references unknown content does not', () => {
    const server = new Y.Doc()
    const writer = new Y.Doc()
    writer.getText('t').insert(0, 'abc')
    Y.applyUpdate(server, Y.encodeStateAsUpdate(writer))
    const reader = new Y.Doc()
    Y.applyUpdate(reader, Y.encodeStateAsUpdate(server))
    const honest: Uint8Array[] = []
    reader.on('update', (update: Uint8Array) => honest.push(update))
    reader.getText('t').insert(1, 'x')
    reader.getText('t').delete(0, 1)
    expect(integratesWhole(server, Y.mergeUpdates(honest))).toBe(true)
    // content the server lacks (the writer's next edit, never sent), and an edit after it
    const unsent: Uint8Array[] = []
    writer.on('update', (update: Uint8Array) => unsent.push(update))
    writer.getText('t').insert(3, 'd')
    const forger = new Y.Doc()
    Y.applyUpdate(forger, Y.encodeStateAsUpdate(writer))
    const forged: Uint8Array[] = []
    forger.on('update', (update: Uint8Array) => forged.push(update))
    forger.getText('t').insert(4, 'e')
    expect(integratesWhole(server, forged[0]!)).toBe(false)
    // a deletion of content the server lacks
    const deletes: Uint8Array[] = []
    const other = new Y.Doc()
    Y.applyUpdate(other, Y.encodeStateAsUpdate(writer))
    other.on('update', (update: Uint8Array) => deletes.push(update))
    other.getText('t').delete(3, 1)
    expect(integratesWhole(server, deletes[0]!)).toBe(false)
  })
})
