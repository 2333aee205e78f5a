import type { Logger } from 'pino'
import { writeTandem } from '../../shared/messages.js'
import { CloseCode } from '../../shared/constants.js'
import type { PresenceEntry, TandemMessage } from '../../shared/tandem.js'
import { isDrop, leaveReason, type EndReason, type LeaveReason } from '../../shared/reasons.js'
import { PresenceRooms, type PresencePeers } from '../presence/rooms.js'
import type { PresenceConnection } from '../presence/table.js'
import { LockService, type LockServiceOptions } from '../locks/service.js'
import type { LockChange, LockTable } from '../locks/table.js'
import { Resumption, type HeldSession } from './resume.js'
import type { RedisResumeRecords } from './redis-resume.js'
import { SharedResume } from './shared-resume.js'
import type { Identity } from '../auth/auth.js'
import type { LockEvent } from '../observability/metrics.js'

/** What collaboration needs of a session. */
export interface Participant {
  /** Stable across resumes. */
  readonly id: string
  readonly doc: { readonly name: string }
  readonly identity: Identity
  /** Kept for presence (see PresenceMember). */
  presence: PresenceConnection | undefined
  /** The client asked for Tandem messages (and can resume). */
  readonly tandem: boolean
  send (frame: Uint8Array): void
  close (code: number, reason: EndReason, message?: string): void
  /** Drops the connection without a closing handshake and ends the session. */
  drop (): void
}

/** Options collaboration reads. */
export interface CollaborationOptions extends LockServiceOptions {
  reconnectGraceMs: number
  idleAfterMs: number
}

/**
 * Resuming across instances: the resume records in Redis, and how to tell the instance a session
 * resumed from (the cluster). Absent on a single instance.
 */
export interface SharedResumeOptions {
  records: RedisResumeRecords
  peers: { publishResumed (sessionId: string, to: string): void }
}

/** What became of a session whose connection ended (see Collaboration.ended). */
export type SessionOutcome = 'ended' | 'held' | 'moved'

/** What collaboration reports to its server (metrics, analytics). */
export interface CollaborationObserver {
  /**
   * A lock event, counted once across instances: requests where they were made, releases,
   * expiries and forced releases on the instance whose session held the lock.
   */
  lock? (event: LockEvent): void
  /** A session held for its reconnect grace ends for good (not resumed in time, or shutdown). */
  finished? (sessionId: string, reason: LeaveReason): void
  /** A session held for its reconnect grace resumed on another instance: it did not end. */
  moved? (sessionId: string): void
  /**
   * A lock was acquired or released, told once across instances: by the instance of the session
   * that holds it (webhooks).
   */
  lockChanged? (change: LockChange): void
}

/**
 * The exit policy of a session, over the three rooms it decides for: presence
 * (presence/rooms.ts), edit locks (locks/service.ts) and resuming (session/resume.ts). The
 * server calls `joined` when a session starts, `message` and `activity` while it runs, and
 * `ended` from the session's single exit path.
 *
 * Exit policy: a Tandem session that drops (`disconnect`, `timeout`) is held for the grace:
 * presence shows `reconnecting`, locks are kept and renewed, queued lock requests are
 * cancelled. Resumed in time, nothing is announced but the status (resumed with a read token,
 * it gives up its locks, reason `release`, and its queued requests); otherwise its locks are
 * released and `left` is announced with the drop's reason. Every other end (leave, kick,
 * shutdown, bad input, expiry, revocation, idle timeout, any end of a stock client) releases
 * locks and presence at once, and voids the session's resume secret; a session whose end has
 * begun (`voidResume`: it closes once its edits are stored) is not held if it drops meanwhile.
 *
 * With several instances (`shared`), a session resumes on whichever instance its client reaches:
 * `claim` takes its record over in Redis (secret checked there), adopts its locks, and once it
 * joined tells the instance it was on, which lets it go (`resumedElsewhere`): no `left`, no
 * release, its half-open socket dropped without a trace. A grace that runs out ends the session
 * only if its record is still this instance's (else it moved on: let go).
 */
export class Collaboration {
  private readonly rooms: PresenceRooms
  private readonly resumption = new Resumption<Participant>()
  private readonly lockService: LockService
  private closing = false
  private closed: Promise<void> | undefined
  /** Live sessions being dropped because they resumed elsewhere: their end lets them go. */
  private readonly moving = new Set<string>()
  /** The resume records shared with the other instances (session/shared-resume.ts). */
  private readonly shared: SharedResume | undefined

  constructor (
    readonly locks: LockTable,
    private readonly options: CollaborationOptions,
    private readonly logger: Logger,
    peers?: PresencePeers,
    private readonly observer: CollaborationObserver = {},
    shared?: SharedResumeOptions
  ) {
    this.rooms = new PresenceRooms(options.idleAfterMs, peers)
    if (shared !== undefined) {
      this.shared = new SharedResume(shared.records, shared.peers, {
        current: (sessionId, hash) => this.resumption.current(sessionId, hash),
        live: () => [...this.resumption.sessions()].map(s => ({ doc: s.doc.name, sessionId: s.id }))
      }, options.reconnectGraceMs, logger)
    }
    this.lockService = new LockService(locks, {
      owns: id => this.resumption.owns(id),
      live: id => this.resumption.session(id),
      listeners: doc => this.rooms.listeners(doc)
    }, options, logger, event => this.observer.lock?.(event), change => this.observer.lockChanged?.(change))
  }

  /** The session id a new connection resumes, or undefined for a fresh session (see Resumption). */
  resumable (doc: string, query: URLSearchParams, identity: Identity, tandem: boolean): string | undefined {
    if (!tandem || this.closing || this.shared !== undefined) return undefined
    return this.resumption.resumable(doc, query, identity.userId)
  }

  /**
   * With several instances, before the upgrade: the session id a new connection resumes,
   * claimed in Redis from whichever instance had it (its locks adopted by this one), or
   * undefined for a fresh session (wrong or used secret, another user or document, after the
   * grace). With Redis unreachable, only a session of this instance resumes (nobody can have
   * claimed it meanwhile). A session claimed here is held here until it joins (so a failed
   * handshake ends it when the grace runs out).
   */
  claim (doc: string, query: URLSearchParams, identity: Identity, tandem: boolean): Promise<string | undefined> | undefined {
    if (this.shared === undefined || !tandem || this.closing || this.options.reconnectGraceMs <= 0) return undefined
    const sessionId = query.get('session')
    const secret = query.get('resume')
    if (sessionId === null || secret === null) return undefined
    return this.claimShared(this.shared, doc, query, identity, sessionId, secret)
  }

  /** claim's part in Redis: undefined from claim when there is nothing to claim (no promise). */
  private async claimShared (shared: SharedResume, doc: string, query: URLSearchParams, identity: Identity, sessionId: string, secret: string): Promise<string | undefined> {
    const claimed = await shared.claim(doc, sessionId, secret, identity.userId)
    // Redis is away, so nobody could claim it elsewhere meanwhile: this instance's own word holds
    if (claimed === 'unreachable') return this.resumption.resumable(doc, query, identity.userId)
    if (claimed === 'none' || this.closing) return undefined
    // it was here: as on a single instance (a half-open socket is dropped and held)
    if (claimed.from === shared.nodeId) return this.resumption.reclaim(doc, sessionId, identity.userId)
    const { userId, issuedAt, jti } = claimed
    this.resumption.hold({ sessionId, doc, userId, reason: 'disconnect', issuedAt, jti }, this.options.reconnectGraceMs, held => this.graceOver(held))
    try {
      await this.lockService.adopt(doc, sessionId)
    } catch (err) {
      // its locks stay with the other instance's renewals until their leases run out
      this.logger.warn({ err, doc, sessionId }, 'cannot take over the locks of a resumed session')
    }
    shared.claimed(claimed)
    return sessionId
  }

  /** A session started; `resumed` when `resumable` returned its id. Greets a Tandem client. */
  joined (session: Participant, resumed: boolean): void {
    const doc = session.doc.name
    this.rooms.join(doc, session, this.resumption.started(session, resumed), this.shared?.joinedAt(session.id))
    // read sessions may not lock: a session resumed with a read token gives up what it held
    // (reason `release`) and its queued requests
    if (resumed && session.identity.access !== 'write') this.lockService.releaseAll(doc, session.id, 'release')
    if (!session.tandem) return
    const { secret, hash } = this.resumption.issue(session.id)
    const { identity } = session
    this.shared?.issued({
      sessionId: session.id, doc, userId: identity.userId, issuedAt: identity.issuedAt, jti: identity.jti, joinedAt: this.rooms.joinedAt(doc, identity.userId)
    }, hash)
    session.send(writeTandem({
      type: 'welcome', sessionId: session.id, secret, resumed, userId: identity.userId, name: identity.name, color: identity.color, access: identity.access
    }))
    this.rooms.greet(doc, session)
    this.lockService.greet(session)
    // after its presence here was published: the old instance's part goes only once this one is known
    this.shared?.joined(session.id)
  }

  /**
   * A session of this instance resumed on another one: let it go. Held, its grace ends; live (a
   * half-open socket), it is dropped and its end lets it go (see `ended`).
   */
  resumedElsewhere (sessionId: string): void {
    const held = this.resumption.release(sessionId)
    if (held !== undefined) {
      this.letGo(held.sessionId, held.doc)
      this.observer.moved?.(sessionId)
      return
    }
    const live = this.resumption.session(sessionId)
    if (live === undefined) return
    this.moving.add(sessionId)
    live.drop()
  }

  /** A Tandem message from a client. */
  message (session: Participant, message: TandemMessage): void {
    switch (message.type) {
      case 'set-status':
        return this.rooms.setStatus(session.doc.name, session, message.status)
      case 'leave':
        return session.close(CloseCode.NORMAL, 'leave')
      case 'lock-acquire':
        return this.lockService.acquire(session, message)
      case 'lock-release':
        return this.lockService.release(session, message)
      default:
        throw new Error(`${message.type} is not a client message`)
    }
  }

  /** The session edited the document or changed its awareness state. */
  activity (session: Participant): void {
    this.rooms.activity(session.doc.name, session)
  }

  /**
   * The exit policy (see the class comment). Called once per session, from Session.end. Returns
   * `held` when the session is held for its grace (its end is final only when `finished` is
   * told), `moved` when it resumed on another instance (it did not end), else `ended`.
   */
  ended (session: Participant, reason: EndReason): SessionOutcome {
    const doc = session.doc.name
    this.resumption.ended(session)
    this.lockService.forget(session)
    const moving = this.moving.delete(session.id)
    if (!this.rooms.leave(doc, session)) return 'ended'
    if (moving) {
      this.letGo(session.id, doc)
      return 'moved'
    }
    // without a secret its end had begun (revoked, expired, idle) when the connection dropped
    if (session.tandem && isDrop(reason) && !this.closing && this.options.reconnectGraceMs > 0 && this.resumption.resumes(session.id)) {
      this.rooms.hold(doc, session.id)
      this.lockService.cancelWaits(doc, session.id)
      const { userId, issuedAt, jti } = session.identity
      this.resumption.hold({ sessionId: session.id, doc, userId, reason, issuedAt, jti }, this.options.reconnectGraceMs, held => this.graceOver(held))
      this.shared?.held(doc, session.id)
      return 'held'
    }
    this.finish(session.id, doc, leaveReason(reason))
    return 'ended'
  }

  /** The session is being ended for good (revoked, expired, idle): its resume secret is void now. */
  voidResume (sessionId: string, doc: string): void {
    this.resumption.forget(sessionId)
    this.shared?.voided(doc, sessionId)
  }

  /** A session's identity changed (a refresh or recheck): presence shows its new name and color. */
  identityChanged (session: Participant): void {
    this.rooms.rename(session.doc.name, session)
  }

  /** Ends the held sessions `covered` picks (a revocation): no resume; locks and presence go now. */
  revokeHeld (covered: (held: HeldSession) => boolean): number {
    const taken = this.resumption.takeWhere(covered)
    for (const held of taken) {
      this.finish(held.sessionId, held.doc, 'revoked')
      this.observer.finished?.(held.sessionId, 'revoked')
    }
    return taken.length
  }

  /** Locks held now by sessions of this instance (live or within their grace). */
  get locksHeld (): number {
    return this.lockService.held
  }

  /** The presence of a document, on every instance (empty when nobody is there). */
  presence (doc: string): PresenceEntry[] {
    return this.rooms.presence(doc)
  }

  /** Documents with presence here: their live session count here and user count everywhere. */
  documents (): Array<{ name: string, sessions: number, users: number }> {
    return this.rooms.documents()
  }

  /** This instance's own entries of a document, for a peer that asks. */
  ownPresence (doc: string): PresenceEntry[] {
    return this.rooms.ownPresence(doc)
  }

  /** A peer's entry of one user changed (null: its last connection there ended). */
  peerPresence (node: string, doc: string, userId: string, entry: PresenceEntry | null, reason: LeaveReason | ''): void {
    this.rooms.peerPresence(node, doc, userId, entry, reason)
  }

  /** Everything a peer has of a document; what it does not list any more left (`disconnect`). */
  peerSnapshot (node: string, doc: string, entries: PresenceEntry[]): void {
    this.rooms.peerSnapshot(node, doc, entries)
  }

  /** A peer died: its users leave every document (`timeout`) unless still here or elsewhere. */
  peerDown (node: string): void {
    this.rooms.peerDown(node)
  }

  /** Number of sessions within their reconnect grace. */
  get held (): number {
    return this.resumption.held
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
    this.shared?.close()
    for (const held of this.resumption.takeAll()) {
      this.finish(held.sessionId, held.doc, 'shutdown')
      this.observer.finished?.(held.sessionId, 'shutdown')
    }
    await this.lockService.close()
    this.rooms.close()
  }

  /** The session ended for good: its secret is void, its locks released, its presence gone. */
  private finish (sessionId: string, doc: string, reason: LeaveReason): void {
    this.resumption.forget(sessionId)
    this.shared?.voided(doc, sessionId)
    this.lockService.releaseAll(doc, sessionId, reason)
    this.rooms.finish(doc, sessionId, reason)
  }

  /**
   * A grace ran out. With several instances the session ends only if its record is still this
   * instance's: claimed meanwhile, it lives on elsewhere and is let go.
   */
  private graceOver (held: HeldSession): void {
    const end = (): void => {
      this.resumption.forget(held.sessionId)
      this.lockService.releaseAll(held.doc, held.sessionId, held.reason)
      this.rooms.finish(held.doc, held.sessionId, held.reason)
      this.observer.finished?.(held.sessionId, held.reason)
    }
    if (this.shared === undefined) return end()
    void this.shared.graceOver(held.doc, held.sessionId).then(outcome => {
      if (outcome !== 'moved') return end()
      this.letGo(held.sessionId, held.doc)
      this.observer.moved?.(held.sessionId)
    })
  }

  /**
   * The session resumed on another instance, which has its record and locks: this one forgets
   * it without a trace (its secret, its lock renewals, its presence part, whose removal the
   * merged entry does not show as `left`, since the other instance's part is there).
   */
  private letGo (sessionId: string, doc: string): void {
    this.resumption.forget(sessionId)
    this.lockService.letGo(doc, sessionId)
    this.rooms.finish(doc, sessionId, 'disconnect')
  }
}
