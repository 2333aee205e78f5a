import * as Y from 'yjs'
import type { Logger } from 'pino'
import { AwarenessRegistry } from './awareness.js'
import { findInconsistency } from './update-guard.js'
import { integrate } from './integrate.js'
import { mergeUpdates } from './merge.js'
import { TandemError } from '../../shared/errors.js'
import { writeSyncUpdate, writeAwareness } from '../../shared/messages.js'
import type { WriterSource } from './writer.js'
import type { Meter } from '../observability/metrics.js'
import { SharedFrame } from '../transport/socket.js'

/** What a document needs of a session: a way to send, and to hear that its updates are stored. */
export interface DocumentMember {
  send (frame: Uint8Array): void
  /** Sends a broadcast's frame, which the document counts itself (once per broadcast). */
  relay (frame: SharedFrame): void
  /** `count` sync frames of this member are now stored (or were no-ops). */
  acknowledge (count: number): void
}

/**
 * Hears what other instances must learn about a document (scale-out): updates once stored, and
 * awareness changes (clocks assigned) once applied.
 */
export interface DocumentObserver {
  stored (doc: Document, update: Uint8Array): void
  awareness (doc: Document, update: Uint8Array): void
}

const REMOTE = Symbol('remote')

interface PendingUpdate {
  update: Uint8Array
  /** The member that sent it: one of its sync frames is acknowledged once this is stored. */
  origin: DocumentMember
  /** Members whose no-op frames wait for this update (and so everything before it) to be stored. */
  also?: DocumentMember[]
}

/** Lifecycle of a loaded document, changed only by setStatus. */
export type DocumentStatus = 'loading' | 'ready' | 'unloading' | 'unloaded' | 'failed'

/** An applied update waiting for the end of the event-loop turn to be relayed. */
interface QueuedRelay {
  update: Uint8Array
  origin: DocumentMember | null
}

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
  readonly ydoc = new Y.Doc({ gc: true })
  readonly awareness = new AwarenessRegistry()
  readonly members = new Set<DocumentMember>()
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
  private pending: PendingUpdate[] = []
  /** The batch the writer is storing now: applied and relayed, not durable yet. */
  private inflight: PendingUpdate[] = []
  private storedWaiters: Array<() => void> = []
  /** A relay went out this turn; later ones wait in `relayQueue` for the turn's end. */
  private relayedThisTurn = false
  private relayQueue: QueuedRelay[] = []

  constructor (
    readonly name: string,
    readonly logger: Logger,
    private readonly onPending: (doc: Document) => void,
    private readonly observer: DocumentObserver | null = null
  ) {}

  /** Changes the lifecycle status; the one place it changes. */
  setStatus (status: DocumentStatus): void {
    this.logger.debug({ from: this.status, to: status }, 'document status')
    this.status = status
  }

  /** Applies stored updates at load; they are not stored again. */
  loadStored (updates: readonly Uint8Array[]): void {
    Y.transact(this.ydoc, () => {
      for (const update of updates) Y.applyUpdate(this.ydoc, update)
    })
    let bytes = 0
    for (const update of updates) bytes += update.byteLength
    this.logUpdates = updates.length
    this.logBytes = bytes
  }

  /**
   * Validates and applies an update sent by `from`. Throws TANDEM_ERR_INVALID_UPDATE, leaving the
   * document untouched, when the bytes are not a Yjs update. A frame that changes nothing is
   * acknowledged once every update applied before it is stored: its content may be one of them
   * (a client's step 2 after a reconnect repeats what its dropped socket had sent), so an earlier
   * acknowledgement could promise what a crash would still lose.
   */
  applyUpdate (update: Uint8Array, from: DocumentMember): void {
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
    // Yjs trusts its peers; a forged update could corrupt the document for everyone
    const inconsistency = findInconsistency(this.ydoc, decoded)
    if (inconsistency !== null) throw new TandemError('TANDEM_ERR_INVALID_UPDATE', inconsistency)
    let changes: Uint8Array | null
    try {
      changes = integrate(this.ydoc, update, decoded.structs, from)
    } catch (err) {
      throw new TandemError('TANDEM_ERR_INVALID_UPDATE', (err as Error).message, { cause: err })
    }
    if (changes === null) {
      const tail = this.pending[this.pending.length - 1] ?? this.inflight[this.inflight.length - 1]
      if (tail !== undefined) (tail.also ??= []).push(from)
      else from.acknowledge(1)
      return
    }
    this.pending.push({ update: changes, origin: from })
    this.onPending(this)
    this.relayUpdate(changes, from)
  }

  /** Applies an update that was stored elsewhere (another instance); relayed at once. */
  applyRemote (update: Uint8Array): void {
    const changes = integrate(this.ydoc, update, null, REMOTE)
    if (changes !== null) this.relayUpdate(changes, null)
  }

  /** Relays an applied update to every member but its origin: now, or merged at the turn's end. */
  private relayUpdate (update: Uint8Array, origin: DocumentMember | null): void {
    if (this.relayedThisTurn) {
      this.relayQueue.push({ update, origin })
      return
    }
    this.relayedThisTurn = true
    setImmediate(this.endTurn)
    this.broadcast(writeSyncUpdate(update), origin)
  }

  /**
   * Relays what waited this turn as one frame: a lone update to everyone but its sender, several
   * merged into one for everyone, senders too (Yjs ignores what it already has).
   */
  private readonly endTurn = (): void => {
    this.relayedThisTurn = false
    const queue = this.relayQueue
    if (queue.length === 0) return
    this.relayQueue = []
    if (queue.length === 1) {
      const { update, origin } = queue[0] as QueuedRelay
      this.broadcast(writeSyncUpdate(update), origin)
    } else {
      this.broadcast(writeSyncUpdate(mergeUpdates(queue.map(item => item.update))))
    }
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
    this.members.add(member)
    this.awareness.register(member)
  }

  /** Removes the member and the awareness states it controlled, telling the others at once. */
  removeMember (member: DocumentMember): void {
    this.members.delete(member)
    const relay = this.awareness.removeOwnedBy(member)
    if (relay === null) return
    this.broadcast(writeAwareness(relay))
    this.observer?.awareness(this, relay)
  }

  /** True while some update is not yet stored (waiting, or being written). */
  get hasPending (): boolean {
    return this.pending.length > 0 || this.inflight.length > 0
  }

  /** Resolves once every update applied so far is stored. */
  whenStored (): Promise<void> {
    if (!this.hasPending) return Promise.resolve()
    return new Promise(resolve => this.storedWaiters.push(resolve))
  }

  takePending (): { entries: Uint8Array[], batch: PendingUpdate[] } | null {
    if (this.pending.length === 0) return null
    const batch = this.pending
    this.pending = []
    this.inflight = batch
    return { entries: batch.map(item => item.update), batch }
  }

  stored (batch: PendingUpdate[]): void {
    if (this.inflight === batch) this.inflight = []
    for (const item of batch) {
      this.logUpdates++
      this.logBytes += item.update.byteLength
    }
    // other instances hear of the batch once it is stored, as one update
    if (this.observer !== null && batch.length > 0) {
      this.observer.stored(this, batch.length === 1 ? (batch[0] as PendingUpdate).update : mergeUpdates(batch.map(item => item.update)))
    }
    for (const item of batch) {
      if (this.members.has(item.origin)) item.origin.acknowledge(1)
      for (const member of item.also ?? []) if (this.members.has(member)) member.acknowledge(1)
    }
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
    this.ydoc.destroy()
  }
}
