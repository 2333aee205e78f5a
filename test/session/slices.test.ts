import { describe, expect, test } from 'vitest'
import { Slices } from '../../server/session/slices.js'

/** Keeps the event loop busy for `ms`. */
function spin (ms: number): void {
  const until = performance.now() + ms
  while (performance.now() < until) { /* busy */ }
}

describe('work in slices', () => {
  test('runs every piece in order, yielding to the event loop between slices of about 1 ms', async () => {
    const slices = new Slices(1)
    const ran: number[] = []
    const seenByProbe: number[] = []
    for (let i = 0; i < 200; i++) slices.run(() => { spin(0.05); ran.push(i) })
    expect(ran).toEqual([])
    // a turn of the event loop queued after all 200: it runs between two slices, not after all
    await new Promise<void>(resolve => setImmediate(() => { seenByProbe.push(ran.length); resolve() }))
    await new Promise(resolve => setTimeout(resolve, 50))
    expect(ran).toEqual(Array.from({ length: 200 }, (_, i) => i))
    expect(seenByProbe[0]).toBeGreaterThan(0)
    expect(seenByProbe[0]).toBeLessThan(200)
  })

  test('flush runs what is left at once, and the queue works again after', async () => {
    const slices = new Slices(1)
    const ran: number[] = []
    for (let i = 0; i < 50; i++) slices.run(() => { spin(0.05); ran.push(i) })
    slices.flush()
    expect(ran).toHaveLength(50)
    slices.run(() => ran.push(50))
    await new Promise(resolve => setTimeout(resolve, 10))
    expect(ran).toEqual(Array.from({ length: 51 }, (_, i) => i))
  })
})
