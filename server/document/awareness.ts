// Longer than most files here (about 390 lines), on purpose: the registry's echo rules, clock
// rules and removal memory decide together whether one awareness entry is relayed, and are
// tested together (test/document/awareness-registry.test.ts models tabs across instances).
import { readAwarenessUpdate, writeAwarenessUpdate, type AwarenessEntry } from '../../shared/awareness.js'
import { TandemError } from '../../shared/errors.js'
import { asSmall } from '../session/clock.js'

/** Awareness client ids one session may ever claim; a stock client needs one. */
export const MAX_CLIENT_IDS_PER_OWNER = 4

/**
 * The owner of awareness states whose session lives on another instance (scale-out). That
 * instance assigns their clocks; this one accepts a state only with a higher clock than it knows,
 * and never advances that clock itself (see Known.sent).
 */
export class RemoteOwner {
  constructor (readonly nodeId: string) {}
}

interface Known {
  /**
   * The clock of the state as its owner assigned it: this instance's for its sessions' states,
   * the owning instance's for a remote state (as last heard on the bus). Only the owner advances
   * it; a peer's clocks are compared with it, so a raise made here alone would hide the owner's
   * next states until its clock overtook ours.
   */
  clock: number
  /**
   * The highest clock sent to this instance's members for the id. It runs ahead of a remote
   * owner's clock whenever this instance raises clocks for its members only (encodeAll, a dead
   * peer's removal, a snapshot's missed removal); what members are sent is always above it.
   */
  sent: number
  /** JSON text; 'null' once removed. */
  state: string
  /** The owner's key (a session), or undefined once removed. */
  owner: object | undefined
  /**
   * The first clock assigned here since the owner took the id. Clocks from `since` to `sent` were
   * all made here, so an owner sending one of them back is echoing a relay: a second tab of the
   * same browser passes relays back to it over BroadcastChannel, and the stock client takes a
   * newer clock for its own state and sends it again.
   */
  since: number
  /** The registry's sequence number when this version of the state was relayed. */
  relayedAt: number
  /**
   * One field for two times, each read only in its phase (a field less in every entry):
   * - while a local session owns the state, when it was last relayed to members, in ms since the
   *   registry's origin (its first `now()`: a small integer, where a Date.now() time is a 16-byte
   *   heap number in every entry); 0 for a remote owner's state (only a local owner's echoes are
   *   timed);
   * - once removed (`owner` undefined), the sequence number of the removal.
   */
  stamp: number
}

/**
 * True when `owner` sending `entry` is only an echo (the stock client re-sends every change it
 * receives): the id is controlled by another local session, or is a removal, or was sent to
 * `owner` before it was removed. States owned by another instance may be taken over (a move).
 */
function isEcho (known: Known | undefined, owner: object, entry: AwarenessEntry, seen: (member: object, known: Known) => boolean): boolean {
  if (known === undefined || known.owner === owner) return false
  const local = known.owner !== undefined && !(known.owner instanceof RemoteOwner)
  return local || entry.state === 'null' || seen(owner, known)
}

/**
 * An unchanged state is relayed at most this often. The stock client renews its state every 15 s
 * and others drop it after 30 s unrenewed, so skipping renewals closer together than this still
 * relays one at least every 20 s; what it skips is an echo loop whose clocks no registry made
 * alone (a tab on another instance, which raised the clock for its members, passes it back).
 */
export const MIN_RENEWAL_INTERVAL_MS = 5_000

/**
 * True when the owner of a state sends it back only because it heard its own relay: the clock
 * is one this registry assigned, or the state is unchanged and was relayed moments ago.
 */
function isOwnEcho (known: Known, entry: AwarenessEntry, clock: number, now: number): boolean {
  // `clock` (the entry's) and `now` as Known's: since the registry's origin
  if (clock >= known.since && clock <= known.sent) return true
  return entry.state === known.state && now - known.stamp < MIN_RENEWAL_INTERVAL_MS
}

/**
 * How long a removed state is remembered: its clock (so an echo of the removal is known as one)
 * and who was sent it. After that the id is forgotten, and if it comes back it is taken as never
 * seen, with a clock from the time in ms, which is above every clock assigned to it before (those
 * grow by one per change from the time the id was first seen). Without this, a document that
 * stays loaded kept every client id that ever visited it: 100,000 visits held 19 MiB, and each
 * join and leave walked them all (about 2 ms each).
 */
export const REMOVED_RETENTION_MS = 60_000

/**
 * A member's or owner's marks. Which member was sent which state is derived from sequence numbers
 * rather than kept per state: a member saw a state if it was a member when the state was relayed
 * (`joinedAt`), or was greeted (sent every live state: `greetedAt`) while it was live. Two numbers
 * per member, where a set of members per state cost kilobytes per connection; 0 for not yet.
 * `claimed`: the client ids it has ever claimed, to cap them (see MAX_CLIENT_IDS_PER_OWNER), a
 * lone id as it is (a stock client needs one), a Set from the second on.
 */
interface Marks {
  joinedAt: number
  greetedAt: number
  claimed: number | Set<number> | undefined
}

/** A removal, queued to be forgotten once REMOVED_RETENTION_MS have passed. */
interface Removal { clientId: number, seq: number, at: number }

/** The clock to send members with a state clocked `clock`: above every clock they were sent for it. */
function nextSent (known: Known | undefined, clock: number): number {
  return known === undefined ? clock : Math.max(clock, known.sent + 1)
}

/** A read-only set of members: `has`, `size` and iteration in join order. */
export interface MemberSet<M> extends Iterable<M> {
  readonly size: number
  /** Takes anything: whatever is not a member is not one (a stored sync asks of its receivers). */
  has (member: unknown): boolean
}

/** The keys of a map, as a MemberSet. */
class Keys<K> implements MemberSet<K> {
  constructor (private readonly map: ReadonlyMap<K, unknown>) {}

  get size (): number {
    return this.map.size
  }

  has (key: unknown): boolean {
    return this.map.has(key as K)
  }

  [Symbol.iterator] (): Iterator<K> {
    return this.map.keys()
  }
}

/**
 * The awareness states of one document, as the server relays them. The server is the clock
 * authority: every state it forwards carries a clock above the last it forwarded for that client.
 * That is what lets a client that reconnects (its own clock is behind the removal the server
 * broadcast when it dropped) be seen again at once instead of after its next 15 s renewal.
 */
export class AwarenessRegistry<Member extends object = object> {
  private readonly known = new Map<number, Known>()
  /**
   * Client ids taken by a local session as its second (or later) id: most likely another tab's
   * state that the session's browser passed on over BroadcastChannel before the bus brought it
   * here from the instance of its real owner. That instance's state for the id wins over it,
   * whatever the clocks (a clock made here from this machine's time may be ahead of the owner's).
   * Rare, so a set of ids rather than a flag in every entry, made on first use; only ids a local
   * session holds.
   */
  private provisional: Set<number> | undefined
  /**
   * The members (`register`), in join order, each with its marks: one entry per member, which
   * is also the document's member list (Document.members), where a set of members and a table of
   * marks cost an entry each; three tables of one number each cost every member about 40 bytes
   * more. A member leaves it with `unregister`.
   */
  private readonly joined = new Map<Member, Marks>()
  /** The marks of owners that never joined (tests drive a registry alone); made on first use. */
  private strangers: WeakMap<object, Marks> | undefined
  /** The sequence the Marks' and Known's numbers come from; starts at 1. */
  private seq = 0

  /** Removals in the order they were made; those before `forgotten` are done with. */
  private removals: Removal[] = []
  private forgotten = 0
  /**
   * The first `now()`: Known's clocks and relay times count from it (small integers, where clocks
   * from the time in ms are a heap number each); what is sent and compared with what comes
   * carries the clocks themselves.
   */
  private readonly origin: number

  /**
   * @param now the wall clock, in ms (tests pass their own)
   * @param mayUse whether `owner` may control `clientId`, claiming it if nobody owns it when
   *   `claim` is set (the document's client id owners: an id stays its user's across
   *   reconnects); the default allows all
   */
  constructor (
    private readonly now: () => number = Date.now,
    private readonly mayUse: (owner: object, clientId: number, claim: boolean) => boolean = () => true
  ) {
    this.origin = now()
  }

  /** Queues the removal just recorded for `clientId`, and forgets those past their retention. */
  private forgetLater (clientId: number, seq: number, now: number): void {
    this.removals.push({ clientId, seq, at: now })
    while (this.forgotten < this.removals.length) {
      const removal = this.removals[this.forgotten] as Removal
      if (now - removal.at < REMOVED_RETENTION_MS) break
      const known = this.known.get(removal.clientId)
      // unless the id was taken again (or removed again later) meanwhile
      if (known !== undefined && known.owner === undefined && known.stamp === removal.seq) this.known.delete(removal.clientId)
      this.forgotten++
    }
    if (this.forgotten > 1024 && this.forgotten * 2 > this.removals.length) {
      this.removals = this.removals.slice(this.forgotten)
      this.forgotten = 0
    }
  }

  /** Client ids remembered, live or removed (removed ones are forgotten after REMOVED_RETENTION_MS). */
  get remembered (): number {
    return this.known.size
  }

  /** The members, in join order. */
  readonly members: MemberSet<Member> = new Keys(this.joined)

  /** A member joined the document: it receives every relay from now on. */
  register (member: Member): void {
    const marks = this.marksOf(member)
    marks.joinedAt = ++this.seq
    this.joined.set(member, marks)
    this.strangers?.delete(member)
  }

  /**
   * A member left the document: what the registry knew of it is forgotten (a session never
   * comes back: its client's next connection is another session). Call removeOwnedBy too.
   */
  unregister (member: Member): void {
    this.joined.delete(member)
  }

  /** The marks of `member` (or of an owner that never joined), made on first use. */
  private marksOf (member: object): Marks {
    let marks = this.marks(member)
    if (marks === undefined) (this.strangers ??= new WeakMap()).set(member, marks = { joinedAt: 0, greetedAt: 0, claimed: undefined })
    return marks
  }

  private marks (member: object): Marks | undefined {
    return this.joined.get(member as Member) ?? this.strangers?.get(member)
  }

  /** True when `member` was sent this version of the state. */
  private readonly seen = (member: object, known: Known): boolean => {
    const marks = this.marks(member)
    if (marks === undefined) return false
    const { joinedAt, greetedAt } = marks
    if (joinedAt !== 0 && joinedAt < known.relayedAt) return true
    return greetedAt !== 0 && known.relayedAt <= greetedAt && (known.owner !== undefined || greetedAt < known.stamp)
  }

  /**
   * Applies an awareness update sent by `owner`; returns the update to relay (clocks rewritten),
   * or null when it changes nothing.
   *
   * The stock client re-sends every awareness change it receives, so entries for client ids
   * that another session controls, or that this session was sent before they were removed, are
   * echoes and are skipped. A client that reconnects claims its id again through a new session,
   * which was never sent that id's state; so does a client that moved here from another
   * instance while that instance still owns its state.
   * Throws TandemError on bad bytes; nothing is applied then.
   */
  apply (owner: object, update: Uint8Array): Uint8Array | null {
    return this.applyFrom(owner, update).members
  }

  /**
   * Like `apply`, and also what to tell the other instances: the same entries but for provisional
   * claims (see `provisional`), which are most likely another tab's state passed on, and
   * would take the id away from its real owner's instance there.
   */
  applyFrom (owner: object, update: Uint8Array): { members: Uint8Array | null, peers: Uint8Array | null } {
    let entries: AwarenessEntry[]
    try {
      entries = readAwarenessUpdate(update)
    } catch (err) {
      throw new TandemError('TANDEM_ERR_MALFORMED_MESSAGE', `awareness: ${(err as Error).message}`, { cause: err })
    }
    const relay: AwarenessEntry[] = []
    const peers: AwarenessEntry[] = []
    let relayedAt = 0
    const now = this.now()
    const sinceOrigin = asSmall(now - this.origin)
    for (const entry of entries) {
      const known = this.known.get(entry.clientId)
      if (isEcho(known, owner, entry, this.seen)) continue
      const held = known?.owner === owner
      const entryClock = asSmall(entry.clock - this.origin)
      if (held && isOwnEcho(known, entry, entryClock, sinceOrigin)) continue
      const provisional = held ? this.provisional?.has(entry.clientId) === true : this.claimsOther(owner, entry.clientId)
      // another user's id (its owner dropped, and will be back): dropped, the owner's state stands.
      // A provisional claim (most likely another tab's state) is checked but claims no ownership:
      // that would lock the id's real owner out of its own id while this session lives
      if (!held && !this.mayUse(owner, entry.clientId, !provisional)) continue
      if (!this.claim(owner, entry.clientId)) continue
      let clock: number
      if (known === undefined) {
        // an id this registry never saw may have been removed elsewhere with any clock (on another
        // instance, or here before the document unloaded): start from the time in ms, above any
        // clock a client can reach by counting (it would need 1000 changes a second)
        clock = Math.max(entryClock, sinceOrigin)
      } else {
        // taking over from another instance, whose removal will carry its clock plus one: step over it
        // (members and peers get the same clock: above what members were sent, too)
        const step = known.owner instanceof RemoteOwner ? 2 : 1
        clock = nextSent(known, Math.max(entryClock, known.clock + step))
      }
      const removed = entry.state === 'null'
      if (relayedAt === 0) relayedAt = ++this.seq
      const since = held ? known.since : clock
      this.known.set(entry.clientId, { clock, sent: clock, since, state: entry.state, owner: removed ? undefined : owner, relayedAt, stamp: removed ? relayedAt : sinceOrigin })
      if (provisional && !removed) (this.provisional ??= new Set()).add(entry.clientId)
      else this.provisional?.delete(entry.clientId)
      if (removed) this.forgetLater(entry.clientId, relayedAt, now)
      relay.push({ clientId: entry.clientId, clock: clock + this.origin, state: entry.state })
      if (!provisional) peers.push({ clientId: entry.clientId, clock: clock + this.origin, state: entry.state })
    }
    if (relay.length === 0) return { members: null, peers: null }
    const members = writeAwarenessUpdate(relay)
    return { members, peers: peers.length === relay.length ? members : peers.length === 0 ? null : writeAwarenessUpdate(peers) }
  }

  /**
   * True when `owner` may control `clientId`. A real client uses one id per document; a session
   * may claim a few, so that no one can fill the registry and every client's screen with
   * thousands of invented cursors, each kept until the session ends.
   */
  private claim (owner: object, clientId: number): boolean {
    const marks = this.marksOf(owner)
    const ids = marks.claimed
    if (ids === undefined) {
      marks.claimed = clientId
      return true
    }
    if (typeof ids === 'number') {
      if (ids !== clientId) marks.claimed = new Set([ids, clientId])
      return true
    }
    if (ids.has(clientId)) return true
    if (ids.size >= MAX_CLIENT_IDS_PER_OWNER) return false
    ids.add(clientId)
    return true
  }

  /**
   * Every client id `owner` took here (whatever it did with them since). Among them every id it
   * claimed through `mayUse`: only an owner's first id is claimed there (the others are
   * provisional), and the first is never past the cap.
   */
  claimedBy (owner: object): number[] {
    const ids = this.marks(owner)?.claimed
    return ids === undefined ? [] : typeof ids === 'number' ? [ids] : [...ids]
  }

  /** True when `owner` already controls an id other than `clientId` (a client needs one). */
  private claimsOther (owner: object, clientId: number): boolean {
    const ids = this.marks(owner)?.claimed
    if (ids === undefined) return false
    return typeof ids === 'number' ? ids !== clientId : ids.size > 0 && !ids.has(clientId)
  }

  /**
   * True when applying `owner`'s `update` would change some state's content, not only its clock
   * (the stock client renews an unchanged state every 15 s, and echoes other clients' states:
   * neither is activity). False for bytes that do not decode.
   */
  changesState (owner: object, update: Uint8Array): boolean {
    let entries: AwarenessEntry[]
    try {
      entries = readAwarenessUpdate(update)
    } catch {
      return false
    }
    const now = asSmall(this.now() - this.origin)
    return entries.some(entry => {
      const known = this.known.get(entry.clientId)
      // another user's id: the entry will be dropped
      if (known?.owner !== owner && !this.mayUse(owner, entry.clientId, false)) return false
      if (known === undefined) return true
      if (isEcho(known, owner, entry, this.seen) || (known.owner === owner && isOwnEcho(known, entry, asSmall(entry.clock - this.origin), now))) return false
      return known.state !== entry.state
    })
  }

  /**
   * Applies awareness entries another instance relayed for states its sessions own (their clocks
   * are already assigned there): an entry is taken only with a clock above the one known. With
   * `snapshot`, the entries are everything `owner` controls, and any other state attributed to it
   * is removed (its removal was missed). Returns the update to relay to local members (clocks
   * raised above what they were sent), or null. Throws on bad bytes.
   */
  applyRemote (owner: RemoteOwner, update: Uint8Array, snapshot = false): Uint8Array | null {
    const entries = readAwarenessUpdate(update)
    const relay: AwarenessEntry[] = []
    let relayedAt = 0
    const listed = new Set<number>()
    for (const entry of entries) {
      listed.add(entry.clientId)
      const known = this.known.get(entry.clientId)
      // a local session's provisional claim yields to the owner's instance (see `provisional`)
      const yields = known !== undefined && this.provisional?.has(entry.clientId) === true && known.owner !== undefined && !(known.owner instanceof RemoteOwner) && entry.state !== 'null'
      const clock = asSmall(entry.clock - this.origin)
      if (known !== undefined && clock <= known.clock && !yields) continue
      const removed = entry.state === 'null'
      const sent = nextSent(known, clock)
      if (relayedAt === 0) relayedAt = ++this.seq
      this.known.set(entry.clientId, { clock, sent, since: sent, state: entry.state, owner: removed ? undefined : owner, relayedAt, stamp: removed ? relayedAt : 0 })
      this.provisional?.delete(entry.clientId)
      if (removed) this.forgetLater(entry.clientId, relayedAt, this.now())
      if (known !== undefined || !removed) relay.push({ clientId: entry.clientId, clock: sent + this.origin, state: entry.state })
    }
    if (snapshot) {
      for (const [clientId, known] of this.known) {
        if (known.owner !== owner || listed.has(clientId)) continue
        relay.push(this.removeForMembers(clientId, known))
      }
    }
    return relay.length === 0 ? null : writeAwarenessUpdate(relay)
  }

  /**
   * Every state owned by a local session, each with its clock raised by one, for a snapshot to
   * other instances: the raise beats a peer that holds our last clock with a removal of its own
   * (made while it could not hear us), since such a removal leaves that clock as it was.
   */
  snapshotLocal (): Uint8Array {
    const entries: AwarenessEntry[] = []
    for (const [clientId, known] of this.known) {
      if (known.owner === undefined || known.owner instanceof RemoteOwner) continue
      known.clock++
      entries.push({ clientId, clock: known.clock + this.origin, state: known.state })
    }
    return writeAwarenessUpdate(entries)
  }

  /**
   * Removes every state `owner` controls; returns the removal to relay, or null if none. A local
   * session's removal is this instance's word (its clock goes to peers too); a remote owner's
   * (a dead peer) is for local members only, and leaves that owner's clock as it was, so the
   * owner's snapshot, should it only have been cut off, is taken again.
   */
  removeOwnedBy (owner: object): Uint8Array | null {
    const relay: AwarenessEntry[] = []
    for (const [clientId, known] of this.known) {
      if (known.owner !== owner) continue
      if (owner instanceof RemoteOwner) {
        relay.push(this.removeForMembers(clientId, known))
        continue
      }
      known.clock = known.sent = nextSent(known, known.clock + 1)
      known.state = 'null'
      known.owner = undefined
      known.stamp = ++this.seq
      this.provisional?.delete(clientId)
      this.forgetLater(clientId, known.stamp, this.now())
      relay.push({ clientId, clock: known.clock + this.origin, state: 'null' })
    }
    return relay.length === 0 ? null : writeAwarenessUpdate(relay)
  }

  /** Removes a remote owner's state for local members only: its clock stays the owner's. */
  private removeForMembers (clientId: number, known: Known): AwarenessEntry {
    known.sent = nextSent(known, known.clock)
    known.state = 'null'
    known.owner = undefined
    known.stamp = ++this.seq
    this.forgetLater(clientId, known.stamp, this.now())
    return { clientId, clock: known.sent + this.origin, state: 'null' }
  }

  /** Client ids whose state `owner` controls. */
  ownedBy (owner: object): number[] {
    const ids: number[] = []
    for (const [clientId, known] of this.known) if (known.owner === owner) ids.push(clientId)
    return ids
  }

  /**
   * Every live state, as one update for `recipient`; null when there is none. Each clock sent is
   * bumped first: a client that reconnects still remembers the clocks it saw before its drop, and
   * y-protocols ignores a state whose clock is not newer, so it would see nobody until their next
   * renewal (up to 15 s). Members holding the older clock accept the next relay all the same.
   * Only the clock sent moves: the owner's clock stays, so an owner on another instance, which
   * never hears of this bump, still has its next state taken.
   */
  encodeAll (recipient: object): Uint8Array | null {
    const entries: AwarenessEntry[] = []
    const marks = this.marksOf(recipient)
    if (marks.greetedAt === 0) marks.greetedAt = ++this.seq
    for (const [clientId, known] of this.known) {
      if (known.owner === undefined) continue
      known.sent = nextSent(known, known.clock)
      entries.push({ clientId, clock: known.sent + this.origin, state: known.state })
    }
    return entries.length === 0 ? null : writeAwarenessUpdate(entries)
  }

  /** Number of live states. */
  get size (): number {
    let n = 0
    for (const known of this.known.values()) if (known.owner !== undefined) n++
    return n
  }
}
