import type { Logger } from 'pino'
import { Document, type DocumentObserver } from './document.js'
import type { Store } from '../store/store.js'
import type { UpdateWriter } from './writer.js'
import { TandemError } from '../../shared/errors.js'

/**
 * Decides whether a document may load: rejects with TANDEM_ERR_DOCUMENT_DELETED while it is
 * deleted; else resolves with the client ids whose updates it must refuse (purged generations of
 * the name), or null. See deletion.ts.
 */
export type DocumentGate = (name: string) => Promise<ReadonlySet<number> | null>
import { encodeIntegratedState } from './read-only.js'
import { STORED_SYNC_MIN_BYTES, storedSyncWaitMs } from './stored-sync.js'
import { PIECEWISE_SYNC_BYTES } from '../session/state-sync.js'

/**
 * A document at least this large (stored bytes) is compacted by the store alone, off the event
 * loop: no snapshot of the in-memory document is encoded for it.
 */
export const OFF_LOOP_COMPACTION_BYTES = 512 * 1024

/** Thresholds after which a document's update log is folded into one snapshot. */
export interface CompactionLimits {
  compactAfterUpdates: number
  compactAfterBytes: number
}

/**
 * How loaded documents stay in step with other instances (scale-out). Besides observing each
 * document, it hears about a document before it loads (so nothing published meanwhile is
 * missed), once it has loaded (to catch up from peers), and after it unloads.
 */
export interface Replication extends DocumentObserver {
  /** Start hearing about `name`; resolves once messages about it are heard. */
  attach (name: string): Promise<void>
  /** The document loaded from the store: ask peers for what the store did not have yet. */
  loaded (doc: Document): void
  /** Stop hearing about `name`. */
  detach (name: string): void
}

/**
 * The documents loaded in this process. A document is loaded once however many sessions join
 * while it loads, and unloaded when its last member leaves and its updates are stored.
 */
export class DocumentRegistry {
  private readonly docs = new Map<string, Document>()
  private readonly loads = new Map<Document, Promise<void>>()
  private readonly compacting = new Set<Document>()
  /** Documents past a compaction threshold, compacted one per event-loop turn, oldest first. */
  private readonly compactQueue = new Set<Document>()
  private compactScheduled = false
  private readonly unloads = new Set<Promise<void>>()
  /** Documents a member left while they loaded: released again once loaded. */
  private readonly leftWhileLoading = new Set<Document>()

  constructor (
    private readonly store: Store,
    private readonly writer: UpdateWriter,
    private readonly limits: CompactionLimits,
    private readonly logger: Logger,
    private readonly replication: Replication | null = null,
    private readonly gate: DocumentGate | null = null,
    /** Runs while a document loads, beside the store's read (the guards of its `y:` locks). */
    private readonly prepare: ((doc: Document) => Promise<void>) | null = null
  ) {}

  /** The loaded document of that name, if any. */
  get (name: string): Document | undefined {
    return this.docs.get(name)
  }

  /** Every loaded document. */
  all (): IterableIterator<Document> {
    return this.docs.values()
  }

  /** Number of loaded documents. */
  get size (): number {
    return this.docs.size
  }

  /** True when opening `name` would load one document more than `max` (0: no limit). */
  atLimit (name: string, max: number): boolean {
    return max > 0 && !this.docs.has(name) && this.docs.size >= max
  }

  /**
   * The document of that name, loading it if needed. The returned promise resolves once it is
   * loaded; it rejects if the store cannot load it (the document is then forgotten).
   */
  open (name: string): { doc: Document, loaded: Promise<void> } {
    let doc = this.docs.get(name)
    if (doc !== undefined && doc.status === 'unloading') doc.setStatus('ready')
    if (doc === undefined) {
      const created = new Document(name, this.logger.child({ doc: name }), d => this.onPending(d), this.replication)
      doc = created
      this.docs.set(name, created)
      const { replication } = this
      // subscribe first, then read the store: an update stored meanwhile is heard or read, or both
      const attached = replication === null ? Promise.resolve() : replication.attach(name)
      const { gate, store } = this
      const prepared = this.prepare === null ? Promise.resolve() : this.prepare(created)
      // awaited below; handled now so that a failure before the store answers is not unhandled
      prepared.catch(() => {})
      const read = attached.then(() => {
        const stored = Promise.all([gate?.(name) ?? null, store.load(name)])
        const owners = Promise.resolve(store.loadOwners?.(name) ?? [])
        // awaited below; handled now so that a failure before the updates are read is not unhandled
        owners.catch(() => {})
        // a document stored as one big update answers a fresh client's first sync with its bytes
        // as soon as they are read, before the owners are read and the document is built
        return stored.then(async ([retired, updates]) => {
          const offered = this.offerStored(created, updates)
          return [retired, updates, await owners, await offered] as const
        })
      })
      const failed = (err: unknown): never => {
        this.leftWhileLoading.delete(created)
        created.setStatus('failed')
        if (this.docs.get(name) === created) {
          this.docs.delete(name)
          replication?.detach(name)
        }
        created.destroy()
        throw err
      }
      const loaded = read.then(async ([retired, updates, owners]) => {
        await prepared
        // deleted while it loaded (evict): it must not become ready
        if (this.docs.get(name) !== created) this.dropDeleted(created)
        created.retired = retired
        // stored bytes Yjs cannot apply: the document is forgotten, as when the store fails
        await created.loadStored(updates, owners).catch(failed)
        // deleted while it was built in slices
        if (this.docs.get(name) !== created) this.dropDeleted(created)
        created.setStatus('ready')
        replication?.loaded(created)
        // what members that left meanwhile sent (Session.end) is applied before it may unload
        created.loaded()
        // a member left while it loaded: release() could not unload it then, and no other
        // member may ever come to leave it again
        if (this.leftWhileLoading.delete(created)) this.release(created)
      }, failed).finally(() => this.loads.delete(created))
      this.loads.set(created, loaded)
    }
    return { doc, loaded: this.loads.get(doc) ?? Promise.resolve() }
  }

  /** A document deleted while it loaded is forgotten (nothing else holds it), and its load rejects. */
  private dropDeleted (doc: Document): never {
    this.leftWhileLoading.delete(doc)
    doc.setStatus('unloaded')
    doc.destroy()
    throw new TandemError('TANDEM_ERR_DOCUMENT_DELETED')
  }

  /**
   * Call when a member left: unloads the document once it has no member and everything is
   * stored. A document still loading is released again when its load ends.
   */
  release (doc: Document): void {
    if (doc.members.size > 0) return
    if (doc.status === 'loading') this.leftWhileLoading.add(doc)
    if (doc.status !== 'ready') return
    doc.setStatus('unloading')
    const unload = this.unload(doc).catch((err: unknown) => {
      doc.logger.error({ err }, 'unload failed')
    }).finally(() => this.unloads.delete(unload))
    this.unloads.add(unload)
  }

  /**
   * Forgets the document of that name at once (it was deleted): a later `open` loads it afresh,
   * through the gate. Its members are the caller's to close; updates it still has pending are
   * stored, then it is destroyed. Returns the document, or undefined when it was not loaded.
   */
  evict (name: string): Document | undefined {
    const doc = this.docs.get(name)
    if (doc === undefined) return undefined
    this.docs.delete(name)
    this.compactQueue.delete(doc)
    this.replication?.detach(name)
    // not 'ready': release() leaves it alone, and a load under way sees it was evicted (and
    // stops building it)
    if (doc.status === 'loading') {
      doc.abandon()
      return doc
    }
    doc.setStatus('unloading')
    const unload = doc.whenStored().then(() => {
      doc.setStatus('unloaded')
      doc.destroy()
    }).finally(() => this.unloads.delete(unload))
    this.unloads.add(unload)
    return doc
  }

  /** Resolves when every unload under way has finished. */
  async settled (): Promise<void> {
    while (this.unloads.size > 0) await Promise.all(this.unloads)
  }

  private async unload (doc: Document): Promise<void> {
    await doc.whenStored()
    if (doc.status !== 'unloading') return // someone joined meanwhile
    if (doc.logUpdates > 1) await this.compact(doc)
    if (doc.status !== 'unloading' || doc.hasPending) return
    // an evicted document is no longer the registry's (another of that name may be loaded)
    if (this.docs.get(doc.name) !== doc) return
    this.docs.delete(doc.name)
    this.replication?.detach(doc.name)
    doc.setStatus('unloaded')
    doc.destroy()
  }

  /**
   * Offers a document's stored state to answer first syncs while it is built (stored-sync.ts),
   * when it is one update of at least STORED_SYNC_MIN_BYTES and below PIECEWISE_SYNC_BYTES (a
   * bigger one goes out in pieces, from the built document, so that no message holds the stock
   * client past its watchdog). The promise resolves once the build
   * may start: the members have sent their first frames and their answers are written, or the
   * wait for it ran out.
   */
  private offerStored (doc: Document, updates: readonly Uint8Array[]): Promise<void> | null {
    const only = updates.length === 1 ? updates[0] : undefined
    if (only === undefined || only.byteLength < STORED_SYNC_MIN_BYTES || only.byteLength >= PIECEWISE_SYNC_BYTES || this.docs.get(doc.name) !== doc) return null
    return doc.offerStored(only).settle(() => doc.members, storedSyncWaitMs(only.byteLength))
  }

  private onPending (doc: Document): void {
    this.writer.schedule(doc)
    if (doc.logUpdates >= this.limits.compactAfterUpdates || doc.logBytes >= this.limits.compactAfterBytes) {
      // never inside the update being applied, and never many at once: documents under the same
      // load cross their thresholds together, and compacting a hundred in one turn stalls every
      // relay behind them for hundreds of milliseconds
      if (this.compacting.has(doc) || this.compactQueue.has(doc)) return
      this.compactQueue.add(doc)
      this.scheduleCompaction()
    }
  }

  private scheduleCompaction (): void {
    if (this.compactScheduled || this.compactQueue.size === 0) return
    this.compactScheduled = true
    setImmediate(this.compactNext)
  }

  private readonly compactNext = (): void => {
    const doc = this.compactQueue.values().next().value
    if (doc === undefined) {
      this.compactScheduled = false
      return
    }
    this.compactQueue.delete(doc)
    const skip = doc.status !== 'ready' && doc.status !== 'unloading'
    const done = skip ? Promise.resolve() : this.compact(doc)
    done.catch((err: unknown) => doc.logger.error({ err }, 'compaction failed')).finally(() => {
      this.compactScheduled = false
      this.scheduleCompaction()
    })
  }

  private async compact (doc: Document): Promise<void> {
    if (this.compacting.has(doc)) return
    this.compacting.add(doc)
    try {
      const before = doc.logUpdates
      // the in-memory state holds every update this process stored (a shared store ignores it)
      if (doc.storedBytes >= OFF_LOOP_COMPACTION_BYTES) {
        // encoding a big document here would hold up every relay for as long (a second per
        // 30 MB): the store folds its rows where it runs (the SQLite worker thread)
        const storedBytes = doc.storedBytes
        await this.store.compact(doc.name)
        doc.snapshotBytes = storedBytes
        doc.logBytes = 0
      } else {
        let snapshotBytes = doc.storedBytes
        await this.store.compact(doc.name, () => {
          const snapshot = encodeIntegratedState(doc.ydoc)
          snapshotBytes = snapshot.byteLength
          return snapshot
        })
        doc.snapshotBytes = snapshotBytes
        doc.logBytes = 0
      }
      // updates stored while compacting are still separate rows
      doc.logUpdates = Math.max(1, doc.logUpdates - before + 1)
      doc.logger.debug({ updates: before }, 'compacted')
    } finally {
      this.compacting.delete(doc)
    }
  }
}
