import type { Logger } from 'pino'
import { writeTandem } from '../../shared/messages.js'
import { isTandemError } from '../../shared/errors.js'
import { LockDeniedError } from '../../shared/lock-denied-error.js'
import type { LockInfo, TandemMessage } from '../../shared/tandem.js'
import type { LockReleaseReason } from '../../shared/reasons.js'
import type { LockChange, LockTable } from './table.js'
import type { LockEvent } from '../observability/metrics.js'
import type { Identity } from '../auth/auth.js'

/** Longest a lock request may queue. */
export const MAX_LOCK_WAIT_MS = 10 * 60_000
/** Longest lease a client may ask for. */
export const MAX_LOCK_TTL_MS = 24 * 60 * 60_000

/** What the lock service needs of a session. */
export interface LockSession {
  /** Stable across resumes. */
  readonly id: string
  readonly doc: { readonly name: string }
  readonly identity: Identity
  send (frame: Uint8Array): void
}

/** Where the lock service finds sessions: who holds what, who hears what. */
export interface LockSessions {
  /** True while the session is live here or held for its grace: its locks are renewed. */
  owns (sessionId: string): boolean
  /** The live socket of a session now (it may have resumed on another socket meanwhile). */
  live (sessionId: string): LockSession | undefined
  /** The Tandem sessions of a document here, which hear every lock change. */
  listeners (doc: string): Iterable<{ send (frame: Uint8Array): void }>
}

/**
 * Edit locks as sessions use them: requests and replies, the lock snapshot a Tandem session gets
 * when it joins (with the changes that happen meanwhile queued behind it), renewal of the leases
 * of this instance's sessions while they live, and every change told to the document's Tandem
 * sessions. The table (memory or Redis) keeps the locks themselves.
 */
export class LockService {
  /** Tandem sessions waiting for their lock snapshot: lock messages queue here meanwhile. */
  private readonly backlog = new Map<object, TandemMessage[]>()
  private readonly renewals = new Map<string, ReturnType<typeof setInterval>>()
  private readonly releases = new Set<Promise<unknown>>()
  private readonly unsubscribe: () => void

  constructor (
    readonly table: LockTable,
    private readonly sessions: LockSessions,
    private readonly options: { lockTtlMs: number },
    private readonly logger: Logger,
    /** A lock event, for metrics (counted once across instances; see CollaborationObserver). */
    private readonly observe: (event: LockEvent) => void = () => {}
  ) {
    this.unsubscribe = table.subscribe(change => this.changed(change))
  }

  /** Sends a Tandem session the document's locks; changes made meanwhile follow in order. */
  greet (session: LockSession): void {
    this.backlog.set(session, [])
    this.table.list(session.doc.name).then(locks => {
      const queued = this.backlog.get(session)
      if (queued === undefined) return
      this.backlog.delete(session)
      session.send(writeTandem({ type: 'locks', locks }))
      for (const message of queued) session.send(writeTandem(message))
    }, (err: unknown) => this.logger.error({ err }, 'cannot list locks'))
  }

  /** The session's connection ended: it waits for no snapshot any more. */
  forget (session: LockSession): void {
    this.backlog.delete(session)
  }

  /** Locks held now by sessions of this instance (live or within their grace). */
  get held (): number {
    return this.renewals.size
  }

  /** A lock request of a client. */
  acquire (session: LockSession, request: Extract<TandemMessage, { type: 'lock-acquire' }>): void {
    const doc = session.doc.name
    if (session.identity.access !== 'write') {
      this.observe('refused')
      return this.reply(session.id, request.id, 'TANDEM_ERR_READ_ONLY', null)
    }
    const ttlMs = Math.min(request.ttlMs === 0 ? this.options.lockTtlMs : request.ttlMs, MAX_LOCK_TTL_MS)
    const waitMs = Math.min(request.waitMs, MAX_LOCK_WAIT_MS)
    const { identity } = session
    let result: Promise<LockInfo>
    try {
      result = this.table.acquire(doc, request.resource, { sessionId: session.id, userId: identity.userId, name: identity.name, color: identity.color }, {
        ttlMs, waitMs, onQueued: () => this.observe('waited')
      })
    } catch (err) {
      result = Promise.reject(err)
    }
    result.then(lock => {
      // granted to a session that ended meanwhile: give it back at once
      if (!this.sessions.owns(session.id)) {
        void this.table.release(doc, lock.resource, session.id, 'leave').catch(() => {})
        return
      }
      this.observe('granted')
      this.reply(session.id, request.id, '', lock)
    }, (err: unknown) => {
      if (err instanceof LockDeniedError) {
        this.observe(err.code === 'TANDEM_ERR_LOCK_TIMEOUT' ? 'timed_out' : 'refused')
        return this.reply(session.id, request.id, err.code, err.holder)
      }
      if (isTandemError(err)) return this.reply(session.id, request.id, err.code, null)
      this.logger.error({ err, doc, resource: request.resource }, 'lock request failed')
      this.reply(session.id, request.id, 'TANDEM_ERR_STORE_FAILED', null)
    })
  }

  /** A release request of a client: only the holder's session can release. */
  release (session: LockSession, request: Extract<TandemMessage, { type: 'lock-release' }>): void {
    this.table.release(session.doc.name, request.resource, session.id, 'release').then(
      lock => this.reply(session.id, request.id, '', lock),
      (err: unknown) => this.reply(session.id, request.id, isTandemError(err) ? err.code : 'TANDEM_ERR_STORE_FAILED', null))
  }

  /** Cancels the session's queued requests (its connection dropped; it may still resume). */
  cancelWaits (doc: string, sessionId: string): void {
    this.table.cancelWaits(doc, sessionId)
  }

  /** Releases every lock of a session that ended for good; close() waits for it. */
  releaseAll (doc: string, sessionId: string, reason: LockReleaseReason): void {
    const release = this.table.releaseAll(doc, sessionId, reason).catch((err: unknown) => {
      this.logger.error({ err, doc, sessionId }, 'cannot release locks')
    }).finally(() => this.releases.delete(release))
    this.releases.add(release)
  }

  /** Waits for the releases under way, stops renewing and closes the table. */
  async close (): Promise<void> {
    while (this.releases.size > 0) await Promise.all(this.releases)
    this.unsubscribe()
    for (const timer of this.renewals.values()) clearInterval(timer)
    this.renewals.clear()
    await this.table.close()
  }

  private changed (change: LockChange): void {
    const key = JSON.stringify([change.doc, change.lock.resource])
    // the instance renewing a lock is its holder's: it alone counts the release
    if (change.event === 'released' && this.renewals.has(key)) {
      this.observe(change.reason === 'expired' ? 'expired' : change.reason === 'admin' ? 'force_released' : 'released')
    }
    clearInterval(this.renewals.get(key))
    this.renewals.delete(key)
    if (change.event === 'acquired' && this.sessions.owns(change.lock.sessionId)) this.renewWhileAlive(change.doc, change.lock, key)
    const message: TandemMessage = change.event === 'acquired'
      ? { type: 'lock-event', event: 'acquired', lock: change.lock }
      : { type: 'lock-event', event: 'released', lock: change.lock, reason: change.reason }
    const frame = writeTandem(message)
    for (const session of this.sessions.listeners(change.doc)) {
      const queued = this.backlog.get(session)
      if (queued !== undefined) queued.push(message)
      else session.send(frame)
    }
  }

  /** Renews a lease at a third of its length while its session lives (or is held). */
  private renewWhileAlive (doc: string, lock: LockInfo, key: string): void {
    const ttlMs = Math.max(1, lock.expiresAt - lock.acquiredAt)
    const timer = setInterval(() => {
      if (!this.sessions.owns(lock.sessionId)) return
      this.table.renew(doc, lock.resource, lock.sessionId, ttlMs).catch((err: unknown) => {
        this.logger.warn({ err, doc, resource: lock.resource }, 'cannot renew lock')
      })
    }, Math.max(1, Math.floor(ttlMs / 3)))
    timer.unref?.()
    this.renewals.set(key, timer)
  }

  /** Replies to whichever socket the session has now (it may have resumed meanwhile). */
  private reply (sessionId: string, id: number, code: string, lock: LockInfo | null): void {
    this.sessions.live(sessionId)?.send(writeTandem({ type: 'lock-reply', id, code, lock }))
  }
}
