import { describe, expect, onTestFinished, test } from 'vitest'
import { PresenceBoard, type PresenceChange } from '../../server/presence/board.js'

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
