import type { LeaveReason, PresenceEntry, PresenceStatus } from '../../shared/tandem.js'
import type { PresenceChange } from './board.js'

/** The node id of this instance's own entries in a {@link PresenceMerge}. */
export const LOCAL = ''

/** Status order, as in the board: the liveliest part wins. */
const RANK: Record<PresenceStatus, number> = { active: 3, idle: 2, away: 1, reconnecting: 0 }

/**
 * The presence of one document across instances. Each instance's board keeps the entries of its
 * own connections; this merges them with what the peers report of theirs (per node, per user,
 * last report wins) into one entry per user: connections summed, the liveliest status, the
 * earliest join, the latest activity, and the name and colour of the freshest part. Changes of
 * the merged entry are announced with the board's rule (status, connections, name or colour),
 * and `left` carries the reason of the part that went last.
 */
export class PresenceMerge {
  /** node id (LOCAL for this instance) → user id → that node's entry. */
  private readonly parts = new Map<string, Map<string, PresenceEntry>>()
  private readonly announced = new Map<string, PresenceEntry>()

  constructor (private readonly onChange: (change: PresenceChange) => void) {}

  /** A change of the local board. */
  local (change: PresenceChange): void {
    if (change.event === 'left') this.set(LOCAL, change.user.userId, null, change.reason)
    else this.set(LOCAL, change.user.userId, change.user, 'leave')
  }

  /** A node's entry of one user, or null when that node has no connection of the user any more. */
  set (node: string, userId: string, entry: PresenceEntry | null, reason: LeaveReason): void {
    let part = this.parts.get(node)
    if (entry === null) {
      if (part?.delete(userId) !== true) return
      if (part.size === 0) this.parts.delete(node)
    } else {
      if (part === undefined) this.parts.set(node, part = new Map())
      // kept as it is: entries are never changed once made (a change is a new entry), so a
      // copy per user would only cost memory
      part.set(userId, entry)
    }
    this.announce(userId, reason)
  }

  /** Everything a node has: what it no longer lists left with `reason`. */
  replace (node: string, entries: readonly PresenceEntry[], reason: LeaveReason): void {
    const listed = new Set(entries.map(entry => entry.userId))
    for (const userId of [...this.parts.get(node)?.keys() ?? []]) if (!listed.has(userId)) this.set(node, userId, null, reason)
    for (const entry of entries) this.set(node, entry.userId, entry, reason)
  }

  /** A node is gone: its users leave (unless another node still has them) with `reason`. */
  drop (node: string, reason: LeaveReason): void {
    this.replace(node, [], reason)
  }

  /** This instance's own entries (what peers need to know). */
  own (): PresenceEntry[] {
    return [...this.parts.get(LOCAL)?.values() ?? []]
  }

  /** Every merged entry, in order of joining. */
  list (): PresenceEntry[] {
    return [...this.announced.values()].map(entry => ({ ...entry })).sort((a, b) => a.joinedAt - b.joinedAt)
  }

  /** The merged entry of one user, as last announced (not a copy: do not change it). */
  get (userId: string): Readonly<PresenceEntry> | undefined {
    return this.announced.get(userId)
  }

  /** Number of users, on every instance. */
  get size (): number {
    return this.announced.size
  }

  /** True when no peer reports anyone. */
  get remoteEmpty (): boolean {
    return [...this.parts.keys()].every(node => node === LOCAL)
  }

  /**
   * The merged entry of a user: a node's own entry when only one node has the user (most
   * users, and every user of a single instance), else a new one.
   */
  private merged (userId: string): PresenceEntry | undefined {
    let merged: PresenceEntry | undefined
    let copied = false
    let freshest: PresenceEntry | undefined
    for (const part of this.parts.values()) {
      const entry = part.get(userId)
      if (entry === undefined) continue
      if (merged === undefined) {
        merged = entry
      } else {
        if (!copied) {
          merged = { ...merged }
          copied = true
        }
        merged.connections += entry.connections
        if (RANK[entry.status] > RANK[merged.status]) merged.status = entry.status
        merged.joinedAt = Math.min(merged.joinedAt, entry.joinedAt)
        merged.lastActiveAt = Math.max(merged.lastActiveAt, entry.lastActiveAt)
      }
      if (freshest === undefined || entry.lastActiveAt > freshest.lastActiveAt) freshest = entry
    }
    // the part active last chose the name and colour last
    if (copied && merged !== undefined && freshest !== undefined) {
      merged.name = freshest.name
      merged.color = freshest.color
    }
    return merged
  }

  private announce (userId: string, reason: LeaveReason): void {
    const entry = this.merged(userId)
    const before = this.announced.get(userId)
    if (entry === undefined) {
      if (before === undefined) return
      this.announced.delete(userId)
      return this.onChange({ event: 'left', user: { ...before, connections: 0 }, reason })
    }
    this.announced.set(userId, entry)
    if (before === undefined) return this.onChange({ event: 'joined', user: { ...entry } })
    if (before.status !== entry.status || before.connections !== entry.connections || before.name !== entry.name || before.color !== entry.color) {
      this.onChange({ event: 'updated', user: { ...entry } })
    }
  }
}
