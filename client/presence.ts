import type { LeaveReason, PresenceEntry, SettableStatus } from '../shared/tandem.js'

/** A presence event as the client reports it. */
export type PresenceEvent =
  | { type: 'snapshot', users: PresenceEntry[] }
  | { type: 'joined' | 'updated', user: PresenceEntry }
  | { type: 'left', user: PresenceEntry, reason: LeaveReason }

/** `client.presence`: who is in the document. */
export interface PresenceView {
  /** Every user in the document, this client's user included. */
  list (): PresenceEntry[]
  /** This client's own entry, once the server greeted it. */
  readonly self: PresenceEntry | undefined
  /** Sets this connection's status: `away` sticks until `active` is set again. */
  setStatus (status: SettableStatus): void
}

/** The presence of the document as this client knows it. */
export class PresenceBook {
  private readonly users = new Map<string, PresenceEntry>()
  /** This client's user id, from the server's welcome. */
  selfId: string | undefined

  /** Applies a server message's content; returns the event to report. */
  snapshot (users: readonly PresenceEntry[]): PresenceEvent {
    this.users.clear()
    for (const user of users) this.users.set(user.userId, user)
    return { type: 'snapshot', users: this.list() }
  }

  joinedOrUpdated (type: 'joined' | 'updated', user: PresenceEntry): PresenceEvent {
    this.users.set(user.userId, user)
    return { type, user }
  }

  left (user: PresenceEntry, reason: LeaveReason): PresenceEvent {
    this.users.delete(user.userId)
    return { type: 'left', user, reason }
  }

  list (): PresenceEntry[] {
    return [...this.users.values()]
  }

  get self (): PresenceEntry | undefined {
    return this.selfId === undefined ? undefined : this.users.get(this.selfId)
  }
}
