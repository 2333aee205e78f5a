import type { Logger } from 'pino'
import { writeTandem } from '../shared/messages.js'
import { CloseCode } from '../shared/constants.js'
import { isTandemError } from '../shared/errors.js'
import { LockDeniedError } from '../shared/lock-denied-error.js'
import type { LeaveReason, LockInfo, PresenceEntry, TandemMessage } from '../shared/tandem.js'
import { PresenceBoard, type PresenceChange } from './presence.js'
import { PresenceMerge } from './cluster-presence.js'
import { validateResource, type LockChange, type LockTable } from './locks.js'
import { ResumeTable, newResumeSecret, sameSecret } from './resume.js'
import type { Identity } from './auth.js'
import type { LockEvent } from './metrics.js'

/** Why a session ended (mirrors session.ts EndReason; `error` is a kick for bad input). */
export type ExitReason = LeaveReason | 'error'

/** What collaboration needs of a session. */
export interface Participant {
  /** Stable across resumes. */
  readonly id: string
  readonly doc: { readonly name: string }
  readonly identity: Identity
  /** The client asked for Tandem messages (and can resume). */
  readonly tandem: boolean
  send (frame: Uint8Array): void
  close (code: number, reason: ExitReason, message?: string): void
  /** Drops the connection without a closing handshake and ends the session. */
  drop (): void
}

/** Options collaboration reads. */
export interface CollaborationOptions {
  reconnectGraceMs: number
  idleAfterMs: number
  lockTtlMs: number
  /** Shorter leases asked for are raised to this. */
  lockMinTtlMs: number
  /** Locks held plus requests pending, per session; 0: no limit. */
  maxLocksPerSession: number
}

/** What collaboration reports to its server (metrics, analytics). */
export interface CollaborationObserver {
  /**
   * A lock event, counted once across instances: requests where they were made, releases,
   * expiries and forced releases on the instance whose session held the lock.
   */
  lock? (event: LockEvent): void
  /** A session held for its reconnect grace ends for good (not resumed in time, or shutdown). */
  finished? (sessionId: string, reason: LeaveReason): void
}

/** Longest a lock request may queue. */
export const MAX_LOCK_WAIT_MS = 10 * 60_000
/** Longest lease a client may ask for. */
export const MAX_LOCK_TTL_MS = 24 * 60 * 60_000

/** How presence reaches the other instances (the cluster); absent on a single instance. */
export interface PresencePeers {
  /** This instance's entry of a user changed (null: its last connection here ended). */
  publishPresence (doc: string, userId: string, entry: PresenceEntry | null, reason: LeaveReason | ''): void
  /** Asks the peers for their presence of a document (a room was just created here). */
  refreshPresence (doc: string): void
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

interface Room {
  /** This instance's connections. */
  board: PresenceBoard
  /** The board merged with the peers' entries: what clients and the API see. */
  merge: PresenceMerge
  /** Live sessions of the document. */
  live: Set<Participant>
  /** Live Tandem sessions: they receive presence and lock messages. */
  tandem: Set<Participant>
  /** Ids of sessions within their reconnect grace. */
  held: Set<string>
}

/**
 * Presence, edit locks and the reconnect grace of every document, and the exit policy of a
 * session. The server calls `joined` when a session starts, `message` and `activity` while it
 * runs, and `ended` from the session's single exit path.
 *
 * Exit policy: a Tandem session that drops (`disconnect`, `timeout`) is held for the grace:
 * presence shows `reconnecting`, locks are kept and renewed, queued lock requests are
 * cancelled. Resumed in time, nothing is announced but the status; otherwise its locks are
 * released and `left` is announced with the drop's reason. Every other end (leave, kick,
 * shutdown, any end of a stock client) releases locks and presence at once.
 */
export class Collaboration {
  private readonly rooms = new Map<string, Room>()
  private readonly live = new Map<string, Participant>()
  /** Current resume secret of every live or held session. */
  private readonly secrets = new Map<string, string>()
  private readonly resumes = new ResumeTable()
  /** Tandem sessions waiting for their lock snapshot: lock messages queue here meanwhile. */
  private readonly lockBacklog = new Map<Participant, TandemMessage[]>()
  /** Locks held by sessions of this instance, by document and resource: they renew them. */
  private readonly owned = new Map<string, OwnedLock>()
  /** The same locks by session, with the session's renewal timer and pending requests. */
  private readonly sessionLocks = new Map<string, SessionLocks>()
  private readonly releases = new Set<Promise<unknown>>()
  private readonly unsubscribe: () => void
  private closing = false
  private closed: Promise<void> | undefined

  constructor (
    readonly locks: LockTable,
    private readonly options: CollaborationOptions,
    private readonly logger: Logger,
    private readonly peers?: PresencePeers,
    private readonly observer: CollaborationObserver = {}
  ) {
    this.unsubscribe = locks.subscribe(change => this.lockChanged(change))
    locks.keepAlive(sessionId => this.owns(sessionId))
  }

  /**
   * The session id a new connection resumes, or undefined for a fresh session. A resume needs
   * the `session` and `resume` query parameters of a session of the same user and document that
   * is held, or still live (a half-open socket: that one is dropped now and held).
   */
  resumable (doc: string, query: URLSearchParams, identity: Identity, tandem: boolean): string | undefined {
    const sessionId = query.get('session')
    const secret = query.get('resume')
    if (!tandem || this.closing || sessionId === null || secret === null) return undefined
    const expected = this.secrets.get(sessionId)
    if (expected === undefined || !sameSecret(expected, secret)) return undefined
    const current = this.live.get(sessionId)
    if (current !== undefined) {
      if (current.doc.name !== doc || current.identity.userId !== identity.userId) return undefined
      current.drop()
    }
    const held = this.resumes.get(sessionId)
    if (held === undefined || held.doc !== doc || held.userId !== identity.userId) return undefined
    return sessionId
  }

  /** A session started; `resumed` when `resumable` returned its id. Greets a Tandem client. */
  joined (session: Participant, resumed: boolean): void {
    const room = this.room(session.doc.name)
    this.live.set(session.id, session)
    room.live.add(session)
    if (resumed && this.resumes.take(session.id) !== undefined) {
      room.held.delete(session.id)
      room.board.resume(session.id)
    } else {
      room.board.connect(session.id, session.identity)
    }
    // read sessions may not lock: a session resumed with a read token gives up what it held
    if (resumed && session.identity.access !== 'write') this.dropLocks(session.id, session.doc.name)
    if (!session.tandem) return
    const secret = newResumeSecret()
    this.secrets.set(session.id, secret)
    const { identity } = session
    session.send(writeTandem({
      type: 'welcome', sessionId: session.id, secret, resumed, userId: identity.userId, name: identity.name, color: identity.color, access: identity.access
    }))
    session.send(writeTandem({ type: 'presence', users: room.merge.list() }))
    room.tandem.add(session)
    this.lockBacklog.set(session, [])
    this.locks.list(session.doc.name).then(locks => {
      const backlog = this.lockBacklog.get(session)
      if (backlog === undefined) return
      this.lockBacklog.delete(session)
      session.send(writeTandem({ type: 'locks', locks }))
      for (const message of backlog) session.send(writeTandem(message))
    }, (err: unknown) => this.logger.error({ err }, 'cannot list locks'))
  }

  /** A Tandem message from a client. */
  message (session: Participant, message: TandemMessage): void {
    const { board } = this.room(session.doc.name)
    switch (message.type) {
      case 'set-status':
        return board.setStatus(session.id, message.status)
      case 'leave':
        return session.close(CloseCode.NORMAL, 'leave')
      case 'lock-acquire':
        return this.acquire(session, message)
      case 'lock-release':
        return this.release(session, message)
      default:
        throw new Error(`${message.type} is not a client message`)
    }
  }

  /** The session edited the document or changed its awareness state. */
  activity (session: Participant): void {
    this.rooms.get(session.doc.name)?.board.activity(session.id)
  }

  /**
   * The exit policy (see the class comment). Called once per session, from Session.end. Returns
   * true when the session is held for its grace: its end is final only when `finished` is told.
   */
  ended (session: Participant, reason: ExitReason): boolean {
    const doc = session.doc.name
    const room = this.rooms.get(doc)
    if (this.live.get(session.id) === session) this.live.delete(session.id)
    this.lockBacklog.delete(session)
    if (room === undefined) return false
    room.live.delete(session)
    room.tandem.delete(session)
    if (session.tandem && (reason === 'disconnect' || reason === 'timeout') && !this.closing && this.options.reconnectGraceMs > 0) {
      room.held.add(session.id)
      room.board.suspend(session.id)
      this.locks.cancelWaits(doc, session.id)
      this.resumes.hold({ sessionId: session.id, doc, userId: session.identity.userId, reason }, this.options.reconnectGraceMs,
        held => {
          this.finish(held.sessionId, held.doc, held.reason)
          this.observer.finished?.(held.sessionId, held.reason)
        })
      return true
    }
    this.finish(session.id, doc, reason === 'error' ? 'kicked' : reason)
    return false
  }

  /** Locks held now by sessions of this instance (live or within their grace). */
  get locksHeld (): number {
    return this.owned.size
  }

  /** The presence of a document, on every instance (empty when nobody is there). */
  presence (doc: string): PresenceEntry[] {
    return this.rooms.get(doc)?.merge.list() ?? []
  }

  /** Documents with presence here: their live session count here and user count everywhere. */
  documents (): Array<{ name: string, sessions: number, users: number }> {
    return [...this.rooms].map(([name, room]) => ({ name, sessions: room.live.size, users: room.merge.size }))
  }

  /** This instance's own entries of a document, for a peer that asks. */
  ownPresence (doc: string): PresenceEntry[] {
    return this.rooms.get(doc)?.merge.own() ?? []
  }

  /** A peer's entry of one user changed (null: its last connection there ended). */
  peerPresence (node: string, doc: string, userId: string, entry: PresenceEntry | null, reason: LeaveReason | ''): void {
    this.rooms.get(doc)?.merge.set(node, userId, entry, reason === '' ? 'disconnect' : reason)
  }

  /** Everything a peer has of a document; what it does not list any more left (`disconnect`). */
  peerSnapshot (node: string, doc: string, entries: PresenceEntry[]): void {
    this.rooms.get(doc)?.merge.replace(node, entries, 'disconnect')
  }

  /** A peer died: its users leave every document (`timeout`) unless still here or elsewhere. */
  peerDown (node: string): void {
    for (const room of this.rooms.values()) room.merge.drop(node, 'timeout')
  }

  /** Number of sessions within their reconnect grace. */
  get held (): number {
    return this.resumes.size
  }

  /**
   * Shutdown, after every session was closed: ends every grace with `shutdown`, waits for the
   * lock releases, then closes the lock table. Safe to call twice.
   */
  close (): Promise<void> {
    this.closed ??= this.shutdown()
    return this.closed
  }

  private async shutdown (): Promise<void> {
    this.closing = true
    for (const held of this.resumes.takeAll()) {
      this.finish(held.sessionId, held.doc, 'shutdown')
      this.observer.finished?.(held.sessionId, 'shutdown')
    }
    while (this.releases.size > 0) await Promise.all(this.releases)
    this.unsubscribe()
    for (const entry of this.sessionLocks.values()) clearTimeout(entry.timer)
    this.sessionLocks.clear()
    this.owned.clear()
    for (const room of this.rooms.values()) room.board.close()
    this.rooms.clear()
    await this.locks.close()
  }

  private finish (sessionId: string, doc: string, reason: LeaveReason): void {
    this.secrets.delete(sessionId)
    const release = this.locks.releaseAll(doc, sessionId, reason).catch((err: unknown) => {
      this.logger.error({ err, doc, sessionId }, 'cannot release locks')
    }).finally(() => this.releases.delete(release))
    this.releases.add(release)
    const room = this.rooms.get(doc)
    if (room === undefined) return
    room.held.delete(sessionId)
    room.board.disconnect(sessionId, reason)
    // peers' entries go with the room: a room made again asks the peers afresh
    if (room.live.size === 0 && room.held.size === 0 && room.board.size === 0) {
      room.board.close()
      this.rooms.delete(doc)
    }
  }

  private room (doc: string): Room {
    let room = this.rooms.get(doc)
    if (room === undefined) {
      const created: Room = {
        board: new PresenceBoard(this.options.idleAfterMs, change => this.localPresence(doc, created, change)),
        merge: new PresenceMerge(change => this.presenceChanged(created, change)),
        live: new Set(),
        tandem: new Set(),
        held: new Set()
      }
      room = created
      this.rooms.set(doc, room)
      this.peers?.refreshPresence(doc)
    }
    return room
  }

  /** The board changed: merged for clients here, told to the peers. */
  private localPresence (doc: string, room: Room, change: PresenceChange): void {
    room.merge.local(change)
    if (change.event === 'left') this.peers?.publishPresence(doc, change.user.userId, null, change.reason)
    else this.peers?.publishPresence(doc, change.user.userId, change.user, '')
  }

  private presenceChanged (room: Room, change: PresenceChange): void {
    const frame = writeTandem({ type: 'presence-event', ...change } as TandemMessage)
    for (const session of room.tandem) session.send(frame)
  }

  private lockChanged (change: LockChange): void {
    const key = JSON.stringify([change.doc, change.lock.resource])
    const owned = this.owned.get(key)
    // the instance renewing a lock is its holder's: it alone counts the release
    if (change.event === 'released' && owned !== undefined) {
      this.observer.lock?.(change.reason === 'expired' ? 'expired' : change.reason === 'admin' ? 'force_released' : 'released')
    }
    if (owned !== undefined) this.disown(key, owned)
    if (change.event === 'acquired' && this.owns(change.lock.sessionId)) this.keep(change.doc, change.lock, key)
    const room = this.rooms.get(change.doc)
    if (room === undefined) return
    const message: TandemMessage = change.event === 'acquired'
      ? { type: 'lock-event', event: 'acquired', lock: change.lock }
      : { type: 'lock-event', event: 'released', lock: change.lock, reason: change.reason }
    const frame = writeTandem(message)
    for (const session of room.tandem) {
      const backlog = this.lockBacklog.get(session)
      if (backlog !== undefined) backlog.push(message)
      else session.send(frame)
    }
  }

  /** True while the session is live here or held for its grace. */
  private owns (sessionId: string): boolean {
    return this.live.has(sessionId) || this.resumes.get(sessionId) !== undefined
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
  private keep (doc: string, lock: LockInfo, key: string): void {
    const ttlMs = Math.max(1, lock.expiresAt - lock.acquiredAt)
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
    if (!this.owns(sessionId) || this.sessionLocks.get(sessionId) !== entry) return
    const now = Date.now()
    let next = Infinity
    for (const lock of entry.held.values()) {
      if (lock.dueAt - now <= lock.ttlMs / 6) {
        lock.dueAt = now + Math.floor(lock.ttlMs / 3)
        this.locks.renew(lock.doc, lock.resource, sessionId, lock.ttlMs).catch((err: unknown) => {
          this.logger.warn({ err, doc: lock.doc, resource: lock.resource }, 'cannot renew lock')
        })
      }
      next = Math.min(next, lock.dueAt)
    }
    if (next !== Infinity) this.arm(sessionId, entry, next)
  }

  /** Releases every lock of a session and cancels its queued requests (it resumed read-only). */
  private dropLocks (sessionId: string, doc: string): void {
    const release = this.locks.releaseAll(doc, sessionId, 'release').catch((err: unknown) => {
      this.logger.error({ err, doc, sessionId }, 'cannot release locks')
    }).finally(() => this.releases.delete(release))
    this.releases.add(release)
  }

  private acquire (session: Participant, request: Extract<TandemMessage, { type: 'lock-acquire' }>): void {
    const doc = session.doc.name
    if (session.identity.access !== 'write') {
      this.observer.lock?.('refused')
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
      this.observer.lock?.('refused')
      this.tidy(session.id, entry)
      return this.reply(session.id, request.id, 'TANDEM_ERR_TOO_MANY_LOCKS', null)
    }
    const { identity } = session
    let result: Promise<LockInfo>
    try {
      result = this.locks.acquire(doc, request.resource, { sessionId: session.id, userId: identity.userId, name: identity.name, color: identity.color }, {
        ttlMs, waitMs, onQueued: () => this.observer.lock?.('waited')
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
      if (!this.owns(session.id)) {
        void this.locks.release(doc, lock.resource, session.id, 'leave').catch(() => {})
        return
      }
      // asked again with another lease: renew it at its new pace
      const owned = this.owned.get(key)
      if (owned !== undefined) owned.ttlMs = ttlMs
      this.observer.lock?.('granted')
      this.reply(session.id, request.id, '', lock)
    }, (err: unknown) => {
      answered()
      if (err instanceof LockDeniedError) {
        this.observer.lock?.(err.code === 'TANDEM_ERR_LOCK_TIMEOUT' ? 'timed_out' : 'refused')
        return this.reply(session.id, request.id, err.code, err.holder)
      }
      if (isTandemError(err)) return this.reply(session.id, request.id, err.code, null)
      this.logger.error({ err, doc, resource: request.resource }, 'lock request failed')
      this.reply(session.id, request.id, 'TANDEM_ERR_STORE_FAILED', null)
    })
  }

  private release (session: Participant, request: Extract<TandemMessage, { type: 'lock-release' }>): void {
    this.locks.release(session.doc.name, request.resource, session.id, 'release').then(
      lock => this.reply(session.id, request.id, '', lock),
      (err: unknown) => this.reply(session.id, request.id, isTandemError(err) ? err.code : 'TANDEM_ERR_STORE_FAILED', null))
  }

  /** Replies to whichever socket the session has now (it may have resumed meanwhile). */
  private reply (sessionId: string, id: number, code: string, lock: LockInfo | null): void {
    this.live.get(sessionId)?.send(writeTandem({ type: 'lock-reply', id, code, lock }))
  }
}
