import { describe, expect, onTestFinished, test } from 'vitest'
import * as Y from 'yjs'
import { Awareness, applyAwarenessUpdate, encodeAwarenessUpdate } from 'y-protocols/awareness'
import { AwarenessRegistry, MAX_CLIENT_IDS_PER_OWNER, MIN_RENEWAL_INTERVAL_MS, REMOVED_RETENTION_MS, RemoteOwner } from '../../server/document/awareness.js'
import { ClientOwners } from '../../server/document/client-owners.js'
import { readAwarenessUpdate, writeAwarenessUpdate, type AwarenessEntry } from '../../shared/awareness.js'

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

describe('AwarenessRegistry and its own relays coming back', () => {
  /** A registry on a clock the test moves. */
  function atTime (): { registry: AwarenessRegistry, advance: (ms: number) => void } {
    let now = 1_800_000_000_000
    return { registry: new AwarenessRegistry(() => now), advance: ms => { now += ms } }
  }

  test('an owner sending back a clock assigned here is an echo, whatever the state it carries', () => {
    const { registry } = atTime()
    const a = {}
    const [first] = read(registry.apply(a, update({ clientId: 1, clock: 0, state: '{"c":1}' })))
    const [second] = read(registry.apply(a, update({ clientId: 1, clock: 1, state: '{"c":2}' })))
    expect(second!.clock).toBe(first!.clock + 1)
    // a second tab passed both relays back; the stock client took each clock in turn and re-sent it
    expect(registry.apply(a, update({ clientId: 1, clock: first!.clock, state: '{"c":1}' }))).toBeNull()
    expect(registry.apply(a, update({ clientId: 1, clock: second!.clock, state: '{"c":2}' }))).toBeNull()
    expect(registry.changesState(a, update({ clientId: 1, clock: first!.clock, state: '{"c":1}' }))).toBe(false)
    // counting on from the clock it took, the owner's next change is taken
    expect(read(registry.apply(a, update({ clientId: 1, clock: second!.clock + 1, state: '{"c":3}' }))))
      .toEqual([{ clientId: 1, clock: second!.clock + 1, state: '{"c":3}' }])
  })

  test('an unchanged state is relayed at most every MIN_RENEWAL_INTERVAL_MS; a changed one always', () => {
    const { registry, advance } = atTime()
    const a = {}
    const [first] = read(registry.apply(a, update({ clientId: 1, clock: 0, state: '{}' })))
    // a clock above every one assigned here, as a tab on another instance would pass back
    expect(registry.apply(a, update({ clientId: 1, clock: first!.clock + 5, state: '{}' }))).toBeNull()
    expect(read(registry.apply(a, update({ clientId: 1, clock: 1, state: '{"x":1}' })))).toHaveLength(1)
    advance(MIN_RENEWAL_INTERVAL_MS)
    // the stock client's 15 s renewal, counting from its own small clock
    const [renewal] = read(registry.apply(a, update({ clientId: 1, clock: 2, state: '{"x":1}' })))
    expect(renewal).toEqual({ clientId: 1, clock: first!.clock + 2, state: '{"x":1}' })
  })

  test('a new session of the same client starts a new range of its own', () => {
    const { registry } = atTime()
    const [a, a2, b] = [{}, {}, {}]
    registry.register(b)
    const [first] = read(registry.apply(a, update({ clientId: 1, clock: 0, state: '{}' })))
    const [removal] = read(registry.removeOwnedBy(a))
    // the reconnected tab still holds the first clock: taken, and raised over the removal
    const [back] = read(registry.apply(a2, update({ clientId: 1, clock: first!.clock, state: '{}' })))
    expect(back!.clock).toBe(removal!.clock + 1)
    expect(registry.ownedBy(a2)).toEqual([1])
  })
})

describe('two tabs of one browser on the stock Awareness, relayed by registries', () => {
  /**
   * Tabs are y-protocols Awareness instances that, like the y-websocket provider, send every
   * change they hear (their own or not) to their server and to the other tabs (BroadcastChannel).
   * Registries relay to their other members and, across instances, to each other (the bus).
   * Deliveries run in order until none is left; an echo loop would never stop, so it is cut off.
   * The registries' clocks are fixed (the second `skewMs` ahead), so every run is the same.
   */
  function model (skewMs = 0): {
    tab: (instance: AwarenessRegistry) => Awareness
    instances: AwarenessRegistry[]
    settle: () => number
  } {
    const now = 1_800_000_000_000
    const instances = [new AwarenessRegistry(() => now), new AwarenessRegistry(() => now + skewMs)]
    const nodes = instances.map((_, i) => new RemoteOwner(`n${i}`))
    const tabs: Array<{ awareness: Awareness, instance: AwarenessRegistry }> = []
    const queue: Array<() => void> = []
    const toTab = (awareness: Awareness, bytes: Uint8Array): void => { queue.push(() => applyAwarenessUpdate(awareness, bytes, 'remote')) }
    const relay = (instance: AwarenessRegistry, from: Awareness | null, bytes: Uint8Array | null): void => {
      if (bytes === null) return
      for (const other of tabs) if (other.instance === instance && other.awareness !== from) toTab(other.awareness, bytes)
    }
    const tab = (instance: AwarenessRegistry): Awareness => {
      const awareness = new Awareness(new Y.Doc())
      onTestFinished(() => awareness.destroy())
      tabs.push({ awareness, instance })
      instance.register(awareness)
      queue.push(() => {
        const greeting = instance.encodeAll(awareness)
        if (greeting !== null) applyAwarenessUpdate(awareness, greeting, 'server')
      })
      awareness.on('update', ({ added, updated, removed }: { added: number[], updated: number[], removed: number[] }) => {
        const bytes = encodeAwarenessUpdate(awareness, [...added, ...updated, ...removed])
        for (const other of tabs) if (other.awareness !== awareness) toTab(other.awareness, bytes) // BroadcastChannel
        queue.push(() => {
          // as Document.applyAwareness: members get every change, the bus all but provisional claims
          const { members, peers } = instance.applyFrom(awareness, bytes)
          relay(instance, awareness, members)
          const index = instances.indexOf(instance)
          if (peers !== null) queue.push(() => relay(instances[1 - index]!, null, instances[1 - index]!.applyRemote(nodes[index]!, peers)))
        })
      })
      return awareness
    }
    const settle = (): number => {
      let steps = 0
      while (queue.length > 0 && steps < 10_000) { queue.shift()!(); steps++ }
      return steps
    }
    return { tab, instances, settle }
  }

  test('on one instance: each tab\'s state reaches the other, and the relays stop', () => {
    const { tab, instances: [p1], settle } = model()
    const [a, b] = [tab(p1!), tab(p1!)]
    a.setLocalStateField('cursor', 1)
    b.setLocalStateField('cursor', 2)
    a.setLocalStateField('cursor', 3)
    expect(settle()).toBeLessThan(100)
    expect(b.getStates().get(a.clientID)).toEqual({ cursor: 3 })
    expect(a.getStates().get(b.clientID)).toEqual({ cursor: 2 })
  })

  // the scenario of the next two tests
  function twoInstances (skewMs: number): void {
    const { tab, instances: [p1, p2], settle } = model(skewMs)
    const [a, b] = [tab(p1!), tab(p2!)]
    a.setLocalStateField('cursor', 1)
    b.setLocalStateField('cursor', 2)
    expect(settle()).toBeLessThan(100)
    const c = tab(p2!)
    a.setLocalStateField('cursor', 3)
    expect(settle()).toBeLessThan(100)
    for (const seer of [b, c]) expect(seer.getStates().get(a.clientID)).toEqual({ cursor: 3 })
    expect(a.getStates().get(b.clientID)).toEqual({ cursor: 2 })
  }

  test('on two instances, with a joiner whose greeting raises the clocks one instance sends', () => {
    twoInstances(0)
  })

  // tab b passes a's state on to its instance before the bus brings it there, so that instance
  // first takes b for its owner, with a clock from its own time, which may be ahead of a's
  // instance's: b's claim is provisional (its second id) and yields to a's instance
  test('on two instances whose clocks differ by 1 ms, the same', () => {
    twoInstances(1)
  })

  test('on two instances whose clocks differ by up to a second either way, the same', () => {
    for (const skewMs of [-1000, -17, -1, 2, 17, 1000]) twoInstances(skewMs)
  })
})

describe('AwarenessRegistry forgets removed states', () => {
  test('after REMOVED_RETENTION_MS a removed id is forgotten; if it comes back, its clock is above the removal', () => {
    let now = 1_800_000_000_000
    const registry = new AwarenessRegistry(() => now)
    const removals = new Map<number, number>()
    for (let id = 1; id <= 1_000; id++) {
      const visitor = {}
      registry.register(visitor)
      registry.apply(visitor, update({ clientId: id, clock: 0, state: '{}' }))
      for (const entry of read(registry.removeOwnedBy(visitor))) removals.set(entry.clientId, entry.clock)
      now += 10
    }
    expect(registry.remembered).toBe(1_000)
    // within the retention, an echo of a removal is still known for one
    const other = {}
    registry.register(other)
    expect(registry.apply(other, update({ clientId: 1, clock: removals.get(1)!, state: 'null' }))).toBeNull()
    now += REMOVED_RETENTION_MS
    // the next removal sweeps what is past its retention
    const last = {}
    registry.register(last)
    registry.apply(last, update({ clientId: 5_000, clock: 0, state: '{}' }))
    registry.removeOwnedBy(last)
    expect(registry.remembered).toBe(1)
    const back = {}
    registry.register(back)
    const [again] = read(registry.apply(back, update({ clientId: 1, clock: 3, state: '{}' })))
    expect(again!.clock).toBeGreaterThan(removals.get(1)!)
    expect(registry.ownedBy(back)).toEqual([1])
  })

  test('an id taken again before its removal is forgotten stays', () => {
    let now = 1_800_000_000_000
    const registry = new AwarenessRegistry(() => now)
    const [first, second, third] = [{}, {}, {}]
    registry.apply(first, update({ clientId: 7, clock: 0, state: '{}' }))
    registry.removeOwnedBy(first)
    registry.apply(second, update({ clientId: 7, clock: 1, state: '{"back":true}' }))
    now += REMOVED_RETENTION_MS
    registry.apply(third, update({ clientId: 8, clock: 0, state: 'null' }))
    expect(registry.ownedBy(second)).toEqual([7])
    expect(registry.size).toBe(1)
  })
})

describe('AwarenessRegistry claims', () => {
  test('a session claims only its first id in the document\'s table; claimedBy lists every id it took, up to its cap', () => {
    const owners = new ClientOwners()
    const session = {}
    const registry = new AwarenessRegistry(Date.now, (_owner, clientId, claim) => claim ? owners.claimOwn(clientId, 'anonymous:s') : owners.owner(clientId) === undefined)
    registry.register(session)
    const ids = Array.from({ length: MAX_CLIENT_IDS_PER_OWNER + 2 }, (_, i) => i + 1)
    const relayed = read(registry.apply(session, update(...ids.map(clientId => ({ clientId, clock: 0, state: '{}' })))))
    // the first is the session's own id; the others are provisional (another tab's, most likely)
    // and claim nothing in the document's table either way
    expect(relayed.map(entry => entry.clientId)).toEqual(ids.slice(0, MAX_CLIENT_IDS_PER_OWNER))
    expect(registry.claimedBy(session)).toEqual(ids.slice(0, MAX_CLIENT_IDS_PER_OWNER))
    expect(ids.map(id => owners.owner(id))).toEqual(['anonymous:s', undefined, undefined, undefined, undefined, undefined])
    owners.releaseClaims('anonymous:s', registry.claimedBy(session))
    expect(owners.size).toBe(0)
  })
})
