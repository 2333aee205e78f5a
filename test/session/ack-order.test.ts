import { describe, expect, test } from 'vitest'
import { AckOrder } from '../../server/session/ack-order.js'

function order (): { acks: AckOrder, out: number[] } {
  const out: number[] = []
  return { acks: new AckOrder(count => { out.push(count) }), out }
}

describe('AckOrder', () => {
  test('without held frames, acknowledgements go straight out', () => {
    const { acks, out } = order()
    acks.frame()
    acks.frame()
    acks.acknowledge(1)
    acks.acknowledge(1)
    expect(out).toEqual([1, 1])
  })

  test('frames after a held one wait for it; frames before it do not', () => {
    const { acks, out } = order()
    acks.frame() // 1: plain
    acks.frame() // 2: held
    const held = acks.holdLast()
    acks.frame() // 3: plain
    acks.frame() // 4: plain
    acks.acknowledge(1) // frame 1
    expect(out).toEqual([1])
    acks.acknowledge(2) // frames 3 and 4, stored before the held one
    expect(out).toEqual([1])
    acks.settle(held)
    expect(out).toEqual([1, 3])
    acks.frame()
    acks.acknowledge(1)
    expect(out).toEqual([1, 3, 1])
  })

  test('two held frames settled in reverse order', () => {
    const { acks, out } = order()
    acks.frame()
    const first = acks.holdLast()
    acks.frame()
    acks.frame()
    const second = acks.holdLast()
    acks.settle(second)
    expect(out).toEqual([])
    acks.settle(first)
    expect(out).toEqual([1]) // the plain frame between them is not stored yet
    acks.acknowledge(1)
    expect(out).toEqual([1, 2])
  })
})

describe('AckOrder with frames settled by the session (read-only refusals)', () => {
  test('a refusal after a held frame goes out in its place, as a refused run', () => {
    const sent: Array<[number, string | null]> = []
    const acks = new AckOrder((count, refused) => sent.push([count, refused]))
    acks.frame()
    const held = acks.holdLast()
    acks.frame()
    acks.settleLast('TANDEM_ERR_READ_ONLY')
    acks.frame()
    acks.settleLast(null)
    expect(sent).toEqual([])
    acks.settle(held)
    expect(sent).toEqual([[1, null], [1, 'TANDEM_ERR_READ_ONLY'], [1, null]])
    acks.frame()
    acks.settleLast('TANDEM_ERR_READ_ONLY')
    expect(sent).toEqual([[1, null], [1, 'TANDEM_ERR_READ_ONLY'], [1, null], [1, 'TANDEM_ERR_READ_ONLY']])
  })
})
