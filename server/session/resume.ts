import { randomBytes } from 'node:crypto'
import { hashSecret, sameSecret } from '../auth/secret.js'

import type { DropReason } from '../../shared/reasons.js'

export type { DropReason }

/** A Tandem session that dropped without a clean leave and may still resume. */
export interface HeldSession {
  sessionId: string
  doc: string
  userId: string
  reason: DropReason
  /** The session's credentials, for revocations of a token (`jti`) or of older ones (`issuedAt`). */
  issuedAt?: number
  jti?: string
}

interface Held extends HeldSession {
  timer: ReturnType<typeof setTimeout>
}

/** A fresh resume secret: 144 random bits, URL-safe. */
export function newResumeSecret (): string {
  return randomBytes(18).toString('base64url')
}

/**
 * Sessions within their reconnect grace. `hold` starts the grace; `take` ends it early when the
 * client resumes; otherwise `expire` runs when the grace is over.
 */
export class ResumeTable {
  private readonly held = new Map<string, Held>()

  /** Holds `session` for `graceMs`, then calls `expire` unless it was taken. */
  hold (session: HeldSession, graceMs: number, expire: (session: HeldSession) => void): void {
    this.take(session.sessionId)
    const held: Held = {
      ...session,
      timer: setTimeout(() => {
        if (this.held.get(session.sessionId) !== held) return
        this.held.delete(session.sessionId)
        expire(session)
      }, graceMs)
    }
    this.held.set(session.sessionId, held)
  }

  /** The held session of that id, if any. */
  get (sessionId: string): HeldSession | undefined {
    return this.held.get(sessionId)
  }

  /** Ends the grace of a session that resumed; returns it, or undefined if it was not held. */
  take (sessionId: string): HeldSession | undefined {
    const held = this.held.get(sessionId)
    if (held === undefined) return undefined
    clearTimeout(held.timer)
    this.held.delete(sessionId)
    return held
  }

  /** The sessions within their grace now. */
  list (): HeldSession[] {
    return [...this.held.values()]
  }

  /** Ends every grace at once (shutdown) and returns the sessions that were held. */
  takeAll (): HeldSession[] {
    const all = [...this.held.values()]
    for (const held of all) clearTimeout(held.timer)
    this.held.clear()
    return all
  }

  /** Number of sessions within their grace. */
  get size (): number {
    return this.held.size
  }
}

/** What resuming needs of a session. */
export interface Resumable {
  /** Stable across resumes. */
  readonly id: string
  readonly doc: { readonly name: string }
  readonly identity: { readonly userId: string }
  /** A Tandem client's: only those can resume (a stock client is never told its id nor a secret). */
  readonly tandem: boolean
  /** Drops the connection without a closing handshake and ends the session. */
  drop (): void
}

/**
 * Who may resume: the resume secret of every live or held Tandem session (its SHA-256 hash: the
 * secret itself is only ever sent to its client), the live Tandem sessions by id (a stock
 * client's session can be neither resumed nor dropped for a resume: it is not kept), and the
 * sessions within their reconnect grace. A secret is void once its session ended for good (`forget`).
 * With several instances the secrets that count are in Redis (session/redis-resume.ts); the ones
 * here then only say which sessions may be held.
 */
export class Resumption<S extends Resumable> {
  private readonly live = new Map<string, S>()
  private readonly secrets = new Map<string, string>()
  private readonly graces = new ResumeTable()

  /**
   * The session id a new connection resumes, or undefined for a fresh session. A resume needs
   * the `session` and `resume` query parameters of a session of the same user and document that
   * is held, or still live (a half-open socket: that one is dropped now and held).
   */
  resumable (doc: string, query: URLSearchParams, userId: string): string | undefined {
    const sessionId = query.get('session')
    const secret = query.get('resume')
    if (sessionId === null || secret === null) return undefined
    const expected = this.secrets.get(sessionId)
    if (expected === undefined || !sameSecret(expected, hashSecret(secret))) return undefined
    return this.reclaim(doc, sessionId, userId)
  }

  /**
   * The session id when the session, live or held here, is of that user and document (its
   * secret was checked): a live one (a half-open socket) is dropped now, and held.
   */
  reclaim (doc: string, sessionId: string, userId: string): string | undefined {
    const current = this.live.get(sessionId)
    if (current !== undefined) {
      if (current.doc.name !== doc || current.identity.userId !== userId) return undefined
      current.drop()
    }
    const held = this.graces.get(sessionId)
    if (held === undefined || held.doc !== doc || held.userId !== userId) return undefined
    return sessionId
  }

  /** A session started; true when it takes back a held session (its grace ends). */
  started (session: S, resumed: boolean): boolean {
    if (session.tandem) this.live.set(session.id, session)
    return resumed && this.graces.take(session.id) !== undefined
  }

  /** A fresh secret for a Tandem session (replacing the one it resumed with), and its hash. */
  issue (sessionId: string): { secret: string, hash: string } {
    const secret = newResumeSecret()
    const hash = hashSecret(secret)
    this.secrets.set(sessionId, hash)
    return { secret, hash }
  }

  /** The session's connection ended (it may still be held). */
  ended (session: S): void {
    if (this.live.get(session.id) === session) this.live.delete(session.id)
  }

  /** Holds a dropped session for `graceMs`; `expire` runs unless it resumes in time. */
  hold (held: HeldSession, graceMs: number, expire: (held: HeldSession) => void): void {
    this.graces.hold(held, graceMs, expire)
  }

  /**
   * The session ended for good, or its end has begun (revoked, expired, idle: it closes once its
   * edits are stored): its secret is void, and a drop meanwhile is not held (see `resumes`).
   */
  forget (sessionId: string): void {
    this.secrets.delete(sessionId)
  }

  /** True while `hash` is the hash of the session's resume secret. */
  current (sessionId: string, hash: string): boolean {
    return this.secrets.get(sessionId) === hash
  }

  /** True while the session has a resume secret: a drop now may be held for its grace. */
  resumes (sessionId: string): boolean {
    return this.secrets.has(sessionId)
  }

  /** Ends the grace of a held session without ending it (it resumed on another instance). */
  release (sessionId: string): HeldSession | undefined {
    return this.graces.take(sessionId)
  }

  /** The live Tandem sessions here. */
  sessions (): IterableIterator<S> {
    return this.live.values()
  }

  /** Ends the graces of the held sessions `covered` picks (a revocation); returns them. */
  takeWhere (covered: (held: HeldSession) => boolean): HeldSession[] {
    const taken: HeldSession[] = []
    for (const held of this.graces.list()) {
      if (covered(held) && this.graces.take(held.sessionId) !== undefined) taken.push(held)
    }
    return taken
  }

  /** True while the Tandem session is live here or held for its grace. */
  owns (sessionId: string): boolean {
    return this.live.has(sessionId) || this.graces.get(sessionId) !== undefined
  }

  /** The live Tandem session of that id here, if any. */
  session (sessionId: string): S | undefined {
    return this.live.get(sessionId)
  }

  /** Ends every grace at once (shutdown); returns the sessions that were held. */
  takeAll (): HeldSession[] {
    return this.graces.takeAll()
  }

  /** Number of sessions within their grace. */
  get held (): number {
    return this.graces.size
  }
}
