import type { EndReason } from '../session/session.js'

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

/** Slices of the window that update counts are kept in: the window's edge is this coarse. */
const UPDATE_BUCKETS = 60

/**
 * Records in time order within a sliding window, at most `max` of them. Adding is O(1) and so,
 * amortised, is dropping old records: a head index moves, and the array is cut only once the
 * dropped part outweighs the rest.
 */
class Window<T> {
  private records: T[] = []
  private head = 0

  constructor (private readonly at: (record: T) => number, private readonly max: number) {}

  push (record: T): void {
    this.records.push(record)
  }

  last (): T | undefined {
    return this.records.length > this.head ? this.records[this.records.length - 1] : undefined
  }

  /** Drops the records older than `cutoff` and beyond `max`; returns the rest. */
  trim (cutoff: number): T[] {
    const records = this.records
    while (this.head < records.length && this.at(records[this.head] as T) < cutoff) this.head++
    this.head = Math.max(this.head, records.length - this.max)
    if (this.head > 1024 && this.head * 2 > records.length) {
      this.records = records.slice(this.head)
      this.head = 0
    }
    return this.head === 0 ? this.records : this.records.slice(this.head)
  }

  /** Drops old records now and then, so that memory stays bounded between summaries. */
  pushAndTrim (record: T, cutoff: number): void {
    this.push(record)
    if ((this.records.length & 1023) === 0) this.trim(cutoff)
  }
}

/**
 * Session starts within a sliding window, as two arrays (times unboxed, documents), at most
 * `max`: a record object per start cost every connection of the last 15 minutes 64 bytes.
 * Dropping old starts works as in Window.
 */
class Starts {
  private at: number[] = []
  private documents: string[] = []
  private head = 0

  constructor (private readonly max: number) {}

  push (at: number, document: string, cutoff: number): void {
    this.at.push(at)
    this.documents.push(document)
    if ((this.at.length & 1023) === 0) this.trim(cutoff)
  }

  /** Drops the starts older than `cutoff` and beyond `max`; returns the documents of the rest. */
  trim (cutoff: number): string[] {
    const at = this.at
    while (this.head < at.length && (at[this.head] as number) < cutoff) this.head++
    this.head = Math.max(this.head, at.length - this.max)
    if (this.head > 1024 && this.head * 2 > at.length) {
      this.at = at.slice(this.head)
      this.documents = this.documents.slice(this.head)
      this.head = 0
    }
    return this.head === 0 ? this.documents : this.documents.slice(this.head)
  }
}

/**
 * Session analytics over a sliding window: starts, ends by reason, durations, busiest
 * documents. Every call is O(1) (amortised): the server calls `updated` for every stored batch of
 * every document. Memory is bounded by `maxRecords` sessions and, for update counts, by the
 * documents updated within each of the window's 60 slices.
 */
export class SessionStats {
  private readonly starts: Starts
  private readonly ends: Window<SessionRecord>
  private readonly updates: Window<{ at: number, counts: Map<string, number> }>

  constructor (
    private readonly windowMs = 15 * 60_000,
    maxRecords = 100_000,
    private readonly now: () => number = Date.now
  ) {
    this.starts = new Starts(maxRecords)
    this.ends = new Window(e => e.endedAt, maxRecords)
    // a slice is dropped once its end leaves the window
    this.updates = new Window(u => u.at + windowMs / UPDATE_BUCKETS, UPDATE_BUCKETS + 1)
  }

  started (document: string): void {
    this.starts.push(this.now(), document, this.cutoff())
  }

  ended (record: SessionRecord): void {
    this.ends.pushAndTrim(record, this.cutoff())
  }

  /** `count` updates were applied to `document` (called once per stored batch, not per update). */
  updated (document: string, count: number): void {
    const at = this.now()
    let slice = this.updates.last()
    if (slice === undefined || at - slice.at >= this.windowMs / UPDATE_BUCKETS) {
      slice = { at, counts: new Map() }
      this.updates.push(slice)
      this.updates.trim(this.cutoff())
    }
    slice.counts.set(document, (slice.counts.get(document) ?? 0) + count)
  }

  summary (top = 10): StatsSummary {
    const cutoff = this.cutoff()
    const starts = this.starts.trim(cutoff)
    const ends = this.ends.trim(cutoff)
    const endsByReason: Partial<Record<EndReason, number>> = {}
    for (const end of ends) endsByReason[end.reason] = (endsByReason[end.reason] ?? 0) + 1
    const durations = ends.map(e => e.endedAt - e.startedAt).sort((a, b) => a - b)
    const pick = (q: number): number => durations[Math.min(durations.length - 1, Math.floor(q * durations.length))] as number
    const docs = new Map<string, { sessionsStarted: number, updates: number }>()
    const entry = (name: string) => {
      let e = docs.get(name)
      if (e === undefined) docs.set(name, e = { sessionsStarted: 0, updates: 0 })
      return e
    }
    for (const document of starts) entry(document).sessionsStarted++
    for (const slice of this.updates.trim(cutoff)) {
      for (const [name, count] of slice.counts) entry(name).updates += count
    }
    const busiestDocuments = [...docs].map(([name, e]) => ({ name, ...e }))
      .sort((a, b) => (b.updates - a.updates) || (b.sessionsStarted - a.sessionsStarted))
      .slice(0, top)
    return {
      windowMs: this.windowMs,
      sessionsStarted: starts.length,
      sessionsEnded: ends.length,
      endsByReason,
      durationMs: durations.length === 0 ? null : { p50: pick(0.5), p90: pick(0.9), p99: pick(0.99), max: durations[durations.length - 1] as number },
      busiestDocuments
    }
  }

  private cutoff (): number {
    return this.now() - this.windowMs
  }
}
