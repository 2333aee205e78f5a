import type { LeaveReason, PresenceEntry, PresenceStatus } from '../../shared/tandem.js'
import type { PresenceChange } from './table.js'

/** The node id of this instance's own entries in a {@link PresenceMerge}. */
export const LOCAL = ''

/** Status order, as in the table: the liveliest part wins. */
const RANK: Record<PresenceStatus, number> = { active: 3, idle: 2, away: 1, reconnecting: 0 }

/** This instance's entries, as last announced (PresenceTable: the merge keeps no copy). */
export interface LocalPresence {
  /** A user's entry (a new object), if the user is here. */
  shown (userId: string): PresenceEntry | undefined
  /** Every user's, in order of joining here. */
  allShown (): PresenceEntry[]
  readonly size: number
}

/**
 * The presence of one document across instances. Each instance's table keeps the entries of its
 * own connections; this merges them with what the peers report of theirs (per node, per user,
 * last report wins) into one entry per user: connections summed, the liveliest status, the
 * earliest join, the latest activity, and the name and colour of the freshest part. Changes of
 * the merged entry are announced with the table's rule (status, connections, name or colour),
 * and `left` carries the reason of the part that went last.
 *
 * Until a peer reports a user (on a single instance, always) the merged entries are the table's:
 * the merge keeps nothing per user, and passes the table's changes on.
 */
export class PresenceMerge {
  /**
   * node id → user id → that node's entry; LOCAL (null: its entries are `localEntries`) is
   * there while this instance has users, where it came among the nodes (the first part wins
   * ties of freshness).
   */
  private readonly parts = new Map<string, Map<string, PresenceEntry> | null>()
  /** Every merged entry, as last announced, in order of joining; from the first peer's entry on. */
  private announced: Map<string, PresenceEntry> | undefined

  constructor (private readonly localEntries: LocalPresence, private readonly onChange: (change: PresenceChange) => void) {}

  /**
   * A change of the local table (already made there); `shown`: the user's entry as announced
   * there (for `left`, as last announced).
   */
  local (change: PresenceChange, shown: PresenceEntry): void {
    const userId = change.user.userId
    if (change.event === 'joined' && !this.parts.has(LOCAL)) this.parts.set(LOCAL, null)
    if (change.event === 'left' && this.localEntries.size === 0) this.parts.delete(LOCAL)
    if (this.announced !== undefined) return this.announce(this.announced, userId, change.event === 'left' ? change.reason : 'leave')
    // no peer yet: the merged entry is the table's, and changes as the table's does
    if (change.event === 'left') this.onChange({ event: 'left', user: { ...shown, connections: 0 }, reason: change.reason })
    else this.onChange({ event: change.event, user: { ...change.user } })
  }

  /**
   * A peer's entry of one user, or null when that node has no connection of the user any more
   * (this instance's come through `local`).
   */
  set (node: string, userId: string, entry: PresenceEntry | null, reason: LeaveReason): void {
    if (node === LOCAL) return
    let part = this.parts.get(node)
    if (entry === null) {
      if (part?.delete(userId) !== true) return
      if (part.size === 0) this.parts.delete(node)
    } else {
      if (part == null) this.parts.set(node, part = new Map())
      // kept as it is: entries are never changed once made (a change is a new entry), so a
      // copy per user would only cost memory
      part.set(userId, entry)
    }
    // the table's entries were the merged ones so far, in their order
    this.announced ??= new Map(this.localEntries.allShown().map(shown => [shown.userId, shown]))
    this.announce(this.announced, userId, reason)
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
    return this.localEntries.allShown()
  }

  /** Every merged entry, in order of joining. */
  list (): PresenceEntry[] {
    const entries = this.announced === undefined ? this.localEntries.allShown() : [...this.announced.values()].map(entry => ({ ...entry }))
    return entries.sort((a, b) => a.joinedAt - b.joinedAt)
  }

  /** The merged entry of one user, as last announced (maybe not a copy: do not change it). */
  get (userId: string): Readonly<PresenceEntry> | undefined {
    return this.announced === undefined ? this.localEntries.shown(userId) : this.announced.get(userId)
  }

  /** Number of users, on every instance. */
  get size (): number {
    return this.announced?.size ?? this.localEntries.size
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
      const entry = part === null ? this.localEntries.shown(userId) : part.get(userId)
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

  private announce (announced: Map<string, PresenceEntry>, userId: string, reason: LeaveReason): void {
    const entry = this.merged(userId)
    const before = announced.get(userId)
    if (entry === undefined) {
      if (before === undefined) return
      announced.delete(userId)
      return this.onChange({ event: 'left', user: { ...before, connections: 0 }, reason })
    }
    announced.set(userId, entry)
    if (before === undefined) return this.onChange({ event: 'joined', user: { ...entry } })
    if (before.status !== entry.status || before.connections !== entry.connections || before.name !== entry.name || before.color !== entry.color) {
      this.onChange({ event: 'updated', user: { ...entry } })
    }
  }
}
