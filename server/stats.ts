import type { EndReason } from './session.js'

/** One ended session, as analytics keep it. */
export interface SessionRecord {
  document: string
  reason: EndReason
  startedAt: number
  endedAt: number
}

/** What `GET /api/stats` returns. */
export interface StatsSummary {
  windowMs: number
  sessionsStarted: number
  sessionsEnded: number
  endsByReason: Partial<Record<EndReason, number>>
  durationMs: { p50: number, p90: number, p99: number, max: number } | null
  busiestDocuments: Array<{ name: string, sessionsStarted: number, updates: number }>
}

/**
 * Session analytics over a sliding window: starts, ends by reason, durations, busiest
 * documents. Memory is bounded by the window and `maxRecords`.
 */
export class SessionStats {
  private starts: Array<{ at: number, document: string }> = []
  private ends: SessionRecord[] = []
  private updates: Array<{ at: number, document: string, count: number }> = []

  constructor (
    private readonly windowMs = 15 * 60_000,
    private readonly maxRecords = 100_000,
    private readonly now: () => number = Date.now
  ) {}

  started (document: string): void {
    this.starts.push({ at: this.now(), document })
    this.trim()
  }

  ended (record: SessionRecord): void {
    this.ends.push(record)
    this.trim()
  }

  /** `count` updates were applied to `document` (called once per stored batch, not per update). */
  updated (document: string, count: number): void {
    const at = this.now()
    const last = this.updates[this.updates.length - 1]
    // fold into the last entry when it is for the same document and within a second
    if (last !== undefined && last.document === document && at - last.at < 1_000) last.count += count
    else this.updates.push({ at, document, count })
    this.trim()
  }

  summary (top = 10): StatsSummary {
    this.trim()
    const endsByReason: Partial<Record<EndReason, number>> = {}
    for (const end of this.ends) endsByReason[end.reason] = (endsByReason[end.reason] ?? 0) + 1
    const durations = this.ends.map(e => e.endedAt - e.startedAt).sort((a, b) => a - b)
    const pick = (q: number): number => durations[Math.min(durations.length - 1, Math.floor(q * durations.length))] as number
    const docs = new Map<string, { sessionsStarted: number, updates: number }>()
    const entry = (name: string) => {
      let e = docs.get(name)
      if (e === undefined) docs.set(name, e = { sessionsStarted: 0, updates: 0 })
      return e
    }
    for (const s of this.starts) entry(s.document).sessionsStarted++
    for (const u of this.updates) entry(u.document).updates += u.count
    const busiestDocuments = [...docs].map(([name, e]) => ({ name, ...e }))
      .sort((a, b) => (b.updates - a.updates) || (b.sessionsStarted - a.sessionsStarted))
      .slice(0, top)
    return {
      windowMs: this.windowMs,
      sessionsStarted: this.starts.length,
      sessionsEnded: this.ends.length,
      endsByReason,
      durationMs: durations.length === 0 ? null : { p50: pick(0.5), p90: pick(0.9), p99: pick(0.99), max: durations[durations.length - 1] as number },
      busiestDocuments
    }
  }

  private trim (): void {
    const cutoff = this.now() - this.windowMs
    this.starts = dropBefore(this.starts, s => s.at, cutoff, this.maxRecords)
    this.ends = dropBefore(this.ends, e => e.endedAt, cutoff, this.maxRecords)
    this.updates = dropBefore(this.updates, u => u.at, cutoff, this.maxRecords)
  }
}

/** Drops leading records older than `cutoff` (records are in time order) and beyond `max`. */
function dropBefore<T> (records: T[], at: (r: T) => number, cutoff: number, max: number): T[] {
  let i = 0
  while (i < records.length && at(records[i] as T) < cutoff) i++
  i = Math.max(i, records.length - max)
  return i === 0 ? records : records.slice(i)
}
