import type { Logger } from 'pino'
import type { Metrics } from './metrics.js'
import type { SessionStats } from './stats.js'
import type { EndReason, Session } from '../session/session.js'
import type { SessionOutcome } from '../session/collaboration.js'

/** The end of one session: what `session ended` logs and analytics keep. */
export interface SessionEnd {
  doc: string
  session: string
  user: string
  /** The client's address (see --trust-proxy). */
  address: string
  reason: EndReason
  /** The WebSocket close code (1006 when the connection dropped without one). */
  code: number
  startedAt: number
  endedAt: number
  updatesReceived: number
  updatesSent: number
  bytesReceived: number
  bytesSent: number
  messagesReceived: number
  messagesSent: number
}

/**
 * Counts sessions once per logical session. A Tandem session that drops is held for its
 * reconnect grace: its end is recorded only when collaboration says it will not resume
 * (`finished`); if it resumes, the new connection carries on its start time and counters.
 */
export class SessionAnalytics {
  /** Ended connections of sessions within their grace. */
  private readonly held = new Map<string, SessionEnd>()
  /** What resumed sessions did on their earlier connections. */
  private readonly carried = new Map<string, SessionEnd>()

  constructor (
    private readonly metrics: Metrics,
    private readonly stats: SessionStats,
    private readonly logger: Logger,
    /** Told of every session's end, once (webhooks). */
    private readonly onEnded: ((end: SessionEnd) => void) | null = null
  ) {}

  /** A connection opened: a new session, or the resume of one held. */
  started (session: Session, resumed: boolean): void {
    const earlier = resumed ? this.held.get(session.id) : undefined
    if (earlier !== undefined) {
      this.held.delete(session.id)
      this.carried.set(session.id, earlier)
    }
    // a resume from another instance too: its start was counted there (summed over instances,
    // sessions started and ended still agree); its end is counted here
    if (resumed) return
    this.metrics.sessionsStarted.inc()
    this.stats.started(session.doc.name)
  }

  /**
   * A connection ended: `held` when collaboration keeps the session for its grace, `moved` when
   * the session resumed on another instance (it goes on there: nothing is recorded here).
   */
  ended (session: Session, reason: EndReason, code: number, outcome: SessionOutcome): void {
    const earlier = this.carried.get(session.id)
    this.carried.delete(session.id)
    if (outcome === 'moved') return
    const end: SessionEnd = {
      doc: session.doc.name,
      session: session.id,
      user: session.identity.userId,
      address: session.address,
      reason,
      code,
      startedAt: earlier?.startedAt ?? session.startedAt,
      endedAt: Date.now(),
      updatesReceived: session.updatesReceived + (earlier?.updatesReceived ?? 0),
      updatesSent: session.updatesSent + (earlier?.updatesSent ?? 0),
      bytesReceived: session.bytesReceived + (earlier?.bytesReceived ?? 0),
      bytesSent: session.bytesSent + (earlier?.bytesSent ?? 0),
      messagesReceived: session.messagesReceived + (earlier?.messagesReceived ?? 0),
      messagesSent: session.messagesSent + (earlier?.messagesSent ?? 0)
    }
    if (outcome === 'held') this.held.set(session.id, end)
    else this.record(end)
  }

  /** A held session resumed on another instance: it goes on there, nothing is recorded here. */
  moved (sessionId: string): void {
    this.held.delete(sessionId)
  }

  /** A held session will not resume: it ended when its connection did, for `reason`. */
  finished (sessionId: string, reason: EndReason): void {
    const end = this.held.get(sessionId)
    if (end === undefined) return
    this.held.delete(sessionId)
    this.record({ ...end, reason })
  }

  private record (end: SessionEnd): void {
    const durationMs = end.endedAt - end.startedAt
    this.metrics.sessionsEnded.labels(end.reason).inc()
    this.metrics.sessionSeconds.labels(end.reason).observe(durationMs / 1000)
    this.stats.ended({ document: end.doc, reason: end.reason, startedAt: end.startedAt, endedAt: end.endedAt })
    const { startedAt: _s, endedAt: _e, ...fields } = end
    this.logger.info({ event: 'session-end', ...fields, durationMs }, 'session ended')
    this.onEnded?.(end)
  }
}
