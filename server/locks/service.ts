import type { Logger } from 'pino'
import { writeTandem } from '../../shared/messages.js'
import { isTandemError } from '../../shared/errors.js'
import { LockDeniedError } from '../../shared/lock-denied-error.js'
import type { LockInfo, TandemMessage } from '../../shared/tandem.js'
import type { LockReleaseReason } from '../../shared/reasons.js'
import { validateResource, type LockChange, type LockTable } from './table.js'
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

/** Options the lock service reads. */
export interface LockServiceOptions {
  lockTtlMs: number
  /** Shorter leases asked for are raised to this. */
  lockMinTtlMs: number
  /** Locks held plus requests pending, per session; 0: no limit. */
  maxLocksPerSession: number
}

/** A lock held by a session of this instance; its session's one timer renews it. */
interface OwnedLock {
  doc: string
  resource: string
  sessionId: string
  ttlMs: number
  /** When it is next due for renewal: a third of its lease after the last one. */
  dueAt: number
}

/**
 * The locks of one session of this instance. One timer renews all of them, so a session's
 * hundred locks cost one timer, and every lock's renewal is lined up with the others'.
 */
interface SessionLocks {
  held: Map<string, OwnedLock>
  /** Lock requests sent to the table and not answered yet (queued ones included). */
  requests: number
  timer: ReturnType<typeof setTimeout> | undefined
  /** When the timer fires. */
  timerAt: number
}

/**
 * Edit locks as sessions use them: requests and replies, the lock snapshot a Tandem session gets
 * when it joins (with the changes that happen meanwhile queued behind it), renewal of the leases
 * of this instance's sessions while they live (one timer per session), the per-session cap
 * (--max-locks-per-session) and minimum lease (--lock-min-ttl), and every change told to the
 * document's Tandem sessions. The table (memory or Redis) keeps the locks themselves.
 */
export class LockService {
  /** Tandem sessions waiting for their lock snapshot: lock messages queue here meanwhile. */
  private readonly backlog = new Map<object, TandemMessage[]>()
  /** Locks held by sessions of this instance, by document and resource: they renew them. */
  private readonly owned = new Map<string, OwnedLock>()
  /** The same locks by session, with the session's renewal timer and pending requests. */
  private readonly sessionLocks = new Map<string, SessionLocks>()
  private readonly releases = new Set<Promise<unknown>>()
  private readonly unsubscribe: () => void

  constructor (
    readonly table: LockTable,
    private readonly sessions: LockSessions,
    private readonly options: LockServiceOptions,
    private readonly logger: Logger,
    /** A lock event, for metrics (counted once across instances; see CollaborationObserver). */
    private readonly observe: (event: LockEvent) => void = () => {},
    /**
     * A lock was acquired or released, told once across instances: by the instance of the
     * session that holds it (webhooks).
     */
    private readonly observeChange: (change: LockChange) => void = () => {}
  ) {
    this.unsubscribe = table.subscribe(change => this.changed(change))
    table.keepAlive(sessionId => sessions.owns(sessionId))
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
    return this.owned.size
  }

  /** A lock request of a client. */
  acquire (session: LockSession, request: Extract<TandemMessage, { type: 'lock-acquire' }>): void {
    const doc = session.doc.name
    if (session.identity.access !== 'write') {
      this.observe('refused')
      return this.reply(session.id, request.id, 'TANDEM_ERR_READ_ONLY', null)
    }
    const { lockTtlMs, lockMinTtlMs, maxLocksPerSession } = this.options
    // a lease shorter than the minimum is raised to it: renewing it would cost more than it buys
    const ttlMs = Math.min(Math.max(request.ttlMs === 0 ? lockTtlMs : request.ttlMs, lockMinTtlMs), MAX_LOCK_TTL_MS)
    const waitMs = Math.min(request.waitMs, MAX_LOCK_WAIT_MS)
    try {
      validateResource(request.resource)
    } catch (err) {
      return this.reply(session.id, request.id, isTandemError(err) ? err.code : 'TANDEM_ERR_INVALID_RESOURCE', null)
    }
    const key = JSON.stringify([doc, request.resource])
    const entry = this.locksOf(session.id)
    // asking again for a lock it holds renews it: never refused for the count
    if (maxLocksPerSession > 0 && !entry.held.has(key) && entry.held.size + entry.requests >= maxLocksPerSession) {
      this.observe('refused')
      this.tidy(session.id, entry)
      return this.reply(session.id, request.id, 'TANDEM_ERR_TOO_MANY_LOCKS', null)
    }
    const { identity } = session
    let result: Promise<LockInfo>
    try {
      result = this.table.acquire(doc, request.resource, { sessionId: session.id, userId: identity.userId, name: identity.name, color: identity.color }, {
        ttlMs, waitMs, onQueued: () => this.observe('waited')
      })
    } catch (err) {
      result = Promise.reject(err)
    }
    entry.requests++
    const answered = (): void => {
      entry.requests--
      this.tidy(session.id, entry)
    }
    result.then(lock => {
      answered()
      // granted to a session that ended meanwhile: give it back at once
      if (!this.sessions.owns(session.id)) {
        void this.table.release(doc, lock.resource, session.id, 'leave').catch(() => {})
        return
      }
      // asked again with another lease: renew it at its new pace
      const owned = this.owned.get(key)
      if (owned !== undefined) owned.ttlMs = ttlMs
      this.observe('granted')
      this.reply(session.id, request.id, '', lock)
    }, (err: unknown) => {
      answered()
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

  /**
   * Releases every lock of a session and cancels its queued requests: it ended for good, or
   * resumed read-only; close() waits for it.
   */
  releaseAll (doc: string, sessionId: string, reason: LockReleaseReason): void {
    const release = this.table.releaseAll(doc, sessionId, reason).catch((err: unknown) => {
      this.logger.error({ err, doc, sessionId }, 'cannot release locks')
    }).finally(() => this.releases.delete(release))
    this.releases.add(release)
  }

  /**
   * The session resumed here from another instance: its locks in `doc` are this instance's from
   * now on (same tokens, never released), renewed here while it lives.
   */
  async adopt (doc: string, sessionId: string): Promise<number> {
    const adopted = await this.table.adopt(doc, sessionId)
    for (const { lock, ttlMs } of adopted) this.keep(doc, lock, JSON.stringify([doc, lock.resource]), ttlMs)
    return adopted.length
  }

  /**
   * The session resumed on another instance, which renews its locks now: this one forgets them
   * without releasing anything (and counts nothing of them any more).
   */
  letGo (doc: string, sessionId: string): void {
    this.table.letGo(doc, sessionId)
    const entry = this.sessionLocks.get(sessionId)
    if (entry === undefined) return
    for (const [key, owned] of [...entry.held]) if (owned.doc === doc) this.disown(key, owned)
  }

  /** Waits for the releases under way, stops renewing and closes the table. */
  async close (): Promise<void> {
    while (this.releases.size > 0) await Promise.all(this.releases)
    this.unsubscribe()
    for (const entry of this.sessionLocks.values()) clearTimeout(entry.timer)
    this.sessionLocks.clear()
    this.owned.clear()
    await this.table.close()
  }

  private changed (change: LockChange): void {
    const key = JSON.stringify([change.doc, change.lock.resource])
    const owned = this.owned.get(key)
    // the instance renewing a lock is its holder's: it alone counts the release
    if (change.event === 'released' && owned !== undefined) {
      this.observe(change.reason === 'expired' ? 'expired' : change.reason === 'admin' ? 'force_released' : 'released')
      this.observeChange(change)
    }
    if (change.event === 'acquired' && this.sessions.owns(change.lock.sessionId)) this.observeChange(change)
    if (owned !== undefined) this.disown(key, owned)
    if (change.event === 'acquired' && this.sessions.owns(change.lock.sessionId)) this.keep(change.doc, change.lock, key)
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

  /** The lock records of a session, made on first use. */
  private locksOf (sessionId: string): SessionLocks {
    let entry = this.sessionLocks.get(sessionId)
    if (entry === undefined) this.sessionLocks.set(sessionId, entry = { held: new Map(), requests: 0, timer: undefined, timerAt: 0 })
    return entry
  }

  /** Forgets a session's lock records once it holds and awaits nothing. */
  private tidy (sessionId: string, entry: SessionLocks): void {
    if (entry.held.size > 0 || entry.requests > 0 || this.sessionLocks.get(sessionId) !== entry) return
    clearTimeout(entry.timer)
    this.sessionLocks.delete(sessionId)
  }

  /** A session of this instance got a lock: renew it, at a third of its lease, while it lives. */
  private keep (doc: string, lock: LockInfo, key: string, ttlMs = Math.max(1, lock.expiresAt - lock.acquiredAt)): void {
    const owned: OwnedLock = { doc, resource: lock.resource, sessionId: lock.sessionId, ttlMs, dueAt: Date.now() + Math.floor(ttlMs / 3) }
    const entry = this.locksOf(lock.sessionId)
    this.owned.set(key, owned)
    entry.held.set(key, owned)
    this.arm(lock.sessionId, entry, owned.dueAt)
  }

  private disown (key: string, owned: OwnedLock): void {
    this.owned.delete(key)
    const entry = this.sessionLocks.get(owned.sessionId)
    if (entry === undefined || entry.held.get(key) !== owned) return
    entry.held.delete(key)
    this.tidy(owned.sessionId, entry)
  }

  /** Makes the session's timer fire by `at` (it may fire earlier: nothing is due then). */
  private arm (sessionId: string, entry: SessionLocks, at: number): void {
    if (entry.timer !== undefined && entry.timerAt <= at) return
    clearTimeout(entry.timer)
    entry.timerAt = at
    entry.timer = setTimeout(() => this.renewSession(sessionId, entry), Math.max(1, at - Date.now()))
    entry.timer.unref?.()
  }

  /**
   * The session's timer: renews every lock due, and every lock due within a sixth of its lease
   * (renewed a little early, it lines up with the others: a session's locks then share ticks).
   */
  private renewSession (sessionId: string, entry: SessionLocks): void {
    entry.timer = undefined
    // a session that ended: its locks are being released; their leases run out otherwise
    if (!this.sessions.owns(sessionId) || this.sessionLocks.get(sessionId) !== entry) return
    const now = Date.now()
    let next = Infinity
    for (const lock of entry.held.values()) {
      if (lock.dueAt - now <= lock.ttlMs / 6) {
        lock.dueAt = now + Math.floor(lock.ttlMs / 3)
        this.table.renew(lock.doc, lock.resource, sessionId, lock.ttlMs).catch((err: unknown) => {
          this.logger.warn({ err, doc: lock.doc, resource: lock.resource }, 'cannot renew lock')
        })
      }
      next = Math.min(next, lock.dueAt)
    }
    if (next !== Infinity) this.arm(sessionId, entry, next)
  }

  /** Replies to whichever socket the session has now (it may have resumed meanwhile). */
  private reply (sessionId: string, id: number, code: string, lock: LockInfo | null): void {
    this.sessions.live(sessionId)?.send(writeTandem({ type: 'lock-reply', id, code, lock }))
  }
}
