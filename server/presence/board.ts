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

interface Connection {
  userId: string
  /** Set by the client: 'away' sticks until it sets 'active' again. */
  chosen: SettableStatus
  idle: boolean
  reconnecting: boolean
  /** Since the board's origin, as User.joinedAt. */
  lastActiveAt: number
  /** The user's next connection (see User.first). */
  next: Connection | undefined
}

interface User {
  identity: PresenceIdentity
  /**
   * In ms since the board's origin (its first `now()`): small integers, where a Date.now() time
   * is a 16-byte heap number in every entry. Entries (`entry`) carry `now()`'s times.
   */
  joinedAt: number
  /**
   * The user's connections, as a list through `Connection.next` (most users have one: a Set
   * each would cost more than the rest of the entry).
   */
  first: Connection | undefined
  connections: number
  /** What was last announced, to announce only real changes. */
  announced: PresenceEntry | undefined
}

/** Status order: the entry of a user shows the liveliest of its connections. */
const RANK: Record<PresenceStatus, number> = { active: 3, idle: 2, away: 1, reconnecting: 0 }

/**
 * The presence of one document: one entry per user, made of that user's connections (tabs).
 * It holds state and reports changes through `onChange`; it knows nothing of sockets, so the
 * same board can later be fed by a bus from other instances.
 *
 * A connection turns `idle` after `idleAfterMs` without activity (edits, awareness changes,
 * status changes) and back to `active` on the next activity; `away` is set by the client and
 * kept until it sets `active`; `reconnecting` lasts from a drop until resume or the end of the
 * grace. `updated` is announced when status, connections, name or color change (not for
 * `lastActiveAt` alone, which would mean one event per keystroke).
 */
export class PresenceBoard {
  private readonly users = new Map<string, User>()
  private readonly connections = new Map<string, Connection>()
  /** One timer for the board, due when the next connection turns idle (not one per connection). */
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

  /** Now, in ms since the board's origin. */
  private at (): number {
    return asSmall(this.now() - this.origin)
  }

  /**
   * Adds a connection of `identity`: `joined` for a new user, else `updated`. `joinedAt`: when
   * the user joined, if earlier (a session resumed from another instance keeps its place).
   */
  connect (connectionId: string, identity: PresenceIdentity, joinedAt?: number): void {
    if (this.connections.has(connectionId)) return
    const now = this.at()
    if (joinedAt !== undefined) joinedAt = asSmall(joinedAt - this.origin)
    const connection: Connection = { userId: identity.userId, chosen: 'active', idle: false, reconnecting: false, lastActiveAt: now, next: undefined }
    this.connections.set(connectionId, connection)
    let user = this.users.get(identity.userId)
    if (user === undefined) {
      user = { identity, joinedAt: Math.min(now, joinedAt ?? now), first: undefined, connections: 0, announced: undefined }
      this.users.set(identity.userId, user)
    } else {
      user.joinedAt = Math.min(user.joinedAt, joinedAt ?? now)
      // the newest connection's name and color win: that is what the user chose last
      user.identity = identity
    }
    connection.next = user.first
    user.first = connection
    user.connections++
    this.armIdle(connection)
    this.announce(user)
  }

  /** A connection's user has a new name or color (a refreshed token): `updated` when it shows. */
  rename (connectionId: string, identity: PresenceIdentity): void {
    const connection = this.connections.get(connectionId)
    const user = connection === undefined ? undefined : this.users.get(connection.userId)
    if (user === undefined || identity.userId !== user.identity.userId) return
    const changed = identity.name !== user.identity.name || identity.color !== user.identity.color
    user.identity = identity
    // a refreshed token that names the user as before changes nothing anyone sees: announcing it
    // would send every member of the document an `updated` per refresh (5,000 refreshes in a
    // second held the other documents' fan-out at 250 ms)
    if (changed) this.announce(user)
  }

  /** Removes a connection: `left` with `reason` when it was the user's last, else `updated`. */
  disconnect (connectionId: string, reason: LeaveReason): void {
    const connection = this.connections.get(connectionId)
    if (connection === undefined) return
    this.connections.delete(connectionId)
    const user = this.users.get(connection.userId)
    if (user === undefined) return
    unlink(user, connection)
    if (user.connections > 0) return this.announce(user)
    this.users.delete(connection.userId)
    // as last seen: with no connection left there is no status to compute
    const last = user.announced ?? this.entry(user)
    this.onChange({ event: 'left', user: { ...last, connections: 0 }, reason })
  }

  /** The connection dropped and may resume: it shows `reconnecting`. */
  suspend (connectionId: string): void {
    const connection = this.connections.get(connectionId)
    if (connection === undefined) return
    connection.reconnecting = true
    this.changed(connection)
  }

  /** The connection resumed within the grace. */
  resume (connectionId: string): void {
    const connection = this.connections.get(connectionId)
    if (connection === undefined || !connection.reconnecting) return
    connection.reconnecting = false
    this.touch(connectionId)
    this.changed(connection)
  }

  /** The connection did something: an edit or an awareness change. */
  activity (connectionId: string): void {
    const connection = this.connections.get(connectionId)
    if (connection === undefined || connection.reconnecting) return
    const wasIdle = connection.idle
    this.touch(connectionId)
    if (wasIdle) this.changed(connection)
  }

  /** The client set its status (`away`, or `active` again). */
  setStatus (connectionId: string, status: SettableStatus): void {
    const connection = this.connections.get(connectionId)
    if (connection === undefined) return
    connection.chosen = status
    this.touch(connectionId)
    this.changed(connection)
  }

  /** True while the board has the connection (live or reconnecting). */
  has (connectionId: string): boolean {
    return this.connections.has(connectionId)
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

  /** Clears every timer; the board announces nothing more. */
  close (): void {
    clearTimeout(this.idleTimer)
    this.idleTimer = undefined
    this.connections.clear()
    this.users.clear()
  }

  private touch (connectionId: string): void {
    const connection = this.connections.get(connectionId)
    if (connection === undefined) return
    connection.lastActiveAt = this.at()
    connection.idle = false
    this.armIdle(connection)
  }

  /**
   * Makes sure the board's timer is due by the time `connection` would turn idle. Activity only
   * stamps `lastActiveAt`, so a burst of keystrokes costs no timer churn; the sweep re-arms for
   * whatever connection is next.
   */
  private armIdle (connection: Connection): void {
    if (connection.reconnecting || connection.idle) return
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
    let next: Connection | undefined
    for (const connection of this.connections.values()) {
      if (connection.reconnecting || connection.idle) continue
      if (now - connection.lastActiveAt >= this.idleAfterMs) {
        connection.idle = true
        this.changed(connection)
      } else if (next === undefined || connection.lastActiveAt < next.lastActiveAt) {
        next = connection
      }
    }
    if (next !== undefined) this.armIdle(next)
  }

  private changed (connection: Connection): void {
    const user = this.users.get(connection.userId)
    if (user !== undefined) this.announce(user)
  }

  private announce (user: User): void {
    const entry = this.entry(user)
    const before = user.announced
    user.announced = entry
    if (before === undefined) return this.onChange({ event: 'joined', user: entry })
    if (before.status !== entry.status || before.connections !== entry.connections ||
        before.name !== entry.name || before.color !== entry.color) {
      this.onChange({ event: 'updated', user: entry })
    }
  }

  private entry (user: User): PresenceEntry {
    let status: PresenceStatus = 'reconnecting'
    let lastActiveAt = user.joinedAt
    for (let connection = user.first; connection !== undefined; connection = connection.next) {
      const own: PresenceStatus = connection.reconnecting ? 'reconnecting' : connection.chosen === 'away' ? 'away' : connection.idle ? 'idle' : 'active'
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

/** Takes `connection` out of its user's list. */
function unlink (user: User, connection: Connection): void {
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
