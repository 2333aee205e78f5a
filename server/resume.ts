import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'

/** Why a held session dropped: decides the `left` reason if it does not come back. */
export type DropReason = 'disconnect' | 'timeout'

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

/** Compares two secrets in constant time (whatever their lengths). */
export function sameSecret (a: string, b: string): boolean {
  const digest = (s: string): Buffer => createHash('sha256').update(s).digest()
  return timingSafeEqual(digest(a), digest(b))
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
