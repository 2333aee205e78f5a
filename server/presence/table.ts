import { asSmall } from '../session/clock.js'
import type { LeaveReason, PresenceEntry, PresenceStatus, SettableStatus } from '../../shared/tandem.js'

/** A change to a document's presence, as broadcast to Tandem clients. */
export type PresenceChange =
  | { event: 'joined' | 'updated', user: PresenceEntry }
  | { event: 'left', user: PresenceEntry, reason: LeaveReason }

/**
 * Told of each change; `shown`: the user's entry as announced (for `left`, as last announced
 * before it: `change.user` has the times of the last look at the user, announced or not).
 */
export type PresenceListener = (change: PresenceChange, shown: PresenceEntry) => void

/** Who a connection belongs to. */
export interface PresenceIdentity {
  userId: string
  name: string
  color: string
}

/**
 * Bits of `PresenceConnection.state`: one small integer where three booleans, an order and a
 * status took five fields. AWAY is set by the client and sticks until it sets 'active' again;
 * GONE: the connection left, its handle does nothing any more. In a user's own state, two bits
 * from SHOWN: the rank of the status last announced (see PresenceUser.shownAt). Above them
 * (state >> ORDER): the order the connections came in, which the idle sweep announces in.
 */
const AWAY = 1
const IDLE = 2
const RECONNECTING = 4
const GONE = 8
const SHOWN = 4
const ORDER = 6
/** Orders stay below, so that states stay small integers; then they are counted again. */
const MAX_ORDER = 2 ** 24

/**
 * A connection of the table, kept by its caller (a field of the session, where a map keyed by
 * connection id cost an entry per connection). Opaque: only the table reads it. A user's first
 * connection is the user itself (most users have one: a second object would cost 56 bytes);
 * its others are tabs, listed from it through `next`.
 */
export type PresenceConnection = PresenceUser | PresenceTab

interface Slot {
  /** Bits and order (see AWAY). */
  state: number
  /** Since the table's origin, as PresenceUser.joinedAt. */
  lastActiveAt: number
  /** The user's next connection. */
  next: PresenceTab | undefined
}

/** A user's second and further connections. */
export interface PresenceTab extends Slot {
  readonly user: PresenceUser
}

/** A user of the table, and its first connection (GONE once that left, the others staying). */
export interface PresenceUser extends Slot {
  identity: PresenceIdentity
  /**
   * In ms since the table's origin (its first `now()`): small integers, where a Date.now() time
   * is a 16-byte heap number in every entry. Entries (`entry`) carry `now()`'s times.
   */
  joinedAt: number
  /**
   * What was last announced, to announce only real changes, as small integers (an entry object
   * and its two heap-number times cost 112 bytes a user): its status (in `state`, see SHOWN),
   * its lastActiveAt, and lastActiveAt at the last look, announced or not (what `left` shows).
   * Connections, name, color and joinedAt change only with an announcement: the current ones
   * are the announced ones.
   */
  shownAt: number
  seenAt: number
}

/** Status order: the entry of a user shows the liveliest of its connections. */
const RANK: Record<PresenceStatus, number> = { active: 3, idle: 2, away: 1, reconnecting: 0 }
const BY_RANK: readonly PresenceStatus[] = ['reconnecting', 'away', 'idle', 'active']

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
  /** See `look`. */
  private lookedAt = 0
  /** The order of the next connection (see ORDER). */
  private nextOrder = 0

  constructor (
    private readonly idleAfterMs: number,
    private readonly onChange: PresenceListener,
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
    if (this.nextOrder === MAX_ORDER) this.reorder()
    const state = this.nextOrder++ << ORDER
    let user = this.users.get(identity.userId)
    let connection: PresenceConnection
    if (user === undefined) {
      connection = user = { state, lastActiveAt: now, next: undefined, identity, joinedAt: Math.min(now, joinedAt ?? now), shownAt: 0, seenAt: 0 }
      this.users.set(identity.userId, user)
    } else {
      user.joinedAt = Math.min(user.joinedAt, joinedAt ?? now)
      // the newest connection's name and color win: that is what the user chose last
      user.identity = identity
      connection = user.next = { state, lastActiveAt: now, next: user.next, user }
    }
    this.armIdle(connection)
    this.announce(user, connection === user ? 'joined' : 'updated')
    return connection
  }

  /** A connection's user has a new name or color (a refreshed token): `updated` when it shows. */
  rename (connection: PresenceConnection, identity: PresenceIdentity): void {
    const user = userOf(connection)
    if (!this.holds(connection) || identity.userId !== user.identity.userId) return
    const changed = identity.name !== user.identity.name || identity.color !== user.identity.color
    user.identity = identity
    // a refreshed token that names the user as before changes nothing anyone sees: announcing it
    // would send every member of the document an `updated` per refresh (5,000 refreshes in a
    // second held the other documents' fan-out at 250 ms)
    if (changed) this.announce(user, 'updated')
  }

  /** Removes a connection: `left` with `reason` when it was the user's last, else `updated`. */
  disconnect (connection: PresenceConnection, reason: LeaveReason): void {
    if (!this.holds(connection)) return
    connection.state |= GONE
    const user = userOf(connection)
    if ('user' in connection) unlink(user, connection)
    if ((user.state & GONE) === 0 || user.next !== undefined) return this.announce(user, 'updated')
    this.users.delete(user.identity.userId)
    // as last seen: with no connection left there is no status to compute (one connection was
    // announced last: every change of connections is)
    const shown = this.makeEntry(user, shownRank(user) | 1 << 2, user.shownAt)
    this.onChange({ event: 'left', user: { ...shown, lastActiveAt: user.seenAt + this.origin, connections: 0 }, reason }, shown)
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

  /** The entry of a user as last announced (a new object), if present. */
  shown (userId: string): PresenceEntry | undefined {
    const user = this.users.get(userId)
    return user === undefined ? undefined : this.shownEntry(user)
  }

  /** Every entry as last announced, in order of joining. */
  allShown (): PresenceEntry[] {
    return [...this.users.values()].map(user => this.shownEntry(user))
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
    const due: PresenceConnection[] = []
    for (const user of this.users.values()) {
      for (let connection: PresenceConnection | undefined = user; connection !== undefined; connection = connection.next) {
        if ((connection.state & (RECONNECTING | IDLE | GONE)) !== 0) continue
        if (now - connection.lastActiveAt >= this.idleAfterMs) {
          due.push(connection)
        } else if (next === undefined || connection.lastActiveAt < next.lastActiveAt) {
          next = connection
        }
      }
    }
    // in the order they came, so that the users' `updated` come in that order
    if (due.length > 1) due.sort((a, b) => a.state - b.state)
    for (const connection of due) {
      // as it is now: a listener told of one may have changed the next (touched, it armed again)
      if (!this.holds(connection) || (connection.state & (RECONNECTING | IDLE)) !== 0 || now - connection.lastActiveAt < this.idleAfterMs) continue
      connection.state |= IDLE
      this.changed(connection)
    }
    if (next !== undefined) this.armIdle(next)
  }

  /** Counts the connections' orders again from 0, as they are. */
  private reorder (): void {
    const all: PresenceConnection[] = []
    for (const user of this.users.values()) {
      for (let connection: PresenceConnection | undefined = user; connection !== undefined; connection = connection.next) all.push(connection)
    }
    all.sort((a, b) => a.state - b.state)
    this.nextOrder = 0
    for (const connection of all) connection.state = this.nextOrder++ << ORDER | (connection.state & ((1 << ORDER) - 1))
  }

  /** True while the table has the connection (live or reconnecting; not after close). */
  holds (connection: PresenceConnection): boolean {
    const user = userOf(connection)
    return (connection.state & GONE) === 0 && this.users.get(user.identity.userId) === user
  }

  private changed (connection: PresenceConnection): void {
    this.announce(userOf(connection))
  }

  /**
   * Announces the user's entry when its status changed, or as `event` (connections, name or
   * color changed: that always shows).
   */
  private announce (user: PresenceUser, event?: 'joined' | 'updated'): void {
    const now = this.look(user)
    user.seenAt = this.lookedAt
    if (event === undefined && (now & 3) === shownRank(user)) return
    user.state = user.state & ~(3 << SHOWN) | (now & 3) << SHOWN
    user.shownAt = this.lookedAt
    const entry = this.makeEntry(user, now, user.shownAt)
    this.onChange({ event: event ?? 'updated', user: entry }, entry)
  }

  /**
   * The user's status rank | connections << 2 now; its last activity goes to `lookedAt` (a
   * second result without an object per look).
   */
  private look (user: PresenceUser): number {
    let rank = RANK.reconnecting
    let connections = 0
    let lastActiveAt = user.joinedAt
    for (let connection: PresenceConnection | undefined = user; connection !== undefined; connection = connection.next) {
      if ((connection.state & GONE) !== 0) continue
      rank = Math.max(rank, ownRank(connection.state))
      connections++
      lastActiveAt = Math.max(lastActiveAt, connection.lastActiveAt)
    }
    this.lookedAt = lastActiveAt
    return rank | connections << 2
  }

  /** The user's entry now. */
  private entry (user: PresenceUser): PresenceEntry {
    return this.makeEntry(user, this.look(user), this.lookedAt)
  }

  /** The user's entry as last announced. */
  private shownEntry (user: PresenceUser): PresenceEntry {
    return this.makeEntry(user, (this.look(user) & ~3) | shownRank(user), user.shownAt)
  }

  /** An entry of `user` with status rank | connections << 2 `shown`. */
  private makeEntry (user: PresenceUser, shown: number, lastActiveAt: number): PresenceEntry {
    return {
      userId: user.identity.userId,
      name: user.identity.name,
      color: user.identity.color,
      status: BY_RANK[shown & 3] as PresenceStatus,
      connections: shown >> 2,
      joinedAt: user.joinedAt + this.origin,
      lastActiveAt: lastActiveAt + this.origin
    }
  }
}

function ownRank (state: number): number {
  return RANK[(state & RECONNECTING) !== 0 ? 'reconnecting' : (state & AWAY) !== 0 ? 'away' : (state & IDLE) !== 0 ? 'idle' : 'active']
}

function shownRank (user: PresenceUser): number {
  return user.state >> SHOWN & 3
}

function userOf (connection: PresenceConnection): PresenceUser {
  return 'user' in connection ? connection.user : connection
}

/** Takes a tab out of its user's list. */
function unlink (user: PresenceUser, tab: PresenceTab): void {
  let before: PresenceConnection = user
  while (before.next !== undefined && before.next !== tab) before = before.next
  before.next = tab.next
  tab.next = undefined
}
