import type { Logger } from 'pino'
import { writeTandem } from '../shared/messages.js'
import { CloseCode } from '../shared/constants.js'
import { isTandemError } from '../shared/errors.js'
import { LockDeniedError } from '../shared/lock-denied-error.js'
import type { LeaveReason, LockInfo, PresenceEntry, TandemMessage } from '../shared/tandem.js'
import { PresenceBoard, type PresenceChange } from './presence.js'
import { PresenceMerge } from './cluster-presence.js'
import type { LockChange, LockTable } from './locks.js'
import { ResumeTable, newResumeSecret, sameSecret, type HeldSession } from './resume.js'
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
  private readonly renewals = new Map<string, ReturnType<typeof setInterval>>()
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
    // no secret: its end had begun (voidResume) when the connection dropped; it cannot resume
    if (session.tandem && (reason === 'disconnect' || reason === 'timeout') && !this.closing && this.options.reconnectGraceMs > 0 && this.secrets.has(session.id)) {
      room.held.add(session.id)
      room.board.suspend(session.id)
      this.locks.cancelWaits(doc, session.id)
      const { userId, issuedAt, jti } = session.identity
      this.resumes.hold({ sessionId: session.id, doc, userId, reason, issuedAt, jti }, this.options.reconnectGraceMs,
        held => {
          this.finish(held.sessionId, held.doc, held.reason)
          this.observer.finished?.(held.sessionId, held.reason)
        })
      return true
    }
    this.finish(session.id, doc, reason === 'error' ? 'kicked' : reason)
    return false
  }

  /** The session is being ended for good (revoked, expired, idle): its resume secret is void now. */
  voidResume (sessionId: string): void {
    this.secrets.delete(sessionId)
  }

  /** A session's identity changed (a refresh): presence shows its new name and color. */
  identityChanged (session: Participant): void {
    this.rooms.get(session.doc.name)?.board.rename(session.id, session.identity)
  }

  /** Ends the held sessions `covered` picks (a revocation): no resume; locks and presence go now. */
  revokeHeld (covered: (held: HeldSession) => boolean): number {
    let ended = 0
    for (const held of this.resumes.list()) {
      if (!covered(held) || this.resumes.take(held.sessionId) === undefined) continue
      this.finish(held.sessionId, held.doc, 'revoked')
      this.observer.finished?.(held.sessionId, 'revoked')
      ended++
    }
    return ended
  }

  /** Locks held now by sessions of this instance (live or within their grace). */
  get locksHeld (): number {
    return this.renewals.size
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
    for (const timer of this.renewals.values()) clearInterval(timer)
    this.renewals.clear()
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
    // the instance renewing a lock is its holder's: it alone counts the release
    if (change.event === 'released' && this.renewals.has(key)) {
      this.observer.lock?.(change.reason === 'expired' ? 'expired' : change.reason === 'admin' ? 'force_released' : 'released')
    }
    clearInterval(this.renewals.get(key))
    this.renewals.delete(key)
    if (change.event === 'acquired' && this.owns(change.lock.sessionId)) this.renewWhileAlive(change.doc, change.lock, key)
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

  /** Renews a lease at a third of its length while its session lives (or is held). */
  private renewWhileAlive (doc: string, lock: LockInfo, key: string): void {
    const ttlMs = Math.max(1, lock.expiresAt - lock.acquiredAt)
    const timer = setInterval(() => {
      if (!this.owns(lock.sessionId)) return
      this.locks.renew(doc, lock.resource, lock.sessionId, ttlMs).catch((err: unknown) => {
        this.logger.warn({ err, doc, resource: lock.resource }, 'cannot renew lock')
      })
    }, Math.max(1, Math.floor(ttlMs / 3)))
    timer.unref?.()
    this.renewals.set(key, timer)
  }

  private acquire (session: Participant, request: Extract<TandemMessage, { type: 'lock-acquire' }>): void {
    const doc = session.doc.name
    if (session.identity.access !== 'write') {
      this.observer.lock?.('refused')
      return this.reply(session.id, request.id, 'TANDEM_ERR_READ_ONLY', null)
    }
    const ttlMs = Math.min(request.ttlMs === 0 ? this.options.lockTtlMs : request.ttlMs, MAX_LOCK_TTL_MS)
    const waitMs = Math.min(request.waitMs, MAX_LOCK_WAIT_MS)
    const { identity } = session
    let result: Promise<LockInfo>
    try {
      result = this.locks.acquire(doc, request.resource, { sessionId: session.id, userId: identity.userId, name: identity.name, color: identity.color }, {
        ttlMs, waitMs, onQueued: () => this.observer.lock?.('waited')
      })
    } catch (err) {
      result = Promise.reject(err)
    }
    result.then(lock => {
      // granted to a session that ended meanwhile: give it back at once
      if (!this.owns(session.id)) {
        void this.locks.release(doc, lock.resource, session.id, 'leave').catch(() => {})
        return
      }
      this.observer.lock?.('granted')
      this.reply(session.id, request.id, '', lock)
    }, (err: unknown) => {
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
