import type { AckTicket } from '../session/ack-order.js'
import type { ClientOwner } from './client-owners.js'
import type { Document, DocumentMember, DocumentObserver, PendingUpdate } from './document.js'
import { mergeUpdates } from './merge.js'
import { UnconfirmedUpdates, type UnconfirmedUpdate } from './unconfirmed.js'

/** A member's frame to settle once an update is stored: `ticket` for a frame the document held. */
export interface Settlement {
  member: DocumentMember
  ticket: AckTicket | null
  /** Other instances' relayed updates applied before the frame (a position in `unconfirmed`): stored first. */
  barrier: number
}

/**
 * A document's side of scale-out before the store commit: its applied updates told to other
 * instances at once (the first of a turn on its own, the rest merged at the turn's end), which
 * of them are stored, the updates other instances relayed here until they are known stored
 * (unconfirmed.ts), and the acknowledgements that wait for those, in frame order. The Document
 * owns one and delegates to it; `firstUnstoredSeq` is the relay number of its oldest update not
 * stored yet that was told to other instances (being written first, then waiting).
 */
export class RelayAcks {
  /** Updates other instances relayed here before their store commit, until known stored. */
  private readonly unconfirmed = new UnconfirmedUpdates()
  /** Settlements waiting for other instances' updates applied before them to be stored, in order. */
  private deferred: Settlement[] = []
  private confirmWaiters: Array<{ barrier: number, resolve: () => void }> = []
  /** Updates applied this turn after the first, told to other instances together at the turn's end. */
  private publishQueue: PendingUpdate[] = []
  private publishedThisTurn = false
  /** The last relay sequence number told to other instances, and the last they were told is stored. */
  private lastPublished = 0
  private lastConfirmed = 0

  constructor (
    private readonly doc: Document,
    private readonly observer: DocumentObserver | null,
    private readonly firstUnstoredSeq: () => number | undefined
  ) {}

  /** The position after the last update other instances relayed here: a barrier for what comes after. */
  get position (): number {
    return this.unconfirmed.position
  }

  /** Updates other instances relayed here that are not known stored yet. */
  get size (): number {
    return this.unconfirmed.size
  }

  /** Records an update `node` relayed here (with its relay number `seq`) until it is confirmed. */
  add (node: string, seq: number, update: Uint8Array, owners: readonly ClientOwner[]): void {
    this.unconfirmed.add(node, seq, update, owners)
  }

  /** `node` stored every update it relayed here with a sequence number up to `seq`. */
  relayStored (node: string, seq: number): void {
    if (this.unconfirmed.confirm(node, seq)) this.confirmed()
  }

  /**
   * Takes the updates `node` (every node when null) relayed and has not confirmed, as one update
   * to store here with the owners they claimed, or null when there are none.
   */
  takeUnconfirmed (node: string | null): { update: Uint8Array, owners: ClientOwner[], taken: UnconfirmedUpdate[] } | null {
    const taken = this.unconfirmed.take(node)
    if (taken.length === 0) return null
    const owners = taken.flatMap(entry => entry.owners)
    const update = taken.length === 1 ? (taken[0] as UnconfirmedUpdate).update : mergeUpdates(taken.map(entry => entry.update))
    return { update, owners, taken }
  }

  /** `local` (this instance's updates stored), then every relayed update before `barrier` stored too. */
  after (barrier: number, local: Promise<void>): Promise<void> {
    if (barrier <= this.unconfirmed.confirmedThrough) return local
    return local.then(() => barrier <= this.unconfirmed.confirmedThrough ? undefined : new Promise<void>(resolve => this.confirmWaiters.push({ barrier, resolve })))
  }

  /**
   * A batch of the document's updates is stored: tells other instances, confirms the relayed
   * updates it stored here instead, and settles the frames that waited for it.
   */
  stored (batch: readonly PendingUpdate[]): void {
    // other instances had the updates at once; now they hear they are stored
    this.confirmStored()
    let confirmed = false
    for (const item of batch) {
      if (item.confirms !== undefined && this.unconfirmed.storedHere(item.confirms)) confirmed = true
      if (item.origin !== null) this.settle({ member: item.origin, ticket: item.ticket, barrier: item.barrier })
      for (const settlement of item.also ?? []) this.settle(settlement)
    }
    if (confirmed) this.confirmed()
  }

  /**
   * Settles one frame of a member that is still here, once the other instances' updates applied
   * before it are stored too (it may build on them, or repeat them); in frame order.
   */
  settle (settlement: Settlement): void {
    if (this.deferred.length > 0 || settlement.barrier > this.unconfirmed.confirmedThrough) {
      this.deferred.push(settlement)
      return
    }
    this.deliver(settlement)
  }

  /** Acknowledges (or settles) a frame whose turn has come. */
  private deliver (settlement: Settlement): void {
    const { member, ticket } = settlement
    if (!this.doc.members.has(member)) return
    if (ticket === null) member.acknowledge(1)
    else member.settle(ticket)
  }

  /** Other instances' updates were stored: settles what waited for them, and wakes whenStored. */
  private confirmed (): void {
    const through = this.unconfirmed.confirmedThrough
    let k = 0
    while (k < this.deferred.length && (this.deferred[k] as Settlement).barrier <= through) k++
    if (k > 0) {
      const ready = this.deferred.slice(0, k)
      this.deferred = this.deferred.slice(k)
      // the ready prefix, in order (settle would defer them again behind the ones still waiting)
      for (const settlement of ready) this.deliver(settlement)
    }
    if (this.confirmWaiters.length === 0) return
    const waiting = this.confirmWaiters
    this.confirmWaiters = []
    for (const waiter of waiting) {
      if (waiter.barrier <= through) waiter.resolve()
      else this.confirmWaiters.push(waiter)
    }
  }

  /**
   * Tells other instances about an applied update at once: the first of a turn on its own, the
   * ones after it merged at the turn's end (as local relays are).
   */
  publish (item: PendingUpdate): void {
    if (this.observer === null) return
    if (this.publishedThisTurn) {
      this.publishQueue.push(item)
      return
    }
    this.publishedThisTurn = true
    setImmediate(this.endPublishTurn)
    item.seq = this.lastPublished = this.observer.relayed(this.doc, item.update, item.owners ?? [])
  }

  private readonly endPublishTurn = (): void => {
    this.publishedThisTurn = false
    const queue = this.publishQueue
    if (queue.length === 0 || this.observer === null || this.doc.status === 'unloaded') return
    this.publishQueue = []
    const update = queue.length === 1 ? (queue[0] as PendingUpdate).update : mergeUpdates(queue.map(item => item.update))
    const seq = this.lastPublished = this.observer.relayed(this.doc, update, ownersOf(queue))
    for (const item of queue) item.seq = seq
    // they may all be stored already (a store that answers within the turn)
    this.confirmStored()
  }

  /**
   * Tells other instances which relays are stored: every one before the oldest update not
   * stored yet that was relayed (several updates of a turn share one number: all or none).
   */
  private confirmStored (): void {
    if (this.observer === null) return
    let through = this.lastPublished
    const first = this.firstUnstoredSeq()
    if (first !== undefined) through = first - 1
    if (through <= this.lastConfirmed) return
    this.lastConfirmed = through
    this.observer.stored(this.doc, through)
  }

  /** Drops what waits (the document is freed); whenStored's waiters resolve. */
  destroy (): void {
    this.unconfirmed.clear()
    this.deferred = []
    for (const waiter of this.confirmWaiters) waiter.resolve()
    this.confirmWaiters = []
  }
}

/** The client ids a batch of updates claimed. */
export function ownersOf (batch: readonly PendingUpdate[]): ClientOwner[] {
  const owners: ClientOwner[] = []
  for (const item of batch) if (item.owners !== undefined) owners.push(...item.owners)
  return owners
}
