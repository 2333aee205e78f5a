import { writeTandem } from '../../shared/messages.js'
import type { PresenceEntry, SettableStatus, TandemMessage } from '../../shared/tandem.js'
import type { LeaveReason } from '../../shared/reasons.js'
import { PresenceTable, type PresenceChange, type PresenceConnection } from './table.js'
import { PresenceMerge } from './merge.js'
import type { Identity } from '../auth/auth.js'

/** What presence needs of a session. */
export interface PresenceMember {
  /** Stable across resumes. */
  readonly id: string
  readonly identity: Identity
  /**
   * Its connection on its document's table, kept by the rooms while it is live here (a field,
   * where a map by session id cost an entry per session); undefined before it joins and after.
   */
  presence: PresenceConnection | undefined
  send (frame: Uint8Array): void
}

/** How presence reaches the other instances (the cluster); absent on a single instance. */
export interface PresencePeers {
  /** This instance's entry of a user changed (null: its last connection here ended). */
  publishPresence (doc: string, userId: string, entry: PresenceEntry | null, reason: LeaveReason | ''): void
  /** Asks the peers for their presence of a document (a room was just created here). */
  refreshPresence (doc: string): void
}

interface Room {
  /** This instance's connections. */
  table: PresenceTable
  /** The table merged with the peers' entries: what clients and the API see. */
  merge: PresenceMerge
  /** Number of live sessions of the document here (each keeps its connection: `presence`). */
  live: number
  /** Live Tandem sessions: they receive presence and lock messages. */
  tandem: Set<PresenceMember>
  /**
   * Connections of sessions no longer live, by session id: within their reconnect grace, or
   * between `leave` and `finish`.
   */
  held: Map<string, PresenceConnection>
}

/**
 * The presence of every document with someone in it: one room per document, holding this
 * instance's table, its merge with the peers' entries, and the sessions that hear presence (and
 * lock) messages. A room goes when its last live or held session is gone.
 */
export class PresenceRooms {
  private readonly rooms = new Map<string, Room>()

  constructor (private readonly idleAfterMs: number, private readonly peers?: PresencePeers) {}

  /**
   * A session started; `resumed` when it takes back its entry from its reconnect grace. One
   * that resumed from another instance has no entry here: it connects, and that instance's
   * entry goes when it lets go (the merged entry stays: no `left`, no `joined`).
   */
  join (doc: string, member: PresenceMember, resumed: boolean, joinedAt?: number): void {
    const room = this.room(doc)
    room.live++
    const held = resumed ? room.held.get(member.id) : undefined
    if (held !== undefined) {
      room.held.delete(member.id)
      member.presence = held
      room.table.resume(held)
    } else {
      member.presence = room.table.connect(member.identity, joinedAt)
    }
  }

  /** When a user joined the document, as everyone sees it (undefined when not there). */
  joinedAt (doc: string, userId: string): number | undefined {
    return this.rooms.get(doc)?.merge.get(userId)?.joinedAt
  }

  /** Sends a Tandem session the document's presence; from now on it hears every change. */
  greet (doc: string, member: PresenceMember): void {
    const room = this.room(doc)
    member.send(writeTandem({ type: 'presence', users: room.merge.list() }))
    room.tandem.add(member)
  }

  /** The Tandem sessions of a document here: they hear presence and lock messages. */
  listeners (doc: string): Iterable<PresenceMember> {
    return this.rooms.get(doc)?.tandem ?? []
  }

  setStatus (doc: string, member: PresenceMember, status: SettableStatus): void {
    if (member.presence !== undefined) this.rooms.get(doc)?.table.setStatus(member.presence, status)
  }

  /** The session edited the document or changed its awareness state. */
  activity (doc: string, member: PresenceMember): void {
    if (member.presence !== undefined) this.rooms.get(doc)?.table.activity(member.presence)
  }

  /** A session's identity changed (a refreshed token): its entry shows the new name and color. */
  rename (doc: string, member: PresenceMember): void {
    if (member.presence !== undefined) this.rooms.get(doc)?.table.rename(member.presence, member.identity)
  }

  /**
   * The session's connection ended: it no longer hears anything, and its connection waits for
   * `hold` or `finish` by id. False when it had no room.
   */
  leave (doc: string, member: PresenceMember): boolean {
    const room = this.rooms.get(doc)
    if (room === undefined) return false
    if (member.presence !== undefined) {
      room.live--
      room.held.set(member.id, member.presence)
      member.presence = undefined
    }
    room.tandem.delete(member)
    return true
  }

  /** The session is held for its reconnect grace: its entry shows `reconnecting`. */
  hold (doc: string, id: string): void {
    const room = this.rooms.get(doc)
    const connection = room?.held.get(id)
    if (connection !== undefined) room?.table.suspend(connection)
  }

  /** The session ended for good: its connection leaves the entry (`left` when it was the last). */
  finish (doc: string, id: string, reason: LeaveReason): void {
    const room = this.rooms.get(doc)
    if (room === undefined) return
    const connection = room.held.get(id)
    if (connection !== undefined) {
      room.held.delete(id)
      room.table.disconnect(connection, reason)
    }
    // peers' entries go with the room: a room made again asks the peers afresh
    if (room.live === 0 && room.held.size === 0 && room.table.size === 0) {
      room.table.close()
      this.rooms.delete(doc)
    }
  }

  /** The presence of a document, on every instance (empty when nobody is there). */
  presence (doc: string): PresenceEntry[] {
    return this.rooms.get(doc)?.merge.list() ?? []
  }

  /** Documents with presence here: their live session count here and user count everywhere. */
  documents (): Array<{ name: string, sessions: number, users: number }> {
    return [...this.rooms].map(([name, room]) => ({ name, sessions: room.live, users: room.merge.size }))
  }

  /** This instance's own entries of a document, for a peer that asks. */
  ownPresence (doc: string): PresenceEntry[] {
    return this.rooms.get(doc)?.merge.own() ?? []
  }

  /** A peer's entry of one user changed (null: its last connection there ended). */
  peerPresence (node: string, doc: string, userId: string, entry: PresenceEntry | null, reason: LeaveReason | ''): void {
    this.rooms.get(doc)?.merge.set(node, userId, entry, reason === '' ? 'disconnect' : reason)
  }

  /** Everything a peer has of a document; what it does not list any more left (`disconnect`). */
  peerSnapshot (node: string, doc: string, entries: PresenceEntry[]): void {
    this.rooms.get(doc)?.merge.replace(node, entries, 'disconnect')
  }

  /** A peer died: its users leave every document (`timeout`) unless still here or elsewhere. */
  peerDown (node: string): void {
    for (const room of this.rooms.values()) room.merge.drop(node, 'timeout')
  }

  /** Stops every table's timer and forgets every room. */
  close (): void {
    for (const room of this.rooms.values()) room.table.close()
    this.rooms.clear()
  }

  private room (doc: string): Room {
    let room = this.rooms.get(doc)
    if (room === undefined) {
      const table = new PresenceTable(this.idleAfterMs, (change, shown) => this.localPresence(doc, created, change, shown))
      const created: Room = {
        table,
        merge: new PresenceMerge(table, change => this.presenceChanged(created, change)),
        live: 0,
        tandem: new Set(),
        held: new Map()
      }
      room = created
      this.rooms.set(doc, room)
      this.peers?.refreshPresence(doc)
    }
    return room
  }

  /** The table changed: merged for clients here, told to the peers. */
  private localPresence (doc: string, room: Room, change: PresenceChange, shown: PresenceEntry): void {
    room.merge.local(change, shown)
    if (change.event === 'left') this.peers?.publishPresence(doc, change.user.userId, null, change.reason)
    else this.peers?.publishPresence(doc, change.user.userId, change.user, '')
  }

  private presenceChanged (room: Room, change: PresenceChange): void {
    // stock clients are not told: with no Tandem client here, nothing to encode (a storm of
    // stock clients would encode one presence frame per connection for nobody)
    if (room.tandem.size === 0) return
    const frame = writeTandem({ type: 'presence-event', ...change } as TandemMessage)
    for (const member of room.tandem) member.send(frame)
  }
}
