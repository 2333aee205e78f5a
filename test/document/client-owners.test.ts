import { describe, expect, test } from 'vitest'
import { ClientOwners, MAX_CLIENT_IDS_PER_USER, MAX_CLIENT_OWNERS, type ClientOwner } from '../../server/document/client-owners.js'
import { decodeBusMessage, encodeBusMessage } from '../../server/cluster/bus-codec.js'
import type { BusMessage } from '../../server/cluster/bus.js'

describe('ClientOwners', () => {
  test('the first user to use an id owns it; others are refused and change nothing', () => {
    const owners = new ClientOwners()
    expect(owners.claim(1, 'alice', true)).toBe(true)
    expect(owners.claim(1, 'mallory', true)).toBe(false)
    expect(owners.claim(1, 'alice', false)).toBe(true)
    expect(owners.owner(1)).toBe('alice')
    expect(owners.size).toBe(1)
  })

  test('a claim is handed to the store once: when first durable', () => {
    const owners = new ClientOwners()
    const stored: ClientOwner[] = []
    owners.claim(1, 'alice', false, stored) // an awareness state: memory only
    expect(stored).toEqual([])
    owners.claim(1, 'alice', true, stored) // then an update
    owners.claim(1, 'alice', true, stored)
    owners.claim(2, 'alice', true, stored)
    expect(stored).toEqual([{ client: 1, user: 'alice' }, { client: 2, user: 'alice' }])
    expect(owners.storedOwners([1, 2, 3])).toEqual(stored)
  })

  test('past its cap, a user releases only its own oldest id', () => {
    const owners = new ClientOwners(3, 100)
    owners.claim(100, 'victim', true)
    for (let id = 1; id <= 5; id++) owners.claim(id, 'mallory', true)
    expect(owners.owner(100)).toBe('victim')
    expect([1, 2, 3, 4, 5].map(id => owners.owner(id))).toEqual([undefined, undefined, 'mallory', 'mallory', 'mallory'])
    expect(owners.size).toBe(4)
  })

  test('past the document cap, the oldest claim is released', () => {
    const owners = new ClientOwners(2, 4)
    for (let id = 1; id <= 6; id++) owners.claim(id, `user${id}`, true)
    expect(owners.size).toBe(4)
    expect(owners.owner(1)).toBeUndefined()
    expect(owners.owner(2)).toBeUndefined()
    expect(owners.owner(6)).toBe('user6')
  })

  test('adopting stored claims replays the caps in claim order, so a reload releases the same ids', () => {
    const live = new ClientOwners(2, 100)
    const records: ClientOwner[] = []
    for (let id = 1; id <= 4; id++) live.claim(id, 'alice', true, records)
    const reloaded = new ClientOwners(2, 100)
    reloaded.adopt(records)
    expect([1, 2, 3, 4].map(id => reloaded.owner(id))).toEqual([1, 2, 3, 4].map(id => live.owner(id)))
    // a peer's claim of an id owned here (a race) does not replace it
    reloaded.adopt([{ client: 4, user: 'mallory' }])
    expect(reloaded.owner(4)).toBe('alice')
  })

  test('an anonymous connection\'s ids are released when it ends', () => {
    const owners = new ClientOwners()
    expect(owners.claimOwn(1, 'anonymous:s1')).toBe(true)
    expect(owners.claimOwn(2, 'anonymous:s2')).toBe(true)
    expect(owners.claimOwn(1, 'anonymous:s2')).toBe(false)
    expect(owners.claim(2, 'alice', true)).toBe(false)
    // released by id, and only what the connection owns
    owners.releaseClaims('anonymous:s1', [1, 2])
    expect(owners.owner(1)).toBeUndefined()
    expect(owners.owner(2)).toBe('anonymous:s2')
  })

  test('defaults', () => {
    expect(MAX_CLIENT_IDS_PER_USER).toBe(256)
    expect(MAX_CLIENT_OWNERS).toBe(100_000)
  })
})

describe('bus messages carry the owners of the ids an update claimed', () => {
  const owners = [{ client: 4_294_967_295, user: 'alice' }, { client: 3, user: 'é' }]

  test('round trip, and the layout of an update without owners is unchanged', () => {
    const messages: BusMessage[] = [
      { type: 'update', from: 'n', doc: 'd', update: Uint8Array.of(1), owners },
      { type: 'sync-reply', from: 'n', doc: 'd', to: 'm', update: Uint8Array.of(0, 0), owners }
    ]
    for (const message of messages) expect(decodeBusMessage(encodeBusMessage(message))).toEqual(message)
    expect(decodeBusMessage(encodeBusMessage({ type: 'update', from: 'n', doc: 'd', update: Uint8Array.of(1), owners: [] })))
      .toEqual({ type: 'update', from: 'n', doc: 'd', update: Uint8Array.of(1) })
  })

  test('fixed bytes', () => {
    expect([...encodeBusMessage({ type: 'update', from: 'n', doc: 'd', update: Uint8Array.of(7), owners: [{ client: 5, user: 'u' }] }, 9)])
      .toEqual([2, 0, 1, 110, 1, 100, 9, 1, 7, 1, 5, 1, 117])
  })

  test('bad owner bytes throw', () => {
    const update = [2, 0, 1, 110, 1, 100, 9, 1, 7]
    expect(() => decodeBusMessage(Uint8Array.of(...update, 200, 1))).toThrow(/owner count/)
    expect(() => decodeBusMessage(Uint8Array.of(...update, 1, 5))).toThrow()
    expect(() => decodeBusMessage(Uint8Array.of(...update, 1, 5, 1, 117, 0))).toThrow(/trailing/)
  })
})
