import { asSmall } from '../session/clock.js'
import type { LeaveReason, PresenceEntry, PresenceStatus, SettableStatus } from '../../shared/tandem.js'

/** A change to a document's presence, as broadcast to Tandem clients. */
export type PresenceChange =
  | { event: 'joined' | 'updated', user: PresenceEntry }
  | { event: 'left', user: PresenceEntry, reason: LeaveReason }

/** Who a connection belongs to. */
export interface PresenceIdentity {
  userId: string
  name: string
  color: string
}

/**
 * Bits of `PresenceConnection.state`: one small integer where three booleans took three fields.
 * AWAY is set by the client and sticks until it sets 'active' again.
 */
const AWAY = 1
const IDLE = 2
const RECONNECTING = 4
/** Disconnected: the handle does nothing any more. */
const GONE = 8

/**
 * A connection of the table, kept by its caller (a field of the session, where a map keyed by
 * connection id cost an entry per connection). Opaque: only the table reads it.
 */
export interface PresenceConnection {
  readonly user: PresenceUser
  state: number
  /** Since the table's origin, as PresenceUser.joinedAt. */
  lastActiveAt: number
  /** The user's next connection (see PresenceUser.first). */
  next: PresenceConnection | undefined
}

/** A user of the table (see PresenceConnection). */
export interface PresenceUser {
  identity: PresenceIdentity
  /**
   * In ms since the table's origin (its first `now()`): small integers, where a Date.now() time
   * is a 16-byte heap number in every entry. Entries (`entry`) carry `now()`'s times.
   */
  joinedAt: number
  /**
   * The user's connections, as a list through `PresenceConnection.next` (most users have one:
   * a Set each would cost more than the rest of the entry).
   */
  first: PresenceConnection | undefined
  connections: number
  /** What was last announced, to announce only real changes. */
  announced: PresenceEntry | undefined
}

/** Status order: the entry of a user shows the liveliest of its connections. */
const RANK: Record<PresenceStatus, number> = { active: 3, idle: 2, away: 1, reconnecting: 0 }

/**
 * The presence of one document, by connection handle: one entry per user, made of that user's
 * connections (tabs). PresenceBoard (board.ts) is the same keyed by connection id. It holds
 * state and reports changes through `onChange`; it knows nothing of sockets.
 *
 * A connection turns `idle` after `idleAfterMs` without activity (edits, awareness changes,
 * status changes) and back to `active` on the next activity; `away` is set by the client and
 * kept until it sets `active`; `reconnecting` lasts from a drop until resume or the end of the
 * grace. `updated` is announced when status, connections, name or color change (not for
 * `lastActiveAt` alone, which would mean one event per keystroke).
 */
export class PresenceTable {
  private readonly users = new Map<string, PresenceUser>()
  /** One timer for the table, due when the next connection turns idle (not one per connection). */
  private idleTimer: ReturnType<typeof setTimeout> | undefined
  private idleDueAt = Infinity
  private readonly origin: number

  constructor (
    private readonly idleAfterMs: number,
    private readonly onChange: (change: PresenceChange) => void,
    private readonly now: () => number = Date.now
  ) {
    this.origin = now()
  }

  /** Now, in ms since the table's origin. */
  private at (): number {
    return asSmall(this.now() - this.origin)
  }

  /**
   * Adds a connection of `identity`: `joined` for a new user, else `updated`. `joinedAt`: when
   * the user joined, if earlier (a session resumed from another instance keeps its place).
   */
  connect (identity: PresenceIdentity, joinedAt?: number): PresenceConnection {
    const now = this.at()
    if (joinedAt !== undefined) joinedAt = asSmall(joinedAt - this.origin)
    let user = this.users.get(identity.userId)
    if (user === undefined) {
      user = { identity, joinedAt: Math.min(now, joinedAt ?? now), first: undefined, connections: 0, announced: undefined }
      this.users.set(identity.userId, user)
    } else {
      user.joinedAt = Math.min(user.joinedAt, joinedAt ?? now)
      // the newest connection's name and color win: that is what the user chose last
      user.identity = identity
    }
    const connection: PresenceConnection = { user, state: 0, lastActiveAt: now, next: user.first }
    user.first = connection
    user.connections++
    this.armIdle(connection)
    this.announce(user)
    return connection
  }

  /** A connection's user has a new name or color (a refreshed token): `updated` when it shows. */
  rename (connection: PresenceConnection, identity: PresenceIdentity): void {
    const { user } = connection
    if (!this.holds(connection) || identity.userId !== user.identity.userId) return
    const changed = identity.name !== user.identity.name || identity.color !== user.identity.color
    user.identity = identity
    // a refreshed token that names the user as before changes nothing anyone sees: announcing it
    // would send every member of the document an `updated` per refresh (5,000 refreshes in a
    // second held the other documents' fan-out at 250 ms)
    if (changed) this.announce(user)
  }

  /** Removes a connection: `left` with `reason` when it was the user's last, else `updated`. */
  disconnect (connection: PresenceConnection, reason: LeaveReason): void {
    if (!this.holds(connection)) return
    connection.state |= GONE
    const { user } = connection
    unlink(user, connection)
    if (user.connections > 0) return this.announce(user)
    this.users.delete(user.identity.userId)
    // as last seen: with no connection left there is no status to compute
    const last = user.announced ?? this.entry(user)
    this.onChange({ event: 'left', user: { ...last, connections: 0 }, reason })
  }

  /** The connection dropped and may resume: it shows `reconnecting`. */
  suspend (connection: PresenceConnection): void {
    if (!this.holds(connection)) return
    connection.state |= RECONNECTING
    this.changed(connection)
  }

  /** The connection resumed within the grace. */
  resume (connection: PresenceConnection): void {
    if (!this.holds(connection) || (connection.state & RECONNECTING) === 0) return
    connection.state &= ~RECONNECTING
    this.touch(connection)
    this.changed(connection)
  }

  /** The connection did something: an edit or an awareness change. */
  activity (connection: PresenceConnection): void {
    if (!this.holds(connection) || (connection.state & RECONNECTING) !== 0) return
    const wasIdle = (connection.state & IDLE) !== 0
    this.touch(connection)
    if (wasIdle) this.changed(connection)
  }

  /** The client set its status (`away`, or `active` again). */
  setStatus (connection: PresenceConnection, status: SettableStatus): void {
    if (!this.holds(connection)) return
    connection.state = status === 'away' ? connection.state | AWAY : connection.state & ~AWAY
    this.touch(connection)
    this.changed(connection)
  }

  /** The entry of a user, if present. */
  get (userId: string): PresenceEntry | undefined {
    const user = this.users.get(userId)
    return user === undefined ? undefined : this.entry(user)
  }

  /** Every entry, in order of joining. */
  list (): PresenceEntry[] {
    return [...this.users.values()].map(user => this.entry(user))
  }

  /** Number of users. */
  get size (): number {
    return this.users.size
  }

  /** Clears every timer; the table announces nothing more. */
  close (): void {
    clearTimeout(this.idleTimer)
    this.idleTimer = undefined
    this.users.clear()
  }

  private touch (connection: PresenceConnection): void {
    connection.lastActiveAt = this.at()
    connection.state &= ~IDLE
    this.armIdle(connection)
  }

  /**
   * Makes sure the table's timer is due by the time `connection` would turn idle. Activity only
   * stamps `lastActiveAt`, so a burst of keystrokes costs no timer churn; the sweep re-arms for
   * whatever connection is next.
   */
  private armIdle (connection: PresenceConnection): void {
    if ((connection.state & (RECONNECTING | IDLE)) !== 0) return
    const dueAt = connection.lastActiveAt + this.idleAfterMs
    if (this.idleTimer !== undefined && this.idleDueAt <= dueAt) return
    clearTimeout(this.idleTimer)
    this.idleDueAt = dueAt
    this.idleTimer = setTimeout(this.sweep, Math.max(0, dueAt - this.at()))
    this.idleTimer.unref?.()
  }

  /** Turns quiet connections idle and arms the timer for the next one. */
  private readonly sweep = (): void => {
    this.idleTimer = undefined
    this.idleDueAt = Infinity
    const now = this.at()
    let next: PresenceConnection | undefined
    for (const user of this.users.values()) {
      for (let connection = user.first; connection !== undefined; connection = connection.next) {
        if ((connection.state & (RECONNECTING | IDLE)) !== 0) continue
        if (now - connection.lastActiveAt >= this.idleAfterMs) {
          connection.state |= IDLE
          this.changed(connection)
        } else if (next === undefined || connection.lastActiveAt < next.lastActiveAt) {
          next = connection
        }
      }
    }
    if (next !== undefined) this.armIdle(next)
  }

  /** True while the table has the connection (live or reconnecting; not after close). */
  holds (connection: PresenceConnection): boolean {
    return (connection.state & GONE) === 0 && this.users.get(connection.user.identity.userId) === connection.user
  }

  private changed (connection: PresenceConnection): void {
    this.announce(connection.user)
  }

  private announce (user: PresenceUser): void {
    const entry = this.entry(user)
    const before = user.announced
    user.announced = entry
    if (before === undefined) return this.onChange({ event: 'joined', user: entry })
    if (before.status !== entry.status || before.connections !== entry.connections ||
        before.name !== entry.name || before.color !== entry.color) {
      this.onChange({ event: 'updated', user: entry })
    }
  }

  private entry (user: PresenceUser): PresenceEntry {
    let status: PresenceStatus = 'reconnecting'
    let lastActiveAt = user.joinedAt
    for (let connection = user.first; connection !== undefined; connection = connection.next) {
      const own = ownStatus(connection.state)
      if (RANK[own] > RANK[status]) status = own
      lastActiveAt = Math.max(lastActiveAt, connection.lastActiveAt)
    }
    return {
      userId: user.identity.userId,
      name: user.identity.name,
      color: user.identity.color,
      status,
      connections: user.connections,
      joinedAt: user.joinedAt + this.origin,
      lastActiveAt: lastActiveAt + this.origin
    }
  }
}

function ownStatus (state: number): PresenceStatus {
  return (state & RECONNECTING) !== 0 ? 'reconnecting' : (state & AWAY) !== 0 ? 'away' : (state & IDLE) !== 0 ? 'idle' : 'active'
}

/** Takes `connection` out of its user's list. */
function unlink (user: PresenceUser, connection: PresenceConnection): void {
  if (user.first === connection) {
    user.first = connection.next
  } else {
    let before = user.first
    while (before !== undefined && before.next !== connection) before = before.next
    if (before === undefined) return
    before.next = connection.next
  }
  connection.next = undefined
  user.connections--
}
