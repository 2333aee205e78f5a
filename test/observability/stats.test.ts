import { describe, expect, test } from 'vitest'
import { SessionStats } from '../../server/observability/stats.js'

describe('session analytics window', () => {
  test('counts, reasons, percentiles and busiest documents; old records leave the window', () => {
    let now = 1_000_000
    const stats = new SessionStats(60_000, 1_000, () => now)
    for (let i = 0; i < 10; i++) stats.started(i < 7 ? 'hot' : 'cold')
    for (let i = 0; i < 10; i++) {
      stats.ended({ document: 'hot', reason: i < 6 ? 'leave' : 'timeout', startedAt: now - (i + 1) * 1_000, endedAt: now })
    }
    stats.updated('cold', 50)
    stats.updated('hot', 5)
    const summary = stats.summary()
    expect(summary.sessionsStarted).toBe(10)
    expect(summary.sessionsEnded).toBe(10)
    expect(summary.endsByReason).toEqual({ leave: 6, timeout: 4 })
    expect(summary.durationMs).toEqual({ p50: 6_000, p90: 10_000, p99: 10_000, max: 10_000 })
    expect(summary.busiestDocuments[0]).toEqual({ name: 'cold', sessionsStarted: 3, updates: 50 })
    now += 61_000
    const later = stats.summary()
    expect(later.sessionsStarted).toBe(0)
    expect(later.sessionsEnded).toBe(0)
    expect(later.durationMs).toBeNull()
  })

  test('memory is bounded by maxRecords', () => {
    const stats = new SessionStats(60_000, 100)
    for (let i = 0; i < 1_000; i++) stats.started('d')
    expect(stats.summary().sessionsStarted).toBe(100)
  })

  test('update counts of many documents interleaved add up, and leave the window slice by slice', () => {
    let now = 1_000_000
    const stats = new SessionStats(60_000, 1_000, () => now)
    // a hundred documents, one stored batch each in turn, over 30 s
    for (let round = 0; round < 300; round++) {
      for (let d = 0; d < 100; d++) stats.updated(`doc-${d}`, d === 7 ? 3 : 1)
      now += 100
    }
    const summary = stats.summary(3)
    expect(summary.busiestDocuments[0]).toEqual({ name: 'doc-7', sessionsStarted: 0, updates: 900 })
    expect(summary.busiestDocuments[1]?.updates).toBe(300)
    // 45 s on, the first 15 s have left the window (to within one 1 s slice)
    now += 45_000
    const later = stats.summary(1)
    expect(later.busiestDocuments[0]?.name).toBe('doc-7')
    expect(later.busiestDocuments[0]?.updates).toBeGreaterThanOrEqual(3 * 140)
    expect(later.busiestDocuments[0]?.updates).toBeLessThanOrEqual(3 * 160)
    now += 60_000
    expect(stats.summary().busiestDocuments).toEqual([])
  })
})
