import { describe, expect, test } from 'vitest'
import { UnconfirmedUpdates } from '../../server/document/unconfirmed.js'

const u = Uint8Array.of(1)

describe('updates relayed by other instances before their commit', () => {
  test('confirmedThrough moves only over a confirmed prefix, whichever node confirms first', () => {
    const list = new UnconfirmedUpdates()
    list.add('a', 1, u, [])
    list.add('b', 1, u, [])
    list.add('a', 2, u, [])
    expect(list.position).toBe(3)
    expect(list.confirmedThrough).toBe(0)
    // b's update is stored, but a's first one, applied before it, is not
    expect(list.confirm('b', 1)).toBe(false)
    expect(list.confirmedThrough).toBe(0)
    expect(list.confirm('a', 1)).toBe(true)
    expect(list.confirmedThrough).toBe(2)
    expect(list.size).toBe(1)
    expect(list.confirm('a', 5)).toBe(true)
    expect(list.confirmedThrough).toBe(3)
    expect(list.size).toBe(0)
  })

  test('a lost node\'s updates are taken once, and count as confirmed once stored here', () => {
    const list = new UnconfirmedUpdates()
    list.add('a', 7, u, [{ client: 1, user: 'x' }])
    list.add('b', 3, u, [])
    const taken = list.take('a')
    expect(taken.map(entry => entry.seq)).toEqual([7])
    expect(list.take('a')).toEqual([])
    expect(list.storedHere(taken)).toBe(true)
    expect(list.confirmedThrough).toBe(1)
    // every node: what is left
    expect(list.take(null).map(entry => entry.node)).toEqual(['b'])
  })
})
