// Longer than most files here (about 650 lines), on purpose: it is the one path of an update
// through a document, in order: check (update-guard.ts, update-deps.ts, client-owners.ts), hold
// (held-updates.ts) or integrate with enforced locks (enforced-locks.ts), relay (framed once,
// merged per turn: turn-relay.ts), hand to the writer, acknowledge in frame order (relay-acks.ts: other
// instances told before the commit, and acknowledgements waiting for theirs). Each step's own
// logic lives in its module; what stays here is their order and the document's state between them.
import * as Y from 'yjs'
import type { Logger } from 'pino'
import { AwarenessRegistry, type MemberSet } from './awareness.js'
import { findInconsistency } from './update-guard.js'
import { CyclicUpdateError, findNeeds, type Needs } from './update-deps.js'
import { DEFAULT_HELD_LIMITS, HeldUpdates, type Held, type HeldLimits } from './held-updates.js'
import type { AckTicket } from '../session/ack-order.js'
import { integrate } from './integrate.js'
import { TandemError } from '../../shared/errors.js'
import { writeAwareness, writeSyncStep1 } from '../../shared/messages.js'
import { TurnRelay } from './turn-relay.js'
import type { WriterSource } from './writer.js'
import type { Meter } from '../observability/metrics.js'
import { SharedFrame } from '../transport/socket.js'
import type { LockInfo } from '../../shared/tandem.js'
import { applyEnforced, type Rule } from './enforced-locks.js'
import { TypeGuards } from './type-guards.js'
import { ClientOwners, type ClientOwner } from './client-owners.js'
import type { UnconfirmedUpdate } from './unconfirmed.js'
import { RelayAcks, ownersOf, type Settlement } from './relay-acks.js'
import { StoredSync, STORED_SYNC_KEEP_MS } from './stored-sync.js'
import { buildInSlices, SLICED_BUILD_BYTES } from './slice-build.js'


/** What a document needs of a session: a way to send, and to hear that its updates are stored. */
export interface DocumentMember {
  /** The session's id (stable across resumes): a lock it holds lets it change the guarded type. */
  readonly id?: string
  send (frame: Uint8Array): void
  /** Sends a broadcast's frame, which the document counts itself (once per broadcast). */
  relay (frame: SharedFrame): void
  /** `count` sync frames of this member that the document did not hold are now stored (or were no-ops). */
  acknowledge (count: number): void
  /** User id recorded as the author of this member's updates (versions, webhooks). */
  readonly author?: string
  /** Whose client ids this member uses: its user's id, or a key of its own (see `durableOwner`). */
  readonly clientOwner: string
  /**
   * True when `clientOwner` is an authenticated user: the ids of its updates and awareness states
   * are claimed, stored, and outlive the connection. False for an anonymous connection: it claims
   * only its awareness ids, and its claims end with it.
   */
  readonly durableOwner: boolean
  /** The document holds the member's sync frame being applied (it depends on content the document lacks). */
  hold (): AckTicket
  /** A held frame of the member is now stored (or turned out a no-op). */
  settle (ticket: AckTicket): void
  /** A held frame of the member turned out invalid once what it waited for arrived: end the member. */
  fail (error: TandemError): void
  /** Part of this member's update was undone (enforced-locks.ts); `bytes` is what undoing it cost. */
  undone? (bytes: number): void
  /** Part of this member's held update, applied later, was undone by `holder`'s `y:` lock. */
  locked? (holder: LockInfo): void
  /** The document's stored state can answer a first sync before it is built (`Document.storedSync`). */
  storedReady? (): void
  /** See StoredSyncMember.firstSyncPending. */
  firstSyncPending? (): boolean
}

/**
 * Hears what other instances must learn about a document (scale-out): updates as soon as they
 * are relayed here (before their store commit), which of them are stored, and awareness changes
 * (clocks assigned) once applied.
 */
export interface DocumentObserver {
  /**
   * Updates applied here, relayed to the local members: told to peers at once. `owners`: the
   * client ids they claimed (stored with them). Returns their sequence number, which grows with
   * every call (across documents).
   */
  relayed (doc: Document, update: Uint8Array, owners: readonly ClientOwner[]): number
  /** Every update of the document relayed with a sequence number up to `seq` is stored. */
  stored (doc: Document, seq: number): void
  awareness (doc: Document, update: Uint8Array): void
}

const REMOTE = Symbol('remote')

/** An applied update waiting to be stored (see RelayAcks for its settlement). */
export interface PendingUpdate {
  update: Uint8Array
  /**
   * The member that sent it: one of its sync frames is acknowledged once this is stored. Null
   * for a read-only member's undone edit: the member settled that frame itself (refused).
   */
  origin: DocumentMember | null
  /** Set when the frame was held first (it waited for content the document lacked). */
  ticket: AckTicket | null
  /** Members whose no-op frames wait for this update (and so everything before it) to be stored. */
  also?: Settlement[]
  /** Client ids this update claimed: stored with it, in the same write. */
  owners?: ClientOwner[]
  /** Position among other instances' unconfirmed updates (RelayAcks) when it was applied: its acknowledgement waits for what came before. */
  barrier: number
  /** Its relay's sequence number once told to other instances. */
  seq?: number
  /** Other instances' updates stored here instead (their instance is gone): confirmed once stored. */
  confirms?: UnconfirmedUpdate[]
}

/** How often a member holding updates is asked, at most, for the content they wait for. */
const ASK_INTERVAL_MS = 1_000

/** Lifecycle of a loaded document, changed only by setStatus. */
export type DocumentStatus = 'loading' | 'ready' | 'unloading' | 'unloaded' | 'failed'

/**
 * One document in memory: its Y.Doc, the members connected to it, the awareness states they
 * control and the updates waiting to be stored. An update is relayed to the other members as
 * soon as it is applied, and acknowledged to its sender only once it is stored (a client that
 * saw it holds it too, and gives it back when it syncs). What is relayed and stored is what the
 * document integrated (see integrate.ts): usually the received bytes as they came. The first
 * update of an event-loop turn goes out at once; the ones after it in the same turn are merged
 * into one frame at the end of the turn, so a busy document sends each member at most two frames
 * per turn.
 */
export class Document implements WriterSource<PendingUpdate[]> {
  // a fixed guid: Yjs makes a random one otherwise (a uuidv4 of 31 crypto calls, per document
  // loaded); a root document's guid never leaves the process (only subdocuments' are encoded)
  readonly ydoc = new Y.Doc({ gc: true, guid: 'tandem' })
  /** Who owns which client id (Yjs and awareness alike: the stock client uses one for both). */
  readonly owners = new ClientOwners()
  readonly awareness = new AwarenessRegistry<DocumentMember>(Date.now, (member, clientId, claim) => {
    const { clientOwner, durableOwner } = member as DocumentMember
    // an anonymous member's claims are its own, released by id when it leaves (removeMember)
    if (claim) return durableOwner ? this.owners.claim(clientId, clientOwner, false) : this.owners.claimOwn(clientId, clientOwner)
    const owner = this.owners.owner(clientId)
    return owner === undefined || owner === clientOwner
  })
  /** The members, in join order (the awareness registry's list: one entry per member for both). */
  get members (): MemberSet<DocumentMember> {
    return this.awareness.members
  }

  status: DocumentStatus = 'loading'
  /** Message counters (metrics); set by the registry. */
  meter: Meter | null = null
  /**
   * Client ids of purged generations of this document (deleted, then purged after the retention
   * period): an update holding any struct of theirs comes from a client that still holds the
   * deleted content, and is refused (see deletion.ts). Set by the registry at load.
   */
  retired: ReadonlySet<number> | null = null
  /** Stored updates since the last compaction, for the compaction thresholds. */
  logUpdates = 0
  logBytes = 0
  /** Bytes of the last snapshot this process made of the document (compaction); 0 before one. */
  snapshotBytes = 0
  /** The `y:` locks held here: the types whose changes the server undoes (type-guards.ts, enforced-locks.ts). */
  readonly guards = new TypeGuards()
  /**
   * While the document is built from one big stored update, and after that until the document
   * first changes (at most STORED_SYNC_KEEP_MS): that update, which answers a fresh client's first
   * sync at once (stored-sync.ts). Null otherwise.
   */
  storedSync: StoredSync | null = null
  /** Run once the document is built (afterLoad), before it may unload. */
  private loadedHooks: Array<() => void> | null = []
  /** Another instance's update reached the document while it loaded. */
  private remoteWhileLoading = false
  /** Deleted while it loaded (abandon): a sliced build stops at its next turn. */
  private abandoned = false
  private pending: PendingUpdate[] = []
  /** The batch the writer is storing now: applied and relayed, not durable yet. */
  private inflight: PendingUpdate[] = []
  private storedWaiters: Array<() => void> = []
  /** Relays within a turn of the event loop: the first at once, the rest merged at its end. */
  private readonly turns = new TurnRelay<DocumentMember>((frame, except) => this.broadcast(frame, except))
  /** Updates waiting for content the document lacks: never applied, relayed, stored or acknowledged until it comes. */
  private readonly held: HeldUpdates<DocumentMember, AckTicket>
  /** When each member holding updates was last asked for what they wait for; made on first use (most documents never hold one). */
  private askedAt: Map<DocumentMember, number> | undefined
  /** Relays to and from other instances before their commit, and the acknowledgements waiting for them. */
  private readonly relay: RelayAcks

  constructor (
    readonly name: string,
    readonly logger: Logger,
    private readonly onPending: (doc: Document) => void,
    private readonly observer: DocumentObserver | null = null,
    heldLimits: Readonly<HeldLimits> = DEFAULT_HELD_LIMITS
  ) {
    this.held = new HeldUpdates(heldLimits)
    this.relay = new RelayAcks(this, observer, () => (this.inflight.find(item => item.seq !== undefined) ?? this.pending.find(item => item.seq !== undefined))?.seq)
  }

  /** The document was deleted while it loaded: its build stops, and the registry drops it. */
  abandon (): void {
    this.abandoned = true
  }

  /** Changes the lifecycle status; the one place it changes. */
  setStatus (status: DocumentStatus): void {
    this.logger.debug({ from: this.status, to: status }, 'document status')
    this.status = status
  }

  /**
   * The document is stored as the one update `state` (or, a big one, as the causal pieces it is
   * being built from): members answer a first sync with an empty state vector from it until
   * `loadStored` has built the document (stored-sync.ts).
   */
  offerStored (state: Uint8Array | readonly Uint8Array[]): StoredSync {
    const sync = this.storedSync = new StoredSync(state)
    for (const member of this.members) member.storedReady?.()
    return sync
  }

  /**
   * Applies stored updates at load, and takes their client ids' owners; they are not stored again.
   * A big document (SLICED_BUILD_BYTES) is built in slices (slice-build.ts); the document stays
   * `loading` until the last one is applied, and what follows the build here runs once, after it.
   */
  async loadStored (updates: readonly Uint8Array[], owners: readonly ClientOwner[] = []): Promise<void> {
    this.owners.adopt(owners)
    let bytes = 0
    for (const update of updates) bytes += update.byteLength
    // a sliced build of 100 MB takes longer than the stock client's 30 s watchdog: the members'
    // heartbeat sends them keepalives meanwhile (Session.heartbeat)
    try {
      // the pieces answer fresh clients while they build the document, unless another
      // instance's update came first (the pieces would lack it)
      const offer = (pieces: readonly Uint8Array[]): StoredSync | null =>
        this.status === 'loading' && !this.remoteWhileLoading && this.storedSync === null ? this.offerStored(pieces) : null
      const built = bytes >= SLICED_BUILD_BYTES ? await buildInSlices(this.ydoc, updates, this.logger, offer, () => !this.abandoned) : 'whole'
      // deleted while it was built: the registry drops it
      if (built === 'stopped') return
      if (built === 'whole') {
        Y.transact(this.ydoc, () => {
          for (const update of updates) Y.applyUpdate(this.ydoc, update)
        })
      }
    } catch (err) {
      throw new Error(`the stored updates of document ${JSON.stringify(this.name)} cannot be applied: ${(err as Error).message}`, { cause: err })
    }
    this.logUpdates = updates.length
    this.logBytes = bytes
    const { store } = this.ydoc
    const whole = store.pendingStructs === null && store.pendingDs === null
    // stored before the server held such content apart: Yjs would retry it on every update
    this.dropYjsPending('stored content depends on content the store lacks; it is dropped from the document in memory (a compaction from it, below OFF_LOOP_COMPACTION_BYTES, removes it from the store)')
    const served = this.storedSync
    this.storedSync = null
    if (served === null) return
    served.built(this.ydoc, this.remoteWhileLoading, member => this.members.has(member))
    // still the document's whole state: it answers fresh clients until the document changes
    // (clients reloading after a deploy come within seconds; the bytes are not kept for longer)
    if (!whole || this.remoteWhileLoading) return
    this.storedSync = served
    setTimeout(() => { if (this.storedSync === served) this.storedSync = null }, STORED_SYNC_KEEP_MS).unref()
  }

  /**
   * About how large the document is encoded: what was loaded or last compacted, and what was
   * stored since (state-sync.ts sends a large one in pieces).
   */
  get storedBytes (): number {
    return this.snapshotBytes + this.logBytes
  }

  /**
   * Runs `run` once the document is built and ready, before a release may unload it (the
   * registry calls `loaded()`); never when the load fails. At once when it is built already.
   */
  afterLoad (run: () => void): void {
    if (this.loadedHooks === null) {
      if (this.status === 'ready') run()
      return
    }
    this.loadedHooks.push(run)
  }

  /** The load ended, and the document is ready: runs what waited for it (afterLoad). */
  loaded (): void {
    const hooks = this.loadedHooks ?? []
    this.loadedHooks = null
    for (const run of hooks) run()
  }

  /** Number of updates held until content they depend on arrives. */
  get heldUpdates (): number {
    return this.held.size
  }

  /**
   * Validates and applies an update sent by `from`. Throws TANDEM_ERR_INVALID_UPDATE, leaving the
   * document untouched, when the bytes are not a Yjs update, and TANDEM_ERR_CLIENT_ID_TAKEN (or
   * _IN_USE) when it adds content under a client id another owns. A frame that changes nothing is
   * acknowledged once every update applied before it is stored: its content may be one of them
   * (a client's step 2 after a reconnect repeats what its dropped socket had sent), so an earlier
   * acknowledgement could promise what a crash would still lose.
   *
   * Every update path calls this (WebSocket sessions, the HTTP API, in-process edits). While a
   * `y:` lock is held, the changes the update makes inside types guarded by another session's
   * lock are undone at once (enforced-locks.ts); the rest takes effect. Returns the lock that
   * refused a part (its holder) when that happened, else null: a caller answers with
   * TANDEM_ERR_LOCKED (`new LockedError(holder)`). A plain value, not an Error: capturing a stack
   * per refused update would cost more than the check. `readOnly` undoes every change: a
   * read-only session's edit, so that its own screen converges too.
   */
  applyUpdate (update: Uint8Array, from: DocumentMember, readOnly = false): LockInfo | null {
    const { decoded, needs, clients } = this.check(update, from)
    if (needs.size > 0) {
      // a read-only session's edit is only undone when it integrates whole (its caller checks)
      if (!readOnly) this.hold(update, needs, from)
      return null
    }
    const refusedBy = this.integrateFrom(update, decoded, clients, from, null, readOnly)
    this.releaseHeld()
    return refusedBy
  }

  /**
   * Validates an update against the document: decodes it, checks its references (update-guard.ts)
   * and finds what it needs that the document lacks (update-deps.ts), and the client ids whose new
   * content it carries (newClients). Throws TANDEM_ERR_INVALID_UPDATE when it is not a consistent
   * Yjs update, TANDEM_ERR_CLIENT_ID_TAKEN (or _IN_USE) when it adds content under another's id.
   */
  private check (update: Uint8Array, from: DocumentMember): { decoded: ReturnType<typeof Y.decodeUpdate>, needs: Needs, clients: number[] } {
    let decoded: ReturnType<typeof Y.decodeUpdate>
    try {
      decoded = Y.decodeUpdate(update)
    } catch (err) {
      throw new TandemError('TANDEM_ERR_INVALID_UPDATE', (err as Error).message, { cause: err })
    }
    if (this.retired !== null) {
      for (const struct of decoded.structs) {
        if (this.retired.has(struct.id.client)) {
          throw new TandemError('TANDEM_ERR_DOCUMENT_DELETED', `the update holds content of a deleted generation of this document (client ${struct.id.client})`)
        }
      }
    }
    // an update writing under another user's client id would take that client's next ids
    const clients = this.newClients(decoded.structs, from)
    // Yjs trusts its peers; a forged update could corrupt the document for everyone
    const inconsistency = findInconsistency(this.ydoc, decoded)
    if (inconsistency !== null) throw new TandemError('TANDEM_ERR_INVALID_UPDATE', inconsistency)
    try {
      return { decoded, needs: findNeeds(this.ydoc, decoded), clients }
    } catch (err) {
      if (err instanceof CyclicUpdateError) throw new TandemError('TANDEM_ERR_INVALID_UPDATE', err.message)
      throw err
    }
  }

  /**
   * Holds an update that depends on content the document lacks, outside Yjs (which would retry it
   * on every later update), unacknowledged, and asks its sender for the missing content: a sync
   * step 1 with the document's state, which the stock client answers with a step 2 holding
   * everything the server lacks. Past the held limits the frame is refused with
   * TANDEM_ERR_UPDATE_INCOMPLETE (1013: reconnecting syncs the client in full).
   */
  private hold (update: Uint8Array, needs: Needs, from: DocumentMember): void {
    const refusal = this.held.refusal(from, update.byteLength)
    if (refusal !== null) throw new TandemError('TANDEM_ERR_UPDATE_INCOMPLETE', refusal)
    // a copy: the frame may be a view into a larger receive buffer
    const now = Date.now()
    this.held.add({ update: update.slice(), owner: from, ticket: from.hold(), needs, at: now })
    this.meter?.held()
    const askedAt = this.askedAt ??= new Map()
    if (now - (askedAt.get(from) ?? -Infinity) < ASK_INTERVAL_MS) return
    askedAt.set(from, now)
    this.logger.debug({ needs: needs.size }, 'update held: asking its sender for the content it depends on')
    from.send(writeSyncStep1(Y.encodeStateVector(this.ydoc)))
  }

  /**
   * Applies the held updates whose needs the document now meets, in arrival order, until none is
   * ready. Each held update is applied once: its needs were fixed when it came.
   */
  private releaseHeld (): void {
    if (this.held.size === 0) return
    const state = (client: number): number => Y.getState(this.ydoc.store, client)
    for (let ready = this.held.takeReady(state); ready.length > 0; ready = this.held.takeReady(state)) {
      for (const held of ready) this.applyHeld(held)
    }
  }

  /**
   * Drops the updates `member` has held, and tells how many: one that left can be asked for
   * nothing, and its heartbeat no longer expires them (Session.applyLeftBehind).
   */
  dropHeld (member: DocumentMember): number {
    this.askedAt?.delete(member)
    return this.held.dropOwner(member)
  }

  /**
   * Closes `member` (TANDEM_ERR_UPDATE_INCOMPLETE, 1013) when its oldest held update has waited
   * longer than the held limits allow: what it depends on never came, though the sender was
   * asked. Called on the member's heartbeat tick.
   */
  expireHeld (member: DocumentMember, now: number = Date.now()): void {
    const oldest = this.held.oldest(member)
    if (oldest === null || now - oldest <= this.held.maxAgeMs) return
    member.fail(new TandemError('TANDEM_ERR_UPDATE_INCOMPLETE', `an update waited ${now - oldest} ms for content the server lacks (at most ${this.held.maxAgeMs} ms)`))
  }

  private applyHeld (held: Held<DocumentMember, AckTicket>): void {
    if (!this.members.has(held.owner)) return
    try {
      // checked again: the ids it writes under may have been claimed while it waited
      const { decoded, needs, clients } = this.check(held.update, held.owner)
      if (needs.size > 0) {
        // cannot happen (its needs are met); held again rather than handed to Yjs
        this.held.add({ ...held, needs })
        return
      }
      const refusedBy = this.integrateFrom(held.update, decoded, clients, held.owner, held.ticket, false)
      if (refusedBy !== null) held.owner.locked?.(refusedBy)
    } catch (err) {
      const error = err instanceof TandemError ? err : new TandemError('TANDEM_ERR_INVALID_UPDATE', String(err), { cause: err })
      held.owner.fail(error)
    }
  }

  /**
   * Applies a checked update that needs nothing the document lacks, undoing what the `y:` locks
   * (or read-only access) forbid; settles, stores and relays it. Returns the lock that refused a
   * part, or null. A read-only member's frame is settled by the member itself (refused).
   */
  private integrateFrom (update: Uint8Array, decoded: ReturnType<typeof Y.decodeUpdate>, clients: readonly number[], from: DocumentMember, ticket: AckTicket | null, readOnly: boolean): LockInfo | null {
    // the one check on the hot path: no lock on a type and a writer, the update goes as it came
    const rule: Rule | null = readOnly ? { kind: 'read-only' } : this.guards.active ? { kind: 'locks', guards: this.guards, sessionId: from.id ?? null } : null
    let changes: Uint8Array | null
    let reverted = false
    let refusedBy: LockInfo | null = null
    try {
      if (rule === null) changes = integrate(this.ydoc, update, decoded.structs, from)
      else {
        const enforced = applyEnforced(this.ydoc, rule, decoded, from, () => integrate(this.ydoc, update, decoded.structs, from))
        changes = enforced.changes
        reverted = enforced.reverted
        refusedBy = enforced.refusedBy
        if (reverted) from.undone?.(enforced.revertBytes)
      }
    } catch (err) {
      // it may have changed the document before it failed
      this.storedSync = null
      throw new TandemError('TANDEM_ERR_INVALID_UPDATE', (err as Error).message, { cause: err })
    } finally {
      this.dropYjsPending('an update left content pending despite its check; the pending part is dropped')
    }
    const owners: ClientOwner[] = []
    // claimed once applied (a no-op claims them in memory only, as nothing is stored). An
    // anonymous connection claims only the id it announces in awareness: its updates may carry
    // another tab's content, passed to it over BroadcastChannel, which is no proof of authorship
    if (from.durableOwner) for (const client of clients) this.owners.claim(client, from.clientOwner, changes !== null, owners)
    if (changes === null) {
      if (readOnly) return null
      const tail = this.pending[this.pending.length - 1] ?? this.inflight[this.inflight.length - 1]
      const settlement: Settlement = { member: from, ticket, barrier: this.relay.position }
      if (tail !== undefined) (tail.also ??= []).push(settlement)
      else this.relay.settle(settlement)
      return null
    }
    const origin = readOnly ? null : from
    // the stored bytes are no longer the document's state
    this.storedSync = null
    const item: PendingUpdate = owners.length === 0 ? { update: changes, origin, ticket, barrier: this.relay.position } : { update: changes, origin, ticket, owners, barrier: this.relay.position }
    this.pending.push(item)
    this.onPending(this)
    // an undone change goes back to its author too: the revert is what brings it back
    this.turns.relay(changes, reverted ? null : from)
    this.relay.publish(item)
    return refusedBy
  }

  /**
   * The client ids whose new content (past what the document holds) `structs` carry. Throws
   * TANDEM_ERR_CLIENT_ID_TAKEN (TANDEM_ERR_CLIENT_ID_IN_USE for an anonymous member) when
   * another owns one: that would take its next ids. Content the document holds already is a
   * no-op whoever sends it (a client syncing passes on what it received from others), and
   * deletions of anyone's content are edits like any other.
   */
  private newClients (structs: ReturnType<typeof Y.decodeUpdate>['structs'], from: DocumentMember): number[] {
    const clients: number[] = []
    let client = -1
    let state = 0
    for (const struct of structs) {
      if (struct instanceof Y.Skip) continue
      const id = struct.id
      if (id.client !== client) {
        client = id.client
        state = Y.getState(this.ydoc.store, client)
      }
      if (id.clock + struct.length <= state || clients[clients.length - 1] === client) continue
      const owner = this.owners.owner(client)
      if (owner !== undefined && owner !== from.clientOwner) {
        const code = from.durableOwner ? 'TANDEM_ERR_CLIENT_ID_TAKEN' : 'TANDEM_ERR_CLIENT_ID_IN_USE'
        throw new TandemError(code, `client id ${client} belongs to ${from.durableOwner ? 'another user' : 'another connection'}`)
      }
      clients.push(client)
    }
    return clients
  }

  /**
   * Takes out what Yjs keeps pending from session updates: content that waits there is merged and
   * retried on every later update, and would be written into snapshots. Only a mismatch between
   * findNeeds and Yjs, or content stored before held updates existed, can leave any; other
   * instances' updates (applyRemote) may wait there legitimately and are left alone.
   */
  private dropYjsPending (why: string): void {
    const { store } = this.ydoc
    if (store.pendingStructs === null && store.pendingDs === null) return
    if (this.remotePending) return
    this.logger.warn({ structs: store.pendingStructs?.update.byteLength ?? 0, deletes: store.pendingDs?.byteLength ?? 0 }, why)
    store.pendingStructs = null
    store.pendingDs = null
  }

  /** True once an update from another instance left content pending in Yjs. */
  private remotePending = false

  /**
   * Applies an update that was stored elsewhere (another instance), with the owners of the
   * client ids it claimed there; relayed at once. Returns whether it changed anything (or left
   * content pending in Yjs).
   */
  applyRemote (update: Uint8Array, owners: readonly ClientOwner[] = []): boolean {
    const changed = this.integrateRemote(update, owners)
    this.releaseHeld()
    return changed
  }

  /** applyRemote without releasing the updates held for what it brought. */
  private integrateRemote (update: Uint8Array, owners: readonly ClientOwner[]): boolean {
    if (this.status === 'loading') {
      this.remoteWhileLoading = true
      // members served the pieces so far are relayed this update; later ones wait for the build
      if (this.storedSync?.piecewise === true) this.storedSync = null
    }
    this.owners.adopt(owners)
    // while it loads the stored bytes stay what they are (stored-sync.ts: built); after, they are stale
    if (this.status !== 'loading') this.storedSync = null
    const changes = integrate(this.ydoc, update, null, REMOTE)
    const { store } = this.ydoc
    this.remotePending = store.pendingStructs !== null || store.pendingDs !== null
    // while a big document builds, what waits in Yjs for pieces not applied yet integrates
    // silently when they are, and no `built` step sends it to the members served the pieces
    // (the only ones relayed to during the load): they are relayed the update as it came, which
    // their clients hold until their pieces bring what it needs
    if (this.status === 'loading' && this.remotePending) this.turns.relay(update, null)
    else if (changes !== null) this.turns.relay(changes, null)
    return changes !== null || this.remotePending
  }

  /**
   * Applies an update another instance (`node`) relayed before storing it, relayed here at once.
   * Until `node` confirms it stored it (`relayStored`), whatever this instance acknowledges after
   * it waits, as for this instance's own updates.
   */
  applyRelayed (node: string, seq: number, update: Uint8Array, owners: readonly ClientOwner[] = []): void {
    if (this.integrateRemote(update, owners)) this.relay.add(node, seq, update, owners)
    // after the add: an update held for this content, released now, builds on it and so waits
    // for its confirmation before it is acknowledged
    this.releaseHeld()
  }

  /** `node` stored every update it relayed here with a sequence number up to `seq`. */
  relayStored (node: string, seq: number): void {
    this.relay.relayStored(node, seq)
  }

  /**
   * Stores here the updates `node` (every node when null) relayed and has not confirmed: it is
   * gone, or messages were lost. They may be stored twice, which changes nothing (Yjs updates
   * apply once); acknowledgements waiting for them go once they are.
   */
  storeUnconfirmed (node: string | null): void {
    const unconfirmed = this.relay.takeUnconfirmed(node)
    if (unconfirmed === null) return
    const { update, owners, taken } = unconfirmed
    this.pending.push(owners.length === 0 ? { update, origin: null, ticket: null, barrier: 0, confirms: taken } : { update, origin: null, ticket: null, barrier: 0, confirms: taken, owners })
    this.onPending(this)
  }

  /** Updates other instances relayed here that are not known stored yet. */
  get unconfirmedUpdates (): number {
    return this.relay.size
  }

  /** Relays a frame to every member but `except`. */
  broadcast (frame: Uint8Array, except: DocumentMember | null = null): void {
    const shared = new SharedFrame(frame)
    for (const member of this.members) if (member !== except) member.relay(shared)
    // counted once: one frame to every member but the sender
    this.meter?.sent(frame, except !== null && this.members.has(except) ? this.members.size - 1 : this.members.size)
  }

  /** Applies a member's awareness update and relays what changed to the others. */
  applyAwareness (update: Uint8Array, from: DocumentMember): void {
    const { members, peers } = this.awareness.applyFrom(from, update)
    if (members !== null) this.broadcast(writeAwareness(members), from)
    if (peers !== null) this.observer?.awareness(this, peers)
  }

  /** Adds a member: it receives every relay from now on. */
  addMember (member: DocumentMember): void {
    this.awareness.register(member)
  }

  /**
   * Removes the member and the awareness states it controlled, telling the others at once. An
   * anonymous member's client ids are free again: nothing tells its next connection from another.
   */
  removeMember (member: DocumentMember): void {
    if (!member.durableOwner) this.owners.releaseClaims(member.clientOwner, this.awareness.claimedBy(member))
    this.awareness.unregister(member)
    // nothing held was acknowledged; a client that reconnects syncs it again
    this.held.dropOwner(member)
    this.askedAt?.delete(member)
    const relay = this.awareness.removeOwnedBy(member)
    if (relay === null) return
    this.broadcast(writeAwareness(relay))
    this.observer?.awareness(this, relay)
  }

  /** True while some update is not yet stored (waiting, or being written). */
  get hasPending (): boolean {
    return this.pending.length > 0 || this.inflight.length > 0
  }

  /** Resolves once every update applied so far is stored (other instances' included). */
  whenStored (): Promise<void> {
    const barrier = this.relay.position
    const local = this.hasPending ? new Promise<void>(resolve => this.storedWaiters.push(resolve)) : Promise.resolve()
    return this.relay.after(barrier, local)
  }

  /** `authors[i]` wrote `entries[i]`; none for a read-only member's undone edit (it changed nothing). */
  takePending (): { entries: Uint8Array[], authors: Array<string | undefined>, owners: ClientOwner[], batch: PendingUpdate[] } | null {
    if (this.pending.length === 0) return null
    const batch = this.pending
    this.pending = []
    this.inflight = batch
    return { entries: batch.map(item => item.update), authors: batch.map(item => item.origin?.author), owners: ownersOf(batch), batch }
  }

  stored (batch: PendingUpdate[]): void {
    if (this.inflight === batch) this.inflight = []
    for (const item of batch) {
      this.logUpdates++
      this.logBytes += item.update.byteLength
    }
    this.relay.stored(batch)
    if (!this.hasPending) {
      const waiters = this.storedWaiters
      this.storedWaiters = []
      for (const resolve of waiters) resolve()
    }
  }

  requeue (batch: PendingUpdate[]): void {
    if (this.inflight === batch) this.inflight = []
    this.pending = batch.concat(this.pending)
  }

  /** Frees the Y.Doc. */
  destroy (): void {
    this.loadedHooks = null
    this.storedSync = null
    this.held.clear()
    this.relay.destroy()
    this.askedAt?.clear()
    this.ydoc.destroy()
  }
}
