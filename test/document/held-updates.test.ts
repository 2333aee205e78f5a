import { describe, expect, test } from 'vitest'
import * as Y from 'yjs'
import { Document, type DocumentMember } from '../../server/document/document.js'
import { DEFAULT_HELD_LIMITS } from '../../server/document/held-updates.js'
import { testLogger } from '../support/helpers.js'
import { readFrame } from '../../shared/messages.js'
import type { TandemError } from '../../shared/errors.js'

/** A member that records what the document tells it. */
function member (user = 'user'): DocumentMember & { sent: Uint8Array[], failed: TandemError[], acks: number } {
  const m = {
    sent: [] as Uint8Array[],
    failed: [] as TandemError[],
    acks: 0,
    send (frame: Uint8Array) { m.sent.push(frame) },
    relay () {},
    acknowledge (count: number) { m.acks += count },
    hold: () => ({ done: false }),
    settle () { m.acks++ },
    fail (error: TandemError) { m.failed.push(error) },
    // one user for every member unless told: their client ids are never another's
    clientOwner: user,
    durableOwner: true
  }
  return m
}

/** An update that depends on content the document never gets. */
function dependentUpdate (): Uint8Array {
  const doc = new Y.Doc()
  doc.getText('t').insert(0, 'hidden')
  let update: Uint8Array | undefined
  doc.on('update', (u: Uint8Array) => { update = u })
  doc.getText('t').insert(2, 'x')
  return update!
}

describe('held updates in a document', () => {
  test('per-session and per-document bounds refuse with TANDEM_ERR_UPDATE_INCOMPLETE (1013)', () => {
    const doc = new Document('held-bounds', testLogger, () => {}, null, { ...DEFAULT_HELD_LIMITS, sessionFrames: 2, documentFrames: 3 })
    const [a, b] = [member(), member()]
    doc.addMember(a)
    doc.addMember(b)
    doc.applyUpdate(dependentUpdate(), a)
    doc.applyUpdate(dependentUpdate(), a)
    expect(() => doc.applyUpdate(dependentUpdate(), a)).toThrow(expect.objectContaining({ code: 'TANDEM_ERR_UPDATE_INCOMPLETE', closeCode: 1013 }))
    doc.applyUpdate(dependentUpdate(), b)
    expect(() => doc.applyUpdate(dependentUpdate(), b)).toThrow(/document would hold 4 updates/)
    expect(doc.heldUpdates).toBe(3)
    // the sender is asked once per interval, not once per frame
    expect(a.sent.filter(f => readFrame(f).type === 'sync-step1')).toHaveLength(1)
    doc.removeMember(a)
    expect(doc.heldUpdates).toBe(1)
    expect(a.acks + b.acks).toBe(0)
  })

  test('a member whose held update waited past maxAgeMs is failed with 1013; one within it is not', () => {
    const doc = new Document('held-age', testLogger, () => {}, null, { ...DEFAULT_HELD_LIMITS, maxAgeMs: 1_000 })
    const m = member()
    doc.addMember(m)
    doc.applyUpdate(dependentUpdate(), m)
    doc.expireHeld(m, Date.now() + 500)
    expect(m.failed).toEqual([])
    doc.expireHeld(m, Date.now() + 5_000)
    expect(m.failed.map(e => e.code)).toEqual(['TANDEM_ERR_UPDATE_INCOMPLETE'])
  })

  test('a held update is checked again when applied: an id another user claimed meanwhile refuses it (4403)', () => {
    const doc = new Document('held-owners', testLogger, () => {})
    const [alice, bob] = [member('alice'), member('bob')]
    doc.addMember(alice)
    doc.addMember(bob)
    const source = new Y.Doc()
    const updates: Uint8Array[] = []
    source.on('update', (u: Uint8Array) => { updates.push(u) })
    source.getText('t').insert(0, 'hidden')
    source.getText('t').insert(2, 'x')
    const [first, second] = updates as [Uint8Array, Uint8Array]
    doc.applyUpdate(second, alice) // held: it needs the first
    expect(doc.heldUpdates).toBe(1)
    doc.applyUpdate(first, bob) // bob claims the source's id, and alice's update is released
    expect(alice.failed.map(e => [e.code, e.closeCode])).toEqual([['TANDEM_ERR_CLIENT_ID_TAKEN', 4403]])
    expect(doc.ydoc.getText('t').toString()).toBe('hidden')
    expect(doc.owners.owner(source.clientID)).toBe('bob')
  })
})
