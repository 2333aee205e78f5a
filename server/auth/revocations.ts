import type { Logger } from 'pino'
import type { Revocation, Store } from '../store/store.js'
import type { Identity } from './auth.js'

/** What `POST /api/revocations` names: one of a user, a session or a token id. */
export type RevocationTarget = Pick<Revocation, 'kind' | 'value'>

/** What a revocation is checked against: a session's credentials (live or held). */
export type Credentials = Pick<Identity, 'userId' | 'issuedAt' | 'jti'>

/** How often the list is read again from the store: catches what a peer stored while the bus was down. */
const RELOAD_MS = 30_000

/**
 * The revocations in force, in memory for the checks at every upgrade and refresh, and kept in
 * the store so that they survive a restart. A user's revocation covers the credentials issued
 * before it (`issuedAt` < `revokedAt`); a session's covers that session; a `jti`'s that token.
 * Each is kept for `ttlMs` (the longest token lifetime the deployment accepts), then pruned.
 */
export class Revocations {
  private readonly users = new Map<string, Revocation>()
  private readonly sessions = new Map<string, Revocation>()
  private readonly jtis = new Map<string, Revocation>()
  private timer: NodeJS.Timeout | undefined

  constructor (
    private readonly store: Store,
    private readonly ttlMs: number,
    private readonly logger: Logger
  ) {}

  /** Reads the stored revocations, then keeps re-reading them (and pruning) now and then. */
  async start (): Promise<void> {
    await this.reload()
    this.timer = setInterval(() => {
      this.reload().catch((err: unknown) => this.logger.warn({ err }, 'cannot read revocations; keeping the ones known'))
    }, RELOAD_MS)
    this.timer.unref()
  }

  /** A new revocation made here: stored first (so it survives a crash), then in force. */
  async revoke (target: RevocationTarget, now = Date.now()): Promise<Revocation> {
    const revocation: Revocation = { ...target, revokedAt: now, expiresAt: now + this.ttlMs }
    await this.store.addRevocation(revocation)
    this.add(revocation)
    return revocation
  }

  /**
   * A peer's revocation: in force at once, and stored here too, since this instance's store may
   * not be the peer's (SQLite per instance); storing it twice keeps one record.
   */
  received (revocation: Revocation): void {
    this.add(revocation)
    this.store.addRevocation(revocation).catch((err: unknown) => this.logger.warn({ err }, 'cannot store a peer\'s revocation'))
  }

  /** The revocation that covers these credentials or this session, if any. */
  covering (identity: Credentials, sessionId?: string): Revocation | undefined {
    const now = Date.now()
    const live = (revocation: Revocation | undefined): Revocation | undefined =>
      revocation !== undefined && revocation.expiresAt > now ? revocation : undefined
    const user = live(this.users.get(identity.userId))
    if (user !== undefined && (identity.issuedAt ?? 0) < user.revokedAt) return user
    if (sessionId !== undefined) {
      const session = live(this.sessions.get(sessionId))
      if (session !== undefined) return session
    }
    return identity.jti === undefined ? undefined : live(this.jtis.get(identity.jti))
  }

  /** Revocations in force (for tests and diagnostics). */
  get size (): number {
    return this.users.size + this.sessions.size + this.jtis.size
  }

  /** Stops re-reading. Safe to call twice. */
  close (): void {
    clearInterval(this.timer)
    this.timer = undefined
  }

  private async reload (): Promise<void> {
    const now = Date.now()
    const stored = await this.store.revocations(now)
    for (const map of [this.users, this.sessions, this.jtis]) {
      for (const [key, revocation] of map) if (revocation.expiresAt <= now) map.delete(key)
    }
    for (const revocation of stored) this.add(revocation)
  }

  private add (revocation: Revocation): void {
    const map = revocation.kind === 'user' ? this.users : revocation.kind === 'session' ? this.sessions : this.jtis
    const known = map.get(revocation.value)
    map.set(revocation.value, known === undefined ? revocation : {
      ...revocation,
      revokedAt: Math.max(known.revokedAt, revocation.revokedAt),
      expiresAt: Math.max(known.expiresAt, revocation.expiresAt)
    })
  }
}
