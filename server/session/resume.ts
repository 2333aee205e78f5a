import { randomBytes } from 'node:crypto'

import type { DropReason } from '../../shared/reasons.js'

export type { DropReason }

/** A Tandem session that dropped without a clean leave and may still resume. */
export interface HeldSession {
  sessionId: string
  doc: string
  userId: string
  reason: DropReason
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
