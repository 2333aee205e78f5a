import type { Logger } from 'pino'
import { LIVE_RECORD_MS, type ClaimedRecord, type GraceEnd, type RedisResumeRecords, type ResumeRecord } from './redis-resume.js'

/** How a claim went: the record taken over, nothing to take (a fresh session), or Redis away. */
export type ClaimOutcome = ClaimedRecord | 'none' | 'unreachable'

/** What the shared records need of the instance's sessions. */
export interface SharedSessions {
  /** True while `hash` is the hash of the session's current resume secret. */
  current (sessionId: string, hash: string): boolean
  /** The live Tandem sessions here (their records are refreshed). */
  live (): Iterable<{ doc: string, sessionId: string }>
}

/** A record's grace outlives the grace itself a little: the instance holding it ends it first. */
const RECORD_MARGIN_MS = 2_000

/**
 * This instance's side of the resume records shared through Redis (redis-resume.ts): it writes
 * them as its sessions get secrets, drop and end, keeps them alive, retries a write Redis did not
 * take, claims sessions for new connections, and tells the instance a session was claimed from
 * once the session joined here. The policy (what a claim or a let-go does to presence and locks)
 * is collaboration.ts's.
 */
export class SharedResume {
  /** Sessions claimed from another instance, by id: the record, its instance told once the session joined. */
  private readonly claimedFrom = new Map<string, ClaimedRecord>()
  /** Retries of records Redis did not take (it was away). */
  private readonly retries = new Set<ReturnType<typeof setTimeout>>()
  private readonly refresher: ReturnType<typeof setInterval>
  private closed = false

  constructor (
    private readonly records: RedisResumeRecords,
    private readonly peers: { publishResumed (sessionId: string, to: string): void },
    private readonly sessions: SharedSessions,
    private readonly graceMs: number,
    private readonly logger: Logger
  ) {
    this.refresher = setInterval(() => this.refresh(), LIVE_RECORD_MS / 4)
    this.refresher.unref?.()
  }

  /** This instance's id. */
  get nodeId (): string {
    return this.records.nodeId
  }

  /** Claims a session for a new connection (see RedisResumeRecords.claim). */
  async claim (doc: string, sessionId: string, secret: string, userId: string): Promise<ClaimOutcome> {
    try {
      return await this.records.claim(doc, sessionId, secret, userId, this.graceMs + RECORD_MARGIN_MS) ?? 'none'
    } catch (err) {
      this.logger.warn({ err, doc }, 'cannot look up a resume in Redis')
      return 'unreachable'
    }
  }

  /** A session claimed from another instance is about to join here: that one is told once it joined. */
  claimed (record: ClaimedRecord): void {
    this.claimedFrom.set(record.sessionId, record)
  }

  /** When the user of a session claimed from another instance joined the document there. */
  joinedAt (sessionId: string): number | undefined {
    return this.claimedFrom.get(sessionId)?.joinedAt
  }

  /** The session joined here (its presence was published): the instance it came from lets it go. */
  joined (sessionId: string): void {
    const claimed = this.claimedFrom.get(sessionId)
    if (claimed === undefined) return
    this.claimedFrom.delete(sessionId)
    this.peers.publishResumed(sessionId, claimed.from)
  }

  /**
   * A session got a new secret: its record is written. While Redis is away, tried again (0.5 s
   * doubling to 30 s) as long as that secret is still the session's: until then the record has
   * the one before, and a resume elsewhere starts afresh.
   */
  issued (record: ResumeRecord, hash: string): void {
    this.retrying(async () => { await this.records.issue(record, hash) },
      () => this.sessions.current(record.sessionId, hash),
      err => this.logger.warn({ err, doc: record.doc }, 'cannot store a resume secret in Redis; trying again'))
  }

  /** The session dropped and is held here: its record lives as long as the grace. */
  held (doc: string, sessionId: string): void {
    this.records.hold(doc, sessionId, this.graceMs + RECORD_MARGIN_MS).catch((err: unknown) => {
      this.logger.debug({ err, doc }, 'cannot time a resume record')
    })
  }

  /**
   * The grace of a session held here ran out: `moved` when it was claimed elsewhere meanwhile,
   * else its record is gone (Redis away counts as `mine`: nobody could claim it).
   */
  async graceOver (doc: string, sessionId: string): Promise<GraceEnd> {
    // claimed here and never joined (a failed handshake)
    this.claimedFrom.delete(sessionId)
    try {
      return await this.records.end(doc, sessionId)
    } catch (err) {
      this.logger.debug({ err, doc }, 'cannot end a resume record')
      return 'mine'
    }
  }

  /**
   * The session ended for good here: its record goes (if still this instance's), void everywhere.
   * While Redis is away, tried again as `issued` is: a record left behind could be claimed once
   * Redis is back.
   */
  voided (doc: string, sessionId: string): void {
    this.retrying(async () => { await this.records.end(doc, sessionId) }, () => true,
      err => this.logger.warn({ err, doc }, 'cannot void a resume secret in Redis; trying again'))
  }

  /**
   * Runs `write`; while it fails, again after 0.5 s doubling to 30 s, as long as `still()` holds
   * when each try starts and this is open. The first failure is logged.
   */
  private retrying (write: () => Promise<void>, still: () => boolean, failed: (err: unknown) => void, attempt = 0): void {
    write().catch((err: unknown) => {
      if (attempt === 0) failed(err)
      if (this.closed || !still()) return
      const retry = setTimeout(() => {
        this.retries.delete(retry)
        if (this.closed || !still()) return
        this.retrying(write, still, failed, attempt + 1)
      }, Math.min(30_000, 500 * 2 ** Math.min(attempt, 6)))
      retry.unref?.()
      this.retries.add(retry)
    })
  }

  /** Stops the refresh and the retries. Safe to call twice. */
  close (): void {
    this.closed = true
    clearInterval(this.refresher)
    for (const retry of this.retries) clearTimeout(retry)
    this.retries.clear()
  }

  /** Gives the records of the live sessions here their full time to live again. */
  private refresh (): void {
    this.records.refresh(this.sessions.live()).catch((err: unknown) => this.logger.warn({ err }, 'cannot refresh resume records'))
  }
}
