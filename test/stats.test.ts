import { describe, expect, test } from 'vitest'
import { SessionStats } from '../server/stats.js'

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
})
