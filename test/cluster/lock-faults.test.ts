import { describe, expect, test } from 'vitest'
import { fileURLToPath } from 'node:url'
import { FencedResource, faultSchedule, verify, FAULT_KINDS, type Hold } from '../../bench/lock-checker.js'
import { runLockFaults } from '../../bench/lock-faults-run.js'
import { prng } from '../../bench/stats.js'
import { POSTGRES_URL, postgresUp, redisUp, testWith } from '../support/services.js'

const it = testWith(postgresUp && redisUp)
const CLI = fileURLToPath(new URL('../../dist/server/cli.js', import.meta.url))

function hold (client: number, token: number, start: number, end: number): Hold {
  return { client, session: `s${client}`, token, start, end, ended: 'released' }
}

describe('the lock checker (it must be able to fail)', () => {
  test('the fence refuses an older token once a newer one wrote', () => {
    const fence = new FencedResource()
    expect(fence.write(0, 3, 0, true)).toBe(true)
    expect(fence.write(1, 4, 1, true)).toBe(true)
    expect(fence.write(0, 3, 2, false)).toBe(false)
    expect(fence.write(1, 4, 3, true)).toBe(true)
  })

  test('overlaps beyond the bound, repeated or decreasing tokens, and a sole holder fenced out are violations', () => {
    expect(verify([hold(0, 1, 0, 100), hold(1, 2, 100, 200)], [], 50).violations).toEqual([])
    expect(verify([hold(0, 1, 0, 100), hold(1, 2, 60, 200)], [], 50).violations).toEqual([])
    expect(verify([hold(0, 1, 0, 100), hold(1, 2, 40, 200)], [], 50).violations[0]).toMatch(/both held the lock for 60 ms/)
    expect(verify([hold(0, 2, 0, 100), hold(1, 2, 100, 200)], [], 50).violations[0]).toMatch(/token 2 granted twice/)
    // the same session asking again for the lock it still holds: its token, no violation
    expect(verify([hold(0, 2, 0, 100), hold(0, 2, 100, 200), hold(1, 3, 200, 300)], [], 50).violations).toEqual([])
    expect(verify([hold(0, 5, 0, 100), hold(1, 4, 100, 200)], [], 50).violations[0]).toMatch(/token 4 .* granted after token 5/)
    // token 4 after token 5: client 1 holds the lock alone, and the fence refuses it
    const fence = new FencedResource()
    fence.write(0, 5, 50, true)
    fence.write(1, 4, 150, true)
    const verdict = verify([hold(0, 5, 0, 100), hold(1, 4, 100, 200)], fence.writes, 50)
    expect(verdict.violations).toContain('client 1 held token 4 alone and its write was refused')
    expect(verdict.refusedInHold).toBe(1)
  })

  test('a schedule is the same for the same seed and holds every kind of fault', () => {
    const a = faultSchedule(prng(42), 4, 20_000, 3)
    expect(faultSchedule(prng(42), 4, 20_000, 3)).toEqual(a)
    expect(new Set(a.map(f => f.kind))).toEqual(new Set(FAULT_KINDS))
    expect(a.every(f => f.at >= 2_000 && f.at <= 18_000)).toBe(true)
  })
})

describe('locks under faults', () => {
  // TANDEM_FAULT_SEED replays a run: the same schedule of faults
  const seed = Number(process.env.TANDEM_FAULT_SEED ?? Math.floor(Math.random() * 2 ** 31))

  it('three instances, six clients, one lock; instances killed, Redis restarted with and without its data, connections cut', async () => {
    const lines: string[] = []
    const result = await runLockFaults({
      cli: CLI, postgres: POSTGRES_URL, seed, clients: 6, durationMs: 22_000, faults: 4,
      log: line => { lines.push(line); console.log(line) }
    })
    const { verdict } = result
    // grants per second, to see the service come back after each fault
    const perSecond = Array.from({ length: Math.ceil(result.durationMs / 1_000) }, (_, s) => result.holds.filter(h => Math.floor(h.start / 1_000) === s).length)
    const summary = `grants per second: ${perSecond.join(' ')}\nseed ${seed} (replay: TANDEM_FAULT_SEED=${seed}); ${lines.join('\n')}\n` +
      `grants ${verdict.grants}, writes taken ${verdict.accepted}, late writes refused ${verdict.refusedLate}, ` +
      `refused in a hold ${verdict.refusedInHold}, longest overlap ${verdict.maxOverlapMs} ms ${JSON.stringify(verdict.worst ?? {})}, ` +
      `failures ${JSON.stringify(result.failures)}`
    console.log(summary)
    expect(verdict.violations, summary).toEqual([])
    // the run did something: every fault happened and locks kept being granted around them
    expect(result.done, summary).toHaveLength(4)
    expect(verdict.grants, summary).toBeGreaterThan(20)
    const afterLastFault = result.holds.filter(h => h.start > (result.schedule.at(-1)?.at ?? 0) + 3_000)
    expect(afterLastFault.length, summary).toBeGreaterThan(0)
  }, 90_000)
})
