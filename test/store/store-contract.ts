import { describe, expect, test } from 'vitest'
import * as Y from 'yjs'
import type { OutboxEvent, Store } from '../../server/store/store.js'
import { docName } from '../support/helpers.js'

/** A place a store lives: each `open()` is a new Store instance over the same data. */
export interface StoreBacking {
  open (): Promise<Store>
  /** Data survives close and reopen. */
  durable: boolean
  /** Several open instances see each other's writes (as several servers would). */
  shared: boolean
}

/** An update that inserts `text` at the start of text 't', from a fresh client. */
function edit (text: string): Uint8Array {
  const doc = new Y.Doc()
  doc.getText('t').insert(0, text)
  const update = Y.encodeStateAsUpdate(doc)
  doc.destroy()
  return update
}

/** Rebuilds a document from its stored updates; returns its text characters, sorted. */
function contents (updates: readonly Uint8Array[]): string {
  const doc = new Y.Doc()
  for (const update of updates) Y.applyUpdate(doc, update)
  const text = doc.getText('t').toString()
  doc.destroy()
  return [...text].sort().join('')
}

/**
 * The Store contract, run against every implementation (socket.io-adapter's testSuite habit).
 * `backing` makes a fresh, empty place for each test and registers its own teardown.
 */
export function storeContract (kind: string, backing: () => Promise<StoreBacking>, enabled = true): void {
  const it = enabled ? test : test.skip
  describe(`Store contract: ${kind}`, () => {
    it('loads what was appended, per document, in any number of batches', async () => {
      const b = await backing()
      const store = await b.open()
      const [a, other] = [docName(), docName()]
      await store.append([{ name: a, update: edit('a') }, { name: other, update: edit('x') }])
      await store.append([{ name: a, update: edit('b') }])
      await store.append([])
      expect(contents(await store.load(a))).toBe('ab')
      expect(contents(await store.load(other))).toBe('x')
      expect(await store.load(docName())).toEqual([])
      await store.close()
    })

    it('keeps bytes exactly', async () => {
      const b = await backing()
      const store = await b.open()
      const name = docName()
      const update = edit('é✓'.repeat(1_000))
      await store.append([{ name, update }])
      const [loaded] = await store.load(name)
      expect(loaded).toBeInstanceOf(Uint8Array)
      expect(Buffer.from(loaded as Uint8Array).equals(Buffer.from(update))).toBe(true)
      await store.close()
    })

    it('compaction folds the log into one update with the same content', async () => {
      const b = await backing()
      const store = await b.open()
      const name = docName()
      for (const c of 'abcdef') await store.append([{ name, update: edit(c) }])
      await store.compact(name)
      const after = await store.load(name)
      expect(after).toHaveLength(1)
      expect(contents(after)).toBe('abcdef')
      await store.compact(name) // nothing to fold: a no-op
      expect(await store.load(name)).toHaveLength(1)
      await store.close()
    })

    it('compaction keeps updates appended while it runs', async () => {
      const b = await backing()
      const store = await b.open()
      const writer = b.shared ? await b.open() : store
      const name = docName()
      let expected = ''
      for (let i = 0; i < 20; i++) {
        const c = String.fromCharCode(65 + i)
        expected += c
        await store.append([{ name, update: edit(c) }])
      }
      // appends race with several compactions; every appended update must survive
      const appends: Array<Promise<void>> = []
      const compactions: Array<Promise<void>> = []
      for (let i = 0; i < 20; i++) {
        const c = String.fromCharCode(97 + i)
        expected += c
        appends.push(writer.append([{ name, update: edit(c) }]))
        if (i % 5 === 0) compactions.push(store.compact(name))
      }
      await Promise.all([...appends, ...compactions])
      expect(contents(await store.load(name))).toBe([...expected].sort().join(''))
      await store.compact(name)
      expect(contents(await store.load(name))).toBe([...expected].sort().join(''))
      if (writer !== store) await writer.close()
      await store.close()
    })

    it('fencing tokens only grow, per resource', async () => {
      const b = await backing()
      const store = await b.open()
      const name = docName()
      const first = await store.nextFencingToken(name, 'block:1')
      const second = await store.nextFencingToken(name, 'block:1')
      expect(second).toBeGreaterThan(first)
      const concurrent = await Promise.all(Array.from({ length: 10 }, () => store.nextFencingToken(name, 'block:1')))
      expect(new Set(concurrent).size).toBe(10)
      expect(Math.min(...concurrent)).toBeGreaterThan(second)
      expect(await store.nextFencingToken(name, 'block:2')).toBeGreaterThanOrEqual(1)
      await store.close()
      if (b.durable) {
        const reopened = await b.open()
        expect(await reopened.nextFencingToken(name, 'block:1')).toBeGreaterThan(Math.max(...concurrent))
        await reopened.close()
      }
    })

    it('keeps what it stored across close and reopen (durable stores)', async ({ skip }) => {
      const b = await backing()
      if (!b.durable) skip('not durable')
      const name = docName()
      const store = await b.open()
      await store.append([{ name, update: edit('k') }, { name, update: edit('l') }])
      await store.close()
      const reopened = await b.open()
      expect(contents(await reopened.load(name))).toBe('kl')
      await reopened.close()
    })

    it('two instances appending to one document at once lose nothing (shared stores)', async ({ skip }) => {
      const b = await backing()
      if (!b.shared) skip('not shared')
      const [one, two] = [await b.open(), await b.open()]
      const name = docName()
      const writes: Array<Promise<void>> = []
      let expected = ''
      for (let i = 0; i < 30; i++) {
        const [x, y] = [String.fromCharCode(0x100 + i), String.fromCharCode(0x200 + i)]
        expected += x + y
        writes.push(one.append([{ name, update: edit(x) }]), two.append([{ name, update: edit(y) }]))
        if (i % 10 === 9) writes.push(one.compact(name), two.compact(name))
      }
      await Promise.all(writes)
      const want = [...expected].sort().join('')
      expect(contents(await one.load(name))).toBe(want)
      expect(contents(await two.load(name))).toBe(want)
      await Promise.all([one.close(), two.close()])
    })

    it('versions: authors since the previous one, newest first, kept across compaction, retention of automatic ones', async () => {
      const b = await backing()
      const store = await b.open()
      const name = docName()
      const version = (id: string, automatic: boolean, state = edit(id)) => ({ id, label: automatic ? null : id, createdAt: Date.now(), automatic, state })
      const always = { ifOlderThanMs: 0, retention: 2 }
      await store.append([{ name, update: edit('a'), author: 'ada' }, { name, update: edit('b'), author: 'bob' }, { name, update: edit('c'), author: 'ada' }])
      await store.append([{ name: docName(), update: edit('z'), author: 'zed' }])
      const first = await store.saveVersion(name, version('v1', false), always)
      expect(first).toMatchObject({ id: 'v1', label: 'v1', authors: ['ada', 'bob'], automatic: false })
      // nothing since: not due, whatever the interval
      expect(await store.saveVersion(name, version('no', true), { ifOlderThanMs: 1, retention: 2 })).toBeNull()
      await store.append([{ name, update: edit('d') }])
      await store.compact(name)
      for (const id of ['a1', 'a2', 'a3']) await store.saveVersion(name, version(id, true), always)
      const list = await store.versions(name)
      expect(list.map(v => v.id)).toEqual(['a3', 'a2', 'v1'])
      expect(list[2]?.authors).toEqual(['ada', 'bob'])
      expect(list[1]?.authors).toEqual([])
      expect(contents([await store.versionState(name, 'v1') as Uint8Array])).toBe('1v')
      expect(await store.versionState(name, 'a1')).toBeNull()
      expect(await store.versionState(docName(), 'v1')).toBeNull()
      expect(await store.versions(docName())).toEqual([])
      await store.close()
      if (b.durable) {
        const reopened = await b.open()
        expect((await reopened.versions(name)).map(v => v.id)).toEqual(['a3', 'a2', 'v1'])
        await reopened.close()
      }
    })

    it('documents due for an automatic version: changed since the last one, which is old enough', async () => {
      const b = await backing()
      const store = await b.open()
      const name = docName()
      await store.append([{ name, update: edit('a'), author: 'ada' }])
      await new Promise(resolve => setTimeout(resolve, 20))
      expect(await store.dueForVersion(10, 1_000)).toContain(name)
      expect(await store.dueForVersion(60_000, 1_000)).not.toContain(name)
      const saved = await store.saveVersion(name, { id: 'x', label: null, createdAt: Date.now(), automatic: true, state: edit('a') }, { ifOlderThanMs: 10, retention: 5 })
      expect(saved?.authors).toEqual(['ada'])
      expect(await store.dueForVersion(10, 1_000)).not.toContain(name)
      await store.close()
    })

    it('outbox: in order per receiver and document, one claim at a time, retries and survives reopening', async () => {
      const b = await backing()
      const store = await b.open()
      const other = b.shared ? await b.open() : store
      const [d1, d2] = [docName(), docName()]
      const entry = (document: string, body: string) => ({ target: 'http://r/1', document, body, createdAt: Date.now() })
      await store.enqueueEvents([entry(d1, '1a'), entry(d2, '2a'), entry(d1, '1b')])
      const mine = (events: OutboxEvent[]): OutboxEvent[] => events.filter(e => e.document === d1 || e.document === d2)
      const claimed = mine(await store.claimEvents('one', 60_000, 100))
      expect(claimed.map(e => e.body)).toEqual(['1a', '2a'])
      // leased: nobody else gets them, nor what is queued behind them
      expect(mine(await other.claimEvents('two', 60_000, 100))).toEqual([])
      const [first, second] = claimed as [OutboxEvent, OutboxEvent]
      await store.settleEvent(first.seq, null)
      await store.settleEvent(second.seq, Date.now() + 60_000)
      const next = mine(await other.claimEvents('two', 60_000, 100))
      expect(next.map(e => e.body)).toEqual(['1b'])
      expect(await store.pendingEvents()).toBeGreaterThanOrEqual(2)
      await store.settleEvent(second.seq, 0)
      const retried = mine(await store.claimEvents('one', 60_000, 100))
      expect(retried.map(e => [e.body, e.attempts])).toEqual([['2a', 2]])
      // a lease that ran out is claimed again
      await store.settleEvent((next[0] as OutboxEvent).seq, 0)
      await store.enqueueEvents([entry(d1, '1c')])
      const expiring = mine(await store.claimEvents('one', 1, 100)).filter(e => e.document === d1)
      await new Promise(resolve => setTimeout(resolve, 10))
      expect(mine(await other.claimEvents('two', 60_000, 100)).map(e => e.body)).toEqual(expiring.map(e => e.body))
      if (other !== store) await other.close()
      await store.close()
      if (b.durable) {
        const reopened = await b.open()
        expect(await reopened.pendingEvents()).toBeGreaterThanOrEqual(3)
        await reopened.close()
      }
    })

    it('a deleted document keeps its data until purged; restore clears the mark; purge drops the data and keeps the retired clients', async () => {
      const b = await backing()
      const store = await b.open()
      const [name, other] = [docName(), docName()]
      await store.append([{ name, update: edit('a'), owners: [{ client: 7, user: 'alice' }] }, { name: other, update: edit('x'), owners: [{ client: 7, user: 'carol' }] }])
      expect(await store.tombstone(name)).toBeNull()
      expect(await store.markDeleted(name, 1_000)).toBe(true)
      expect(await store.markDeleted(name, 2_000)).toBe(false)
      expect(await store.tombstone(name)).toEqual({ deletedAt: 1_000, retired: new Uint8Array(0) })
      expect(contents(await store.load(name))).toBe('a')
      expect(await store.deletedBefore(1_001, 10)).toEqual([{ name, deletedAt: 1_000 }])
      expect(await store.deletedBefore(1_000, 10)).toEqual([])
      expect(await store.restore(name)).toBe(true)
      expect(await store.restore(name)).toBe(false)
      expect((await store.tombstone(name))?.deletedAt).toBeNull()
      expect(await store.deletedBefore(5_000, 10)).toEqual([])
      expect(await store.markDeleted(name, 3_000)).toBe(true)
      // a purge for another deletion than the current one does nothing (a restore won meanwhile)
      expect(await store.purge(name, 1_000, Uint8Array.of(1, 7, 1))).toBe(false)
      expect(contents(await store.load(name))).toBe('a')
      expect(await store.loadOwners?.(name)).toEqual([{ client: 7, user: 'alice' }])
      expect(await store.purge(name, 3_000, Uint8Array.of(1, 7, 1))).toBe(true)
      expect(await store.load(name)).toEqual([])
      // the client id owners go with the data (the retired ids are refused anyway)
      expect(await store.loadOwners?.(name)).toEqual([])
      expect(await store.loadOwners?.(other)).toEqual([{ client: 7, user: 'carol' }])
      expect(await store.tombstone(name)).toEqual({ deletedAt: null, retired: Uint8Array.of(1, 7, 1) })
      expect(await store.restore(name)).toBe(false)
      expect(contents(await store.load(other))).toBe('x')
      expect(await store.tombstone(other)).toBeNull()
      // the name is free: a new generation is stored, and may be deleted again
      await store.append([{ name, update: edit('b') }])
      expect(contents(await store.load(name))).toBe('b')
      expect(await store.markDeleted(name, 4_000)).toBe(true)
      expect(await store.tombstone(name)).toEqual({ deletedAt: 4_000, retired: Uint8Array.of(1, 7, 1) })
      await store.close()
    })

    it('stores client id owners with their updates, oldest claim first; a claim made again is the newest', async () => {
      const b = await backing()
      const store = await b.open()
      const [name, other] = [docName(), docName()]
      expect(await store.loadOwners?.(name)).toEqual([])
      await store.append([
        { name, update: edit('a'), owners: [{ client: 7, user: 'alice' }, { client: 4_294_967_295, user: 'bob' }] },
        { name: other, update: edit('x'), owners: [{ client: 7, user: 'carol' }] },
        { name, update: edit('b') }
      ])
      // id 7 released from alice and claimed by dave: replaced, and now the newest
      await store.append([{ name, update: edit('c'), owners: [{ client: 9, user: 'alice' }, { client: 7, user: 'dave' }] }])
      const want = [{ client: 4_294_967_295, user: 'bob' }, { client: 9, user: 'alice' }, { client: 7, user: 'dave' }]
      expect(await store.loadOwners?.(name)).toEqual(want)
      expect(await store.loadOwners?.(other)).toEqual([{ client: 7, user: 'carol' }])
      expect(contents(await store.load(name))).toBe('abc')
      await store.compact(name)
      expect(await store.loadOwners?.(name)).toEqual(want)
      await store.close()
      if (!b.durable) return
      const reopened = await b.open()
      expect(await reopened.loadOwners?.(name)).toEqual(want)
      await reopened.close()
    })

    it('close is safe to call twice', async () => {
      const b = await backing()
      const store = await b.open()
      await store.close()
      await store.close()
      await Promise.all([store.close(), store.close()])
    })

    it('keeps revocations until they expire, one record per kind and value', async () => {
      const b = await backing()
      const store = await b.open()
      const user = `u-${docName()}`
      const now = Date.now()
      await store.addRevocation({ kind: 'user', value: user, revokedAt: now, expiresAt: now + 60_000 })
      await store.addRevocation({ kind: 'user', value: user, revokedAt: now - 5, expiresAt: now + 120_000 })
      await store.addRevocation({ kind: 'jti', value: user, revokedAt: now, expiresAt: now + 1_000 })
      const mine = (list: Awaited<ReturnType<Store['revocations']>>) => list.filter(r => r.value === user).sort((a, b) => a.kind < b.kind ? -1 : 1)
      expect(mine(await store.revocations(now))).toEqual([
        { kind: 'jti', value: user, revokedAt: now, expiresAt: now + 1_000 },
        { kind: 'user', value: user, revokedAt: now, expiresAt: now + 120_000 }
      ])
      // pruned once expired
      expect(mine(await store.revocations(now + 1_000))).toEqual([{ kind: 'user', value: user, revokedAt: now, expiresAt: now + 120_000 }])
      if (b.durable || b.shared) {
        const again = await b.open()
        expect(mine(await again.revocations(now))).toEqual([{ kind: 'user', value: user, revokedAt: now, expiresAt: now + 120_000 }])
        await again.close()
      }
      await store.close()
    })
  })
}
