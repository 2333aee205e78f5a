import { describe, expect, test } from 'vitest'
import * as fc from 'fast-check'
import { readFrame, writeTandem } from '../../shared/messages.js'
import { MESSAGE_TANDEM } from '../../shared/constants.js'

describe('the Tandem refused message', () => {
  test('round-trips', () => {
    const message = { type: 'refused', count: 3, code: 'TANDEM_ERR_READ_ONLY' } as const
    expect(readFrame(writeTandem(message))).toEqual({ type: 'tandem', message })
  })

  test('has the documented byte layout: 100, sub-type 1, varUint count, varString code', () => {
    const bytes = writeTandem({ type: 'refused', count: 300, code: 'AB' })
    // 100 | 1 | 300 as varUint (0xac 0x02) | length 2 | 'A' 'B'
    expect([...bytes]).toEqual([MESSAGE_TANDEM, 1, 0xac, 0x02, 2, 0x41, 0x42])
  })

  test('seeded random counts and codes round-trip', () => {
    const seed = Number(process.env.FUZZ_SEED ?? 20261121)
    fc.assert(fc.property(fc.nat(), fc.string({ maxLength: 64 }), (count, code) => {
      const message = { type: 'refused', count, code } as const
      expect(readFrame(writeTandem(message))).toEqual({ type: 'tandem', message })
    }), { seed, numRuns: 500 })
  })

  test('a truncated refused message is a coded error', () => {
    const bytes = writeTandem({ type: 'refused', count: 1, code: 'TANDEM_ERR_READ_ONLY' })
    for (let n = 1; n < bytes.length; n++) {
      expect(() => readFrame(bytes.subarray(0, n))).toThrow(expect.objectContaining({ code: 'TANDEM_ERR_MALFORMED_MESSAGE' }))
    }
  })
})
