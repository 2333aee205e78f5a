import type { LeaveReason, PresenceEntry, SettableStatus } from '../../shared/tandem.js'
import { PresenceTable, type PresenceChange, type PresenceConnection, type PresenceIdentity } from './table.js'

export type { PresenceChange, PresenceIdentity } from './table.js'

/**
 * The presence of one document, by connection id: a PresenceTable (table.ts, which says how
 * statuses and announcements work) whose connections are named. The server's rooms keep each
 * connection's handle on its session instead; this is the board embedders use.
 */
export class PresenceBoard {
  private readonly table: PresenceTable
  private readonly connections = new Map<string, PresenceConnection>()

  constructor (idleAfterMs: number, onChange: (change: PresenceChange) => void, now: () => number = Date.now) {
    this.table = new PresenceTable(idleAfterMs, onChange, now)
  }

  /**
   * Adds a connection of `identity`: `joined` for a new user, else `updated`. `joinedAt`: when
   * the user joined, if earlier (a session resumed from another instance keeps its place).
   */
  connect (connectionId: string, identity: PresenceIdentity, joinedAt?: number): void {
    if (this.connections.has(connectionId)) return
    this.connections.set(connectionId, this.table.connect(identity, joinedAt))
  }

  /** A connection's user has a new name or color (a refreshed token): `updated` when it shows. */
  rename (connectionId: string, identity: PresenceIdentity): void {
    const connection = this.connections.get(connectionId)
    if (connection !== undefined) this.table.rename(connection, identity)
  }

  /** Removes a connection: `left` with `reason` when it was the user's last, else `updated`. */
  disconnect (connectionId: string, reason: LeaveReason): void {
    const connection = this.connections.get(connectionId)
    if (connection === undefined) return
    this.connections.delete(connectionId)
    this.table.disconnect(connection, reason)
  }

  /** The connection dropped and may resume: it shows `reconnecting`. */
  suspend (connectionId: string): void {
    const connection = this.connections.get(connectionId)
    if (connection !== undefined) this.table.suspend(connection)
  }

  /** The connection resumed within the grace. */
  resume (connectionId: string): void {
    const connection = this.connections.get(connectionId)
    if (connection !== undefined) this.table.resume(connection)
  }

  /** The connection did something: an edit or an awareness change. */
  activity (connectionId: string): void {
    const connection = this.connections.get(connectionId)
    if (connection !== undefined) this.table.activity(connection)
  }

  /** The client set its status (`away`, or `active` again). */
  setStatus (connectionId: string, status: SettableStatus): void {
    const connection = this.connections.get(connectionId)
    if (connection !== undefined) this.table.setStatus(connection, status)
  }

  /** True while the board has the connection (live or reconnecting). */
  has (connectionId: string): boolean {
    return this.connections.has(connectionId)
  }

  /** The entry of a user, if present. */
  get (userId: string): PresenceEntry | undefined {
    return this.table.get(userId)
  }

  /** Every entry, in order of joining. */
  list (): PresenceEntry[] {
    return this.table.list()
  }

  /** Number of users. */
  get size (): number {
    return this.table.size
  }

  /** Clears every timer; the board announces nothing more. */
  close (): void {
    this.table.close()
    this.connections.clear()
  }
}
