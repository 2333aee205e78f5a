import { describe, expect, onTestFinished, test } from 'vitest'
import { PresenceBoard, type PresenceChange } from '../../server/presence/board.js'
import { PresenceTable } from '../../server/presence/table.js'
import { PresenceMerge } from '../../server/presence/merge.js'
import { waitFor } from '../support/helpers.js'

describe('PresenceBoard.rename (a refreshed token)', () => {
  test('announces updated only when the name or colour changed', () => {
    const changes: PresenceChange[] = []
    const board = new PresenceBoard(60_000, change => changes.push(change))
    onTestFinished(() => board.close())
    board.connect('s1', { userId: 'ada', name: 'Ada', color: '#f80' })
    changes.length = 0
    // the same name and colour (a plain refresh): nothing anyone would see
    board.rename('s1', { userId: 'ada', name: 'Ada', color: '#f80' })
    expect(changes).toEqual([])
    board.rename('s1', { userId: 'ada', name: 'Ada L.', color: '#f80' })
    expect(changes.map(c => [c.event, c.user.name])).toEqual([['updated', 'Ada L.']])
    board.rename('s1', { userId: 'ada', name: 'Ada L.', color: '#08f' })
    expect(changes).toHaveLength(2)
    expect(changes[1]).toMatchObject({ event: 'updated', user: { name: 'Ada L.', color: '#08f' } })
  })
})

describe('PresenceBoard idle sweep', () => {
  test('a connection a listener removes during the sweep leaves, and is not announced idle after', async () => {
    const changes: PresenceChange[] = []
    const board = new PresenceBoard(30, change => {
      changes.push(change)
      if (change.event === 'updated' && change.user.userId === 'ann') board.disconnect('b', 'kicked')
    })
    onTestFinished(() => board.close())
    board.connect('a', { userId: 'ann', name: 'Ann', color: '#000' })
    board.connect('b', { userId: 'bob', name: 'Bob', color: '#000' })
    // both turn idle in the same sweep, ann first: what the sweep announces, it announces at once
    await waitFor(() => changes.length >= 3, 2_000, 'the sweep')
    expect(changes.map(c => `${c.event}:${c.user.userId}:${c.user.status}`)).toEqual(['joined:ann:active', 'joined:bob:active', 'updated:ann:idle', 'left:bob:active'])
  })
})

describe('PresenceTable and the merge that reads it', () => {
  test('left shows the last look at the user on the table, the last announcement in the merge', () => {
    let now = 1_000
    const local: PresenceChange[] = []
    const merged: PresenceChange[] = []
    const table: PresenceTable = new PresenceTable(60_000, (change, shown) => {
      local.push(change)
      merge.local(change, shown)
    }, () => now)
    const merge = new PresenceMerge(table, change => merged.push(change))
    onTestFinished(() => table.close())
    const tab = table.connect({ userId: 'ada', name: 'Ada', color: '#f80' })
    now = 1_005
    // active already: nothing to announce, but the table looked at the user
    table.setStatus(tab, 'active')
    expect(merge.get('ada')?.lastActiveAt).toBe(1_000)
    expect(table.get('ada')?.lastActiveAt).toBe(1_005)
    now = 1_009
    table.disconnect(tab, 'leave')
    table.disconnect(tab, 'leave')
    table.setStatus(tab, 'away')
    expect(local.map(c => `${c.event}:${c.user.lastActiveAt}`)).toEqual(['joined:1000', 'left:1005'])
    expect(merged.map(c => `${c.event}:${c.user.lastActiveAt}:${c.user.connections}`)).toEqual(['joined:1000:1', 'left:1000:0'])
    expect(merge.size).toBe(0)
  })

  test('a user a peer also reports is merged, and back to the table\'s entry when the peer lets go', () => {
    let now = 1_000
    const merged: PresenceChange[] = []
    const table: PresenceTable = new PresenceTable(60_000, (change, shown) => merge.local(change, shown), () => now)
    const merge = new PresenceMerge(table, change => merged.push(change))
    onTestFinished(() => table.close())
    const tab = table.connect({ userId: 'ada', name: 'Ada', color: '#f80' })
    merge.set('n2', 'ada', { userId: 'ada', name: 'Ada B', color: '#08f', status: 'idle', connections: 2, joinedAt: 900, lastActiveAt: 990 }, 'leave')
    merge.set('n2', 'bob', { userId: 'bob', name: 'Bob', color: '#000', status: 'away', connections: 1, joinedAt: 950, lastActiveAt: 950 }, 'leave')
    expect(merge.list().map(e => `${e.userId}:${e.name}:${e.status}:${e.connections}:${e.joinedAt}`)).toEqual(['ada:Ada:active:3:900', 'bob:Bob:away:1:950'])
    expect(merge.size).toBe(2)
    expect(merge.own().map(e => e.userId)).toEqual(['ada'])
    now = 1_010
    table.setStatus(tab, 'away')
    expect(merge.get('ada')).toMatchObject({ status: 'idle', connections: 3 })
    merge.set('n2', 'ada', null, 'leave')
    expect(merge.get('ada')).toMatchObject({ name: 'Ada', status: 'away', connections: 1, joinedAt: 1_000 })
    table.disconnect(tab, 'kicked')
    expect(merged.map(c => c.event === 'left' ? `left:${c.user.userId}:${c.reason}` : `${c.event}:${c.user.userId}:${c.user.status}:${c.user.connections}`)).toEqual([
      'joined:ada:active:1', 'updated:ada:active:3', 'joined:bob:away:1', 'updated:ada:idle:3', 'updated:ada:away:1', 'left:ada:kicked'
    ])
    expect(merge.size).toBe(1)
    expect(merge.remoteEmpty).toBe(false)
  })
})
