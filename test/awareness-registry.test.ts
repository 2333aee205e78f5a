import { describe, expect, test } from 'vitest'
import { AwarenessRegistry, RemoteOwner } from '../server/awareness.js'
import { readAwarenessUpdate, writeAwarenessUpdate, type AwarenessEntry } from '../shared/awareness.js'

const update = (...entries: AwarenessEntry[]): Uint8Array => writeAwarenessUpdate(entries)
const read = (bytes: Uint8Array | null): AwarenessEntry[] => bytes === null ? [] : readAwarenessUpdate(bytes)

describe('AwarenessRegistry across instances', () => {
  test('echoes of states relayed from another instance are not claims', () => {
    const registry = new AwarenessRegistry()
    const [a, b] = [new RemoteOwner('n1'), {}]
    registry.register(b)
    const [relayA] = read(registry.applyRemote(a, update({ clientId: 1, clock: 4, state: '{"u":"a"}' })))
    registry.apply(b, update({ clientId: 2, clock: 0, state: '{"u":"b"}' }))
    // b's stock client re-sends a's state (and a removal of it): nothing changes, nothing thrown
    expect(registry.apply(b, update({ clientId: 1, clock: relayA!.clock, state: '{"u":"a"}' }))).toBeNull()
    expect(registry.apply(b, update({ clientId: 1, clock: relayA!.clock + 1, state: 'null' }))).toBeNull()
    expect(registry.ownedBy(a)).toEqual([1])
    expect(registry.ownedBy(b)).toEqual([2])
  })

  test('a client id never seen starts at a clock above any removal made elsewhere', () => {
    const registry = new AwarenessRegistry()
    const before = Date.now()
    const [entry] = read(registry.apply({}, update({ clientId: 7, clock: 3, state: '{}' })))
    expect(entry!.clock).toBeGreaterThanOrEqual(before)
  })

  test('remote states are taken only with a higher clock, and relayed as they are', () => {
    const registry = new AwarenessRegistry()
    const node = new RemoteOwner('n1')
    expect(read(registry.applyRemote(node, update({ clientId: 5, clock: 10, state: '{"x":1}' })))).toEqual([{ clientId: 5, clock: 10, state: '{"x":1}' }])
    expect(registry.applyRemote(node, update({ clientId: 5, clock: 10, state: '{"x":2}' }))).toBeNull()
    expect(read(registry.applyRemote(node, update({ clientId: 5, clock: 11, state: 'null' })))).toEqual([{ clientId: 5, clock: 11, state: 'null' }])
    expect(registry.size).toBe(0)
  })

  test('a client that moved here steps over the removal its old instance will send', () => {
    const registry = new AwarenessRegistry()
    const node = new RemoteOwner('n1')
    registry.applyRemote(node, update({ clientId: 5, clock: 10, state: '{}' }))
    const session = {}
    const [moved] = read(registry.apply(session, update({ clientId: 5, clock: 2, state: '{}' })))
    expect(moved!.clock).toBe(12)
    // the old instance's removal (10 + 1) arrives late and loses
    expect(registry.applyRemote(node, update({ clientId: 5, clock: 11, state: 'null' }))).toBeNull()
    expect(registry.ownedBy(session)).toEqual([5])
  })

  test('a snapshot removes what the peer no longer owns; removing a dead peer removes its states', () => {
    const registry = new AwarenessRegistry()
    const [n1, n2] = [new RemoteOwner('n1'), new RemoteOwner('n2')]
    registry.applyRemote(n1, update({ clientId: 1, clock: 1, state: '{}' }, { clientId: 2, clock: 1, state: '{}' }))
    registry.applyRemote(n2, update({ clientId: 3, clock: 1, state: '{}' }))
    expect(read(registry.applyRemote(n1, update({ clientId: 1, clock: 2, state: '{}' }), true)))
      .toEqual([{ clientId: 1, clock: 2, state: '{}' }, { clientId: 2, clock: 2, state: 'null' }])
    expect(read(registry.removeOwnedBy(n2))).toEqual([{ clientId: 3, clock: 2, state: 'null' }])
    expect(registry.size).toBe(1)
  })

  test('greeting a member here does not hide the remote owner\'s next state', () => {
    // the owner (another instance) never hears of the clocks this instance sends its own members
    const registry = new AwarenessRegistry()
    const node = new RemoteOwner('n1')
    const [member, joiner] = [{}, {}]
    registry.register(member)
    registry.applyRemote(node, update({ clientId: 5, clock: 10, state: '{}' }))
    registry.register(joiner)
    const [greeted] = read(registry.encodeAll(joiner))
    expect(greeted!.clock).toBe(11)
    // the owner's next clock is 11: taken, and sent above what the joiner holds
    expect(read(registry.applyRemote(node, update({ clientId: 5, clock: 11, state: '{"u":"bob"}' }))))
      .toEqual([{ clientId: 5, clock: 12, state: '{"u":"bob"}' }])
  })

  test('a peer removed as dead is seen again from its snapshot raised by one', () => {
    // Redis was away: this instance reported the peer dead; the peer only lost its connection
    const registry = new AwarenessRegistry()
    const node = new RemoteOwner('n1')
    registry.applyRemote(node, update({ clientId: 5, clock: 10, state: '{"u":"bob"}' }))
    expect(read(registry.removeOwnedBy(node))).toEqual([{ clientId: 5, clock: 11, state: 'null' }])
    // the peer's snapshotLocal raises its clock 10 by one
    expect(read(registry.applyRemote(node, update({ clientId: 5, clock: 11, state: '{"u":"bob"}' }), true)))
      .toEqual([{ clientId: 5, clock: 12, state: '{"u":"bob"}' }])
    expect(registry.ownedBy(node)).toEqual([5])
  })

  test('a local snapshot raises the clocks of local states only', () => {
    const registry = new AwarenessRegistry()
    const session = {}
    const [own] = read(registry.apply(session, update({ clientId: 1, clock: 0, state: '{}' })))
    registry.applyRemote(new RemoteOwner('n1'), update({ clientId: 2, clock: 5, state: '{}' }))
    expect(read(registry.snapshotLocal())).toEqual([{ clientId: 1, clock: own!.clock + 1, state: '{}' }])
  })
})
