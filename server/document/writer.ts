import type { Logger } from 'pino'
import type { Store, StoreEntry } from '../store/store.js'
import { TandemError } from '../../shared/errors.js'
import type { ClientOwner } from './client-owners.js'

/** A document as the writer sees it: updates to take, and where to report them stored. */
export interface WriterSource<Batch> {
  readonly name: string
  /**
   * Takes the updates waiting to be stored, with whatever the source needs back, and the client
   * id owners they claimed (stored in the same write).
   */
  takePending (): { entries: Uint8Array[], owners?: readonly ClientOwner[], batch: Batch } | null
  /** The batch is durably stored. */
  stored (batch: Batch): void
  /** The batch failed to store; the source keeps it, in order, for the next try. */
  requeue (batch: Batch): void
}

/** What the writer reports (metrics, analytics); hooks must not throw. */
export interface WriterHooks {
  /** A batch of `entries` updates was stored in `seconds`. */
  onWrite? (entries: number, seconds: number): void
  /** `count` updates of document `name` were stored (once per document per batch). */
  onStored? (name: string, count: number): void
  /** A write failed; it is retried after `retryMs`. */
  onFailure? (err: unknown, retryMs: number): void
  /** A failed write is being tried again. */
  onRetry? (): void
}

const MIN_RETRY_MS = 50
const MAX_RETRY_MS = 5_000
/** A write of fewer updates than this is light load: the next one waits `delayMs` for more. */
const SMALL_WRITE = 16

/**
 * Group commit: updates across all documents are stored together, in one `append` call. Under
 * light load (the last write was small) the first update after a quiet spell waits `delayMs` for
 * others to join it: every update would otherwise be a commit, and a wake-up of the SQLite
 * thread, of its own. While a write is in flight the next batch gathers, and goes as soon as it
 * ends. One write is in flight at a time; a failed write is logged and retried with backoff,
 * never dropped.
 */
export class UpdateWriter {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- each source keeps its own batch type
  private readonly dirty = new Set<WriterSource<any>>()
  private scheduled = false
  private writing = false
  private retryMs = 0
  private retryTimer: NodeJS.Timeout | undefined
  private idleWaiters: Array<() => void> = []
  private closed = false
  /** Updates in the last write: only after a small one does the next wait for company. */
  private lastWriteSize = 0

  constructor (
    private readonly store: Store,
    private readonly logger: Logger,
    private readonly hooks: WriterHooks = {},
    /** How long the first update after a quiet spell waits; 0: the end of this turn. */
    private readonly delayMs = 0
  ) {}

  /** Marks a source as having pending updates; they are stored within `delayMs`, or after the write in flight. */
  schedule<Batch> (source: WriterSource<Batch>): void {
    this.dirty.add(source)
    if (this.scheduled || this.writing || this.retryTimer !== undefined || this.closed) return
    this.scheduled = true
    // a busy writer's batches are big already: waiting would only add to their round trips
    if (this.delayMs > 0 && this.lastWriteSize < SMALL_WRITE) setTimeout(this.run, this.delayMs)
    else setImmediate(this.run)
  }

  /** Resolves once nothing is pending and no write is in flight. */
  idle (): Promise<void> {
    if (this.isIdle()) return Promise.resolve()
    return new Promise(resolve => this.idleWaiters.push(resolve))
  }

  /** True when nothing is pending and no write is in flight. */
  isIdle (): boolean {
    return this.dirty.size === 0 && !this.writing
  }

  /** Stops retrying; pending updates stay where they are. */
  close (): void {
    this.closed = true
    clearTimeout(this.retryTimer)
    this.retryTimer = undefined
  }

  private readonly run = (): void => {
    this.scheduled = false
    this.retryTimer = undefined
    if (this.writing || this.closed) return
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const taken: Array<{ source: WriterSource<any>, batch: unknown, count: number }> = []
    const entries: StoreEntry[] = []
    for (const source of this.dirty) {
      const pending = source.takePending()
      if (pending === null) continue
      taken.push({ source, batch: pending.batch, count: pending.entries.length })
      const first = entries.length
      for (const update of pending.entries) entries.push({ name: source.name, update })
      const owners = pending.owners ?? []
      if (owners.length > 0 && entries[first] !== undefined) entries[first] = { name: source.name, update: (entries[first] as StoreEntry).update, owners }
    }
    this.dirty.clear()
    if (entries.length === 0) return this.settle()
    this.writing = true
    this.lastWriteSize = entries.length
    const started = performance.now()
    this.store.append(entries).then(() => {
      this.retryMs = 0
      this.hooks.onWrite?.(entries.length, (performance.now() - started) / 1000)
      for (const { source, batch, count } of taken) {
        this.hooks.onStored?.(source.name, count)
        source.stored(batch)
      }
    }, (err: unknown) => {
      this.retryMs = Math.min(MAX_RETRY_MS, Math.max(MIN_RETRY_MS, this.retryMs * 2))
      const error = new TandemError('TANDEM_ERR_STORE_FAILED', `${entries.length} updates, retry in ${this.retryMs} ms`, { cause: err })
      this.logger.error({ err: error }, error.message)
      this.hooks.onFailure?.(err, this.retryMs)
      for (const { source, batch } of taken) {
        source.requeue(batch)
        this.dirty.add(source)
      }
    }).finally(() => {
      this.writing = false
      if (this.dirty.size > 0 && !this.closed) {
        if (this.retryMs > 0) {
          this.retryTimer = setTimeout(this.retrying, this.retryMs)
        } else {
          this.scheduled = true
          setImmediate(this.run)
        }
      }
      this.settle()
    })
  }

  private readonly retrying = (): void => {
    this.hooks.onRetry?.()
    this.run()
  }

  private settle (): void {
    if (!this.isIdle()) return
    const waiters = this.idleWaiters
    this.idleWaiters = []
    for (const resolve of waiters) resolve()
  }
}
