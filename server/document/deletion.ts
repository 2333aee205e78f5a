import * as Y from 'yjs'
import type { Logger } from 'pino'
import type { Store } from '../store/store.js'
import { TandemError } from '../../shared/errors.js'

/** What deleting a document does beyond the store: this instance's part, and the others'. */
export interface DeletionHooks {
  /**
   * Closes every connection and in-process handle to `name` here (4404) and unloads it; resolves
   * once the updates it still had pending are stored (they belong to the deleted content).
   */
  evict (name: string): Promise<void>
  /** Tells the other instances to evict `name` too. */
  announce (name: string): void
}

/** The most documents one sweep purges; the next sweep takes the rest. */
const SWEEP_BATCH = 100
/** How often expired documents are looked for, at most (and at least once a second). */
const MAX_SWEEP_MS = 60_000

/**
 * Soft delete with a retention period. `delete` marks the document deleted in the store (its data
 * kept) and evicts it on every instance; while the mark stands, the document does not load (an
 * upgrade gets HTTP 410) and `restore` brings it back exactly as it was. Once the retention period
 * is over, a sweep (or the next attempt to load it) purges its data and the name is free.
 *
 * A client that still holds the deleted content must not bring it back. During the retention
 * period it cannot connect at all. After the purge, a stock client reconnecting to the fresh,
 * empty document would send its old content as its sync step 2; so the purge records the Yjs
 * client ids that wrote the deleted content (its state vector, the "retired" clients) and the
 * fresh document refuses any update holding a struct of theirs: the session is closed with
 * 4404 TANDEM_ERR_DOCUMENT_DELETED, which the stock client does not retry. New clients have new
 * random client ids, so they are not affected.
 */
export class Deletions {
  private timer: NodeJS.Timeout | undefined
  private sweeping: Promise<void> | undefined
  /**
   * Gates in progress by name: the connections of a storm that arrive together for one document
   * (and the load they start) share one read of its tombstone, until the end of the event-loop
   * turn that answered it. A change of the tombstone here drops the entry, so a gate asked after
   * it reads again.
   */
  private readonly gating = new Map<string, Promise<ReadonlySet<number> | null>>()

  constructor (
    private readonly store: Store,
    private readonly retentionMs: number,
    private readonly logger: Logger,
    private readonly hooks: DeletionHooks
  ) {}

  /** Starts the periodic sweep of expired documents. */
  start (): void {
    const every = Math.max(1_000, Math.min(this.retentionMs, MAX_SWEEP_MS))
    this.timer = setInterval(() => { void this.sweep() }, every)
    this.timer.unref()
  }

  /** Stops the sweep; safe to call twice. */
  close (): void {
    clearInterval(this.timer)
    this.timer = undefined
  }

  /**
   * The registry's gate (DocumentGate): rejects with TANDEM_ERR_DOCUMENT_DELETED while `name` is
   * deleted and within retention, purges it first when the retention is over, and resolves with
   * the retired client ids of its purged generations, or null.
   */
  readonly gate = (name: string): Promise<ReadonlySet<number> | null> => {
    let gating = this.gating.get(name)
    if (gating === undefined) {
      const read = this.gateOnce(name)
      gating = read
      this.gating.set(name, read)
      const forget = (): void => { if (this.gating.get(name) === read) this.gating.delete(name) }
      // kept until the end of the event-loop turn that settled it: the admission it answers
      // goes on to open the document, whose load gates the name again at once
      const later = (): void => { setImmediate(forget) }
      read.then(later, later)
    }
    return gating
  }

  private async gateOnce (name: string): Promise<ReadonlySet<number> | null> {
    let tombstone = await this.store.tombstone(name)
    if (tombstone === null) return null
    if (tombstone.deletedAt !== null) {
      if (Date.now() - tombstone.deletedAt < this.retentionMs) throw new TandemError('TANDEM_ERR_DOCUMENT_DELETED')
      await this.purge(name, tombstone.deletedAt, tombstone.retired)
      tombstone = await this.store.tombstone(name)
      if (tombstone === null) return null
      // restored meanwhile, or deleted again
      if (tombstone.deletedAt !== null) throw new TandemError('TANDEM_ERR_DOCUMENT_DELETED')
    }
    return clientsOf(tombstone.retired)
  }

  /** The document was deleted elsewhere (another instance): a tombstone read in flight is stale. */
  forget (name: string): void {
    this.gating.delete(name)
  }

  /** Deletes a document; false when it is deleted already. */
  async delete (name: string): Promise<boolean> {
    this.gating.delete(name)
    const marked = await this.store.markDeleted(name, Date.now())
    // a gate that read the tombstone while it was being written must not be shared any more
    this.gating.delete(name)
    if (!marked) return false
    this.logger.info({ doc: name, retentionMs: this.retentionMs }, 'document deleted')
    this.hooks.announce(name)
    // before answering: a purge (with a short retention) must not run before these rows land
    await this.hooks.evict(name)
    return true
  }

  /** Restores a deleted document within its retention period; false when it is not deleted (or already purged). */
  async restore (name: string): Promise<boolean> {
    this.gating.delete(name)
    const tombstone = await this.store.tombstone(name)
    if (tombstone?.deletedAt == null) return false
    if (Date.now() - tombstone.deletedAt >= this.retentionMs) {
      await this.purge(name, tombstone.deletedAt, tombstone.retired)
      return false
    }
    const restored = await this.store.restore(name)
    this.gating.delete(name)
    if (restored) this.logger.info({ doc: name }, 'document restored')
    return restored
  }

  /** Purges every document whose retention period is over. Resolves when done; never rejects. */
  sweep (): Promise<void> {
    this.sweeping ??= this.sweepOnce().catch((err: unknown) => {
      this.logger.error({ err }, 'purging deleted documents failed; retried at the next sweep')
    }).finally(() => { this.sweeping = undefined })
    return this.sweeping
  }

  private async sweepOnce (): Promise<void> {
    const expired = await this.store.deletedBefore(Date.now() - this.retentionMs, SWEEP_BATCH)
    for (const { name, deletedAt } of expired) {
      const tombstone = await this.store.tombstone(name)
      if (tombstone?.deletedAt === deletedAt) await this.purge(name, deletedAt, tombstone.retired)
    }
  }

  /** Drops the document's data, adding the clients that wrote it to the retired ones. */
  private async purge (name: string, deletedAt: number, retired: Uint8Array): Promise<void> {
    const clients = new Map<number, number>()
    if (retired.byteLength > 0) for (const [client, clock] of Y.decodeStateVector(retired)) clients.set(client, clock)
    for (const update of await this.store.load(name)) {
      for (const [client, clock] of Y.decodeStateVector(Y.encodeStateVectorFromUpdate(update))) {
        clients.set(client, Math.max(clock, clients.get(client) ?? 0))
      }
    }
    if (await this.store.purge(name, deletedAt, Y.encodeStateVector(clients))) {
      this.logger.info({ doc: name, retiredClients: clients.size }, 'deleted document purged')
    }
  }
}

/** The client ids of an encoded state vector (zero bytes: none). */
function clientsOf (stateVector: Uint8Array): ReadonlySet<number> | null {
  if (stateVector.byteLength === 0) return null
  const clients = new Set(Y.decodeStateVector(stateVector).keys())
  return clients.size === 0 ? null : clients
}
