import type { Logger } from 'pino'
import { writeTandem } from '../../shared/messages.js'
import { ERRORS, TandemError, isTandemError } from '../../shared/errors.js'
import { mayOpen, type AuthRequest, type Identity } from '../auth/auth.js'
import type { EndReason } from './session.js'
import type { Revocation } from '../store/store.js'
import type { Revocations, RevocationTarget } from '../auth/revocations.js'
import type { HeldSession } from './resume.js'
import { Slices } from './slices.js'
import { asSmall, ticks } from './clock.js'

/**
 * What live-session policy keeps of a session, in fields of the session itself (Session declares
 * them; only this module reads or writes them): an object and a map entry each would cost every
 * idle connection about 150 bytes. `add` sets them.
 */
export interface LiveFields {
  /**
   * What the session keeps of its upgrade request, made into an AuthRequest again for each check
   * (see requestOf): the token it holds now (refreshes replace it), the query as its string ('' when
   * empty), the headers without the handshake's; the document and address are the session's.
   */
  liveToken: string | undefined
  liveSearch: string
  liveHeaders: AuthRequest['headers']
  /** Last edit or awareness change, in ticks (clock.ts): a small integer, where a Date.now() time is a heap number. */
  lastActiveAt: number
  /** The slot of the wheel the session sits in, or -1. */
  liveSlot: number
  /** WARNED, REFRESHING and ENDING, and the generation in steps of GENERATION: one small integer. */
  liveFlags: number
}

/** What live-session policy needs of a session. */
export interface LiveSession extends LiveFields {
  readonly id: string
  readonly doc: { readonly name: string, readonly hasPending: boolean, whenStored (): Promise<void> }
  identity: Identity
  readonly tandem: boolean
  /** The client's address (the request's remoteAddress). */
  readonly address: string
  send (frame: Uint8Array): void
  close (code: number, reason: EndReason, message?: string): void
  isEnded (): boolean
}

/** The client was told its token expires soon (once per token). */
const WARNED = 1
/** A client's refresh is being checked: a second one is refused (the client sends one at a time). */
const REFRESHING = 2
/** This policy is ending the session. */
const ENDING = 4
/**
 * The generation grows by this with every credential applied: a check that started before one was
 * applied is stale (the flags' bits below it; about 2^28 refreshes before bitwise arithmetic wraps).
 */
const GENERATION = 8

/** What live-session policy asks of its server. */
export interface LiveSessionsHooks {
  /** Authenticates again (the server's authenticator and checks; this policy applies the auth timeout). */
  authenticate (request: AuthRequest): Promise<Identity>
  /**
   * False when `authenticate` never reads the request's headers (the built-in authenticators: a
   * token, the query): sessions then keep none, where a browser's (cookies, user agent and the
   * like) can be most of an idle connection's memory. Default true (an embedder's hook may).
   */
  readonly readsHeaders?: boolean
  /** Ends the held sessions (within their reconnect grace) `covered` picks; returns how many. */
  revokeHeld (covered: (held: HeldSession) => boolean): number
  /** A session is being ended by this policy: it may not resume (its pending edits store meanwhile). */
  ending (session: LiveSession): void
  /** A session's identity changed (refresh or recheck): presence shows the new name and color. */
  changed (session: LiveSession, before: Identity): void
  /** The sessions added and not removed (and maybe some not yet added, whose fields are as new). */
  sessions (): Iterable<LiveSession>
}

/** How revocations and rechecks reach the other instances (the cluster); absent on one instance. */
export interface LivePeers {
  publishRevocation (revocation: Revocation): void
  publishRecheck (doc: string): void
}

/** Options live-session policy reads. */
export interface LiveSessionsOptions {
  /** 0: no idle timeout. */
  sessionIdleTimeoutMs: number
  /** How long a check may take (0: no limit); past it, the session keeps its credentials. */
  authTimeoutMs: number
}

/** A check in progress, failed by the sweep past its deadline: no timer per check. */
interface Pending {
  deadline: number
  fail (err: Error): void
}

/** The errors this policy closes sessions with (each has a close code in the registry). */
type ClosingError = 'TANDEM_ERR_TOKEN_EXPIRED' | 'TANDEM_ERR_REVOKED' | 'TANDEM_ERR_UNAUTHENTICATED' | 'TANDEM_ERR_FORBIDDEN' | 'TANDEM_ERR_IDLE_TIMEOUT' | 'TANDEM_ERR_MALFORMED_MESSAGE'

/** Resolution of the expiry wheel: a deadline is met within this long. */
const SLOT_MS = 250
/** The most a Tandem client is warned ahead of its token's expiry, before the random spread (a quarter more). */
const MAX_WARNING_MS = 60_000
/** The most an ending session waits for its pending edits to be stored before its socket closes. */
const STORE_WAIT_MS = 2_000

/**
 * The rules of a session's lifetime after the upgrade: its credentials expire (`expiresAt`),
 * may be refreshed in band, revoked, or checked again, and an inactive session ends after
 * `sessionIdleTimeoutMs`. Deadlines sit in one wheel of 250 ms slots swept by one timer, which
 * also sweeps for idle sessions: no timer per session, whatever their number.
 *
 * Revocations are made here (`revoke`: stored, applied to the live and held sessions here, told
 * to the peers) and heard from peers; a recheck runs here and on every peer.
 *
 * A session this policy ends stores its pending edits first (bounded), then closes: 4401 for
 * expiry, revocation or credentials refused, 4403 for a document no longer allowed, 4408 idle.
 */
export class LiveSessions {
  private readonly wheel = new Map<number, Set<LiveSession>>()
  /**
   * Slots are counted from this one, the policy's first: small integers in every session's
   * liveSlot, where slots since 1970 (about 7e9) are heap numbers.
   */
  private readonly origin = Math.floor(Date.now() / SLOT_MS)
  private lastSlot = 0
  private lastIdleSweep = Date.now()
  /** Checked credentials wait here to be applied, in slices of at most 1 ms. */
  private readonly slices = new Slices(1)
  private closed = false
  private readonly pending = new Set<Pending>()
  private readonly idleSweepMs: number
  private readonly timer: NodeJS.Timeout

  constructor (
    private readonly options: LiveSessionsOptions,
    private readonly revocations: Revocations,
    private readonly hooks: LiveSessionsHooks,
    private readonly logger: Logger,
    private readonly peers?: LivePeers
  ) {
    const idle = options.sessionIdleTimeoutMs
    this.idleSweepMs = idle > 0 ? Math.min(1_000, Math.max(20, Math.floor(idle / 4))) : Infinity
    this.timer = setInterval(() => this.tick(), Math.min(SLOT_MS, this.idleSweepMs, Math.max(20, options.authTimeoutMs || Infinity)))
    this.timer.unref()
  }

  /** A session started with the credentials of `request`. */
  add (session: LiveSession, request: AuthRequest): void {
    const { token, query, headers } = request
    const search = query.size === 0 ? '' : query.toString()
    session.liveToken = sharing(token, search)
    session.liveSearch = search
    // kept for the session's life (rechecks and refreshes run the authenticator on it): its
    // headers without the WebSocket handshake's, which say nothing about who connects
    session.liveHeaders = this.hooks.readsHeaders === false ? NO_HEADERS : withoutHandshake(headers)
    session.lastActiveAt = ticks()
    session.liveSlot = -1
    session.liveFlags = 0
    this.schedule(session)
  }

  /** A session ended (for any reason). */
  remove (session: LiveSession): void {
    this.unschedule(session)
    // the fields stay (a check still running sees the session ended); the sessions no longer list it
  }

  /** The session edited or changed its awareness state. */
  active (session: LiveSession): void {
    session.lastActiveAt = ticks()
  }

  /** A Tandem client sent a new token on its connection. */
  refresh (session: LiveSession, token: string): void {
    if (this.closed || (session.liveFlags & ENDING) !== 0 || session.isEnded()) return
    if ((session.liveFlags & REFRESHING) !== 0) {
      // the client sends one at a time; a flood would run the authenticator for nothing
      this.end(session, 'error', 'TANDEM_ERR_MALFORMED_MESSAGE')
      return
    }
    session.liveFlags |= REFRESHING
    void this.check(session, token).finally(() => { session.liveFlags &= ~REFRESHING })
  }

  /** Authenticates every session of the document again, with the credentials it holds now. */
  async recheck (doc: string): Promise<number> {
    const checks = []
    if (!this.closed) {
      for (const session of this.hooks.sessions()) {
        if (session.doc.name !== doc || (session.liveFlags & ENDING) !== 0 || session.isEnded()) continue
        checks.push(this.check(session, session.liveToken))
      }
    }
    await Promise.all(checks)
    return checks.length
  }

  /**
   * Revokes a user's sessions and older tokens, a session, or a token, on every instance: stored
   * first, then in force here, then told to the peers. Returns it and the sessions ended here.
   */
  async revoke (target: RevocationTarget): Promise<{ revocation: Revocation, sessions: number }> {
    const revocation = await this.revocations.revoke(target)
    const sessions = this.apply(revocation)
    this.peers?.publishRevocation(revocation)
    return { revocation, sessions }
  }

  /** Authenticates every session of a document again, here and on every peer; returns the count here. */
  recheckEverywhere (doc: string): Promise<number> {
    this.peers?.publishRecheck(doc)
    return this.recheck(doc)
  }

  /** A peer's revocation: in force here too, and applied to this instance's sessions. */
  peerRevoked (revocation: Revocation): void {
    this.revocations.received(revocation)
    this.apply(revocation)
  }

  /** A peer asks for a recheck of a document. */
  peerRecheck (doc: string): void {
    this.recheck(doc).catch((err: unknown) => this.logger.error({ err, doc }, 'recheck failed'))
  }

  /** Ends the live and held sessions of this instance that the revocations cover; returns how many. */
  private apply (revocation: Revocation): number {
    let ended = this.hooks.revokeHeld(held => this.revocations.covering(held, held.sessionId) !== undefined)
    // a copy: ending a session removes it from the sessions
    for (const session of this.closed ? [] : [...this.hooks.sessions()]) {
      if ((session.liveFlags & ENDING) !== 0 || session.isEnded() || this.revocations.covering(session.identity, session.id) === undefined) continue
      this.end(session, 'revoked', 'TANDEM_ERR_REVOKED')
      ended++
    }
    if (ended > 0) this.logger.info({ kind: revocation.kind, sessions: ended }, 'revoked sessions ended')
    return ended
  }

  /** Stops the sweep. Safe to call twice. */
  close (): void {
    clearInterval(this.timer)
    this.pending.clear()
    this.closed = true
    // what waits is dropped (closed), and its checks settle
    this.slices.flush()
    this.wheel.clear()
  }

  /** Runs the authenticator on the session's request with `token` and applies the answer to the session. */
  private async check (session: LiveSession, token: string | undefined): Promise<void> {
    const generation = generationOf(session)
    let identity: Identity
    try {
      identity = await this.authenticate(requestOf(session, token))
    } catch (err) {
      // newer credentials were applied meanwhile: this answer is about old ones
      if ((session.liveFlags & ENDING) !== 0 || session.isEnded() || generationOf(session) !== generation) return
      if (isTandemError(err, 'TANDEM_ERR_FORBIDDEN')) return this.end(session, 'revoked', 'TANDEM_ERR_FORBIDDEN')
      if (isTandemError(err, 'TANDEM_ERR_AUTH_TIMEOUT') || !isTandemError(err)) {
        // the authenticator failed, not the credentials: keep the session until its expiry
        this.logger.warn({ err, session: session.id }, 'authentication check failed; the session keeps its credentials')
        return
      }
      return this.end(session, 'revoked', err.code === 'TANDEM_ERR_REVOKED' ? err.code : 'TANDEM_ERR_UNAUTHENTICATED')
    }
    // applied in a slice: a burst of refreshes (thousands of tokens sharing an exp) then leaves
    // the event loop to the updates between slices; a refresh has until its exp
    await new Promise<void>(resolve => this.slices.run(() => {
      this.applyChecked(session, generation, token, identity)
      resolve()
    }))
  }

  /** The hook's answer, or TANDEM_ERR_AUTH_TIMEOUT once the sweep finds it past the auth timeout. */
  private authenticate (request: AuthRequest): Promise<Identity> {
    const { authTimeoutMs } = this.options
    if (authTimeoutMs <= 0) return this.hooks.authenticate(request)
    return new Promise((resolve, reject) => {
      const pending: Pending = { deadline: Date.now() + authTimeoutMs, fail: reject }
      this.pending.add(pending)
      this.hooks.authenticate(request).then(identity => {
        this.pending.delete(pending)
        resolve(identity)
      }, (err: unknown) => {
        this.pending.delete(pending)
        reject(err)
      })
    })
  }

  /** Applies credentials `check` found good, unless newer ones were applied meanwhile. */
  private applyChecked (session: LiveSession, generation: number, token: string | undefined, identity: Identity): void {
    if (this.closed) return
    if ((session.liveFlags & ENDING) !== 0 || session.isEnded() || generationOf(session) !== generation) return
    const before = session.identity
    if (identity.userId !== before.userId) return this.end(session, 'revoked', 'TANDEM_ERR_UNAUTHENTICATED')
    if (!mayOpen(identity, session.doc.name)) return this.end(session, 'revoked', 'TANDEM_ERR_FORBIDDEN')
    if (this.revocations.covering(identity, session.id) !== undefined) return this.end(session, 'revoked', 'TANDEM_ERR_REVOKED')
    if (identity.expiresAt !== undefined && identity.expiresAt <= Date.now()) {
      return this.end(session, 'expired', 'TANDEM_ERR_TOKEN_EXPIRED')
    }
    session.identity = identity
    session.liveToken = token
    // the next generation, not warned
    session.liveFlags = (session.liveFlags & ~WARNED) + GENERATION
    this.schedule(session)
    if (session.tandem) {
      session.send(writeTandem({ type: 'refreshed', expiresAt: identity.expiresAt ?? 0, access: identity.access, name: identity.name, color: identity.color }))
    }
    // a token naming the user as before changes nothing presence shows
    if (identity.name !== before.name || identity.color !== before.color) this.hooks.changed(session, before)
  }

  /** Stores the session's pending edits (bounded), then closes it with the error's close code. */
  private end (session: LiveSession, reason: EndReason, errorCode: ClosingError): void {
    const code = ERRORS[errorCode].closeCode
    if ((session.liveFlags & ENDING) !== 0) return
    session.liveFlags |= ENDING
    this.unschedule(session)
    this.hooks.ending(session)
    const close = (): void => { if (!session.isEnded()) session.close(code, reason, errorCode) }
    if (!session.doc.hasPending) return close()
    let timer: NodeJS.Timeout | undefined
    Promise.race([
      session.doc.whenStored(),
      new Promise<void>(resolve => { timer = setTimeout(resolve, STORE_WAIT_MS) })
    ]).catch(() => {}).finally(() => {
      clearTimeout(timer)
      close()
    })
  }

  /** Puts the session in the slot of its next deadline: the warning, else the expiry. */
  private schedule (session: LiveSession): void {
    this.unschedule(session)
    const { expiresAt } = session.identity
    if (expiresAt === undefined) return
    let due = expiresAt
    if (session.tandem && (session.liveFlags & WARNED) === 0) {
      // half the time left, at most a minute ahead, and up to a quarter of that earlier, at
      // random: tokens sharing an exp are warned over 15 s, not all in the same second (their
      // refreshes would be a burst). A 2 s token is warned after 0.75 to 1 s.
      const lead = Math.min(MAX_WARNING_MS, Math.max(0, (expiresAt - Date.now()) / 2))
      due = expiresAt - lead * (1 + Math.random() / 4)
    }
    const slot = asSmall(Math.max(this.lastSlot + 1, Math.ceil(due / SLOT_MS) - this.origin))
    let set = this.wheel.get(slot)
    if (set === undefined) this.wheel.set(slot, set = new Set())
    set.add(session)
    session.liveSlot = slot
  }

  private unschedule (session: LiveSession): void {
    if (session.liveSlot < 0) return
    const set = this.wheel.get(session.liveSlot)
    set?.delete(session)
    if (set?.size === 0) this.wheel.delete(session.liveSlot)
    session.liveSlot = -1
  }

  private tick (): void {
    const now = Date.now()
    const current = Math.floor(now / SLOT_MS) - this.origin
    for (let slot = this.lastSlot + 1; slot <= current; slot++) {
      // first: what is scheduled while this slot runs goes to a later one
      this.lastSlot = slot
      const due = this.wheel.get(slot)
      if (due === undefined) continue
      this.wheel.delete(slot)
      for (const session of due) {
        session.liveSlot = -1
        this.deadline(session, now)
      }
    }
    for (const pending of this.pending) {
      if (pending.deadline > now) continue
      this.pending.delete(pending)
      pending.fail(new TandemError('TANDEM_ERR_AUTH_TIMEOUT', `no answer within ${this.options.authTimeoutMs} ms`))
    }
    if (now - this.lastIdleSweep >= this.idleSweepMs) {
      this.lastIdleSweep = now
      this.sweepIdle(ticks())
    }
  }

  private deadline (session: LiveSession, now: number): void {
    const { expiresAt } = session.identity
    if ((session.liveFlags & ENDING) !== 0 || session.isEnded() || expiresAt === undefined) return
    if (expiresAt <= now) {
      this.end(session, 'expired', 'TANDEM_ERR_TOKEN_EXPIRED')
      return
    }
    if ((session.liveFlags & WARNED) === 0 && session.tandem) {
      session.liveFlags |= WARNED
      session.send(writeTandem({ type: 'token-expiring', expiresAt }))
    }
    this.schedule(session)
  }

  /** `now` in ticks, as the sessions' lastActiveAt. */
  private sweepIdle (now: number): void {
    if (this.closed) return
    const limit = this.options.sessionIdleTimeoutMs
    // a copy: ending a session removes it from the sessions
    for (const session of [...this.hooks.sessions()]) {
      if ((session.liveFlags & ENDING) === 0 && !session.isEnded() && now - session.lastActiveAt >= limit) {
        this.end(session, 'idle', 'TANDEM_ERR_IDLE_TIMEOUT')
      }
    }
  }
}

/** The generation of the session's credentials (see GENERATION). */
function generationOf (session: LiveSession): number {
  return session.liveFlags >> 3
}

/** The request an authenticator sees, from what the state keeps: a fresh URLSearchParams each time. */
function requestOf (session: LiveSession, token: string | undefined): AuthRequest {
  return { document: session.doc.name, token, query: new URLSearchParams(session.liveSearch), headers: session.liveHeaders, remoteAddress: session.address }
}

/**
 * `token`, as a slice of `search` when the query carries it as it is (a JWT needs no escaping): V8
 * then keeps the token's characters once, where a token in the query was kept twice (a few
 * hundred bytes of every authenticated idle connection). V8 slices strings of 13 characters and
 * more without copying them.
 */
function sharing (token: string | undefined, search: string): string | undefined {
  if (token === undefined || token.length < 13) return token
  const at = search.indexOf(token)
  return at < 0 ? token : search.slice(at, at + token.length)
}

/** What sessions keep of their headers when the authenticator reads none. */
export const NO_HEADERS: AuthRequest['headers'] = Object.freeze({})

/** Headers of the WebSocket handshake itself: no authenticator needs them after the upgrade. */
const HANDSHAKE_HEADERS = new Set(['connection', 'upgrade', 'sec-websocket-key', 'sec-websocket-version', 'sec-websocket-extensions'])

/** `headers` without the handshake's (a new object; the request's own is left as it is). */
function withoutHandshake (headers: AuthRequest['headers']): AuthRequest['headers'] {
  const kept: Record<string, string | string[] | undefined> = {}
  for (const name in headers) if (!HANDSHAKE_HEADERS.has(name)) kept[name] = headers[name]
  return kept
}
