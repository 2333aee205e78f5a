import type * as Y from 'yjs'
import type { Logger } from 'pino'
import type { LockInfo } from '../../shared/tandem.js'
import { parseTypeResource, resolveTypeResource, type SharedType, type TypeTarget } from '../../shared/type-resource.js'
import type { LockChange, LockTable } from '../locks/table.js'

// Enforced locks, part one: which types of a document are guarded. TypeGuards is the set of `y:`
// locks held in one document; EnforcedLocks keeps every loaded document's set in step with the
// lock table. The check and the undo of a guarded change are in enforced-locks.ts.

type Type = SharedType

/** A lock on a shared type (`y:` resource) and the type it names. */
interface Held {
  lock: LockInfo
  target: TypeTarget
}

/**
 * The `y:` locks held in one document: the types the server guards. Kept current by
 * {@link EnforcedLocks} from the lock table's change events, which every instance hears (the
 * Redis table announces every grant and release on its channel), so a lock taken through one
 * instance is enforced on updates arriving at any other.
 */
export class TypeGuards {
  /** Made on the first grant: most documents never have a `y:` lock (an empty map is ~180 bytes). */
  private held: Map<string, Held> | undefined

  /** True while some `y:` lock is held: the one check on the update path when none is. */
  get active (): boolean {
    return this.held !== undefined && this.held.size > 0
  }

  /** A `y:` lock was granted (other resources are ignored: they stay advisory). */
  acquired (lock: LockInfo): void {
    const target = parseTypeResource(lock.resource)
    if (target !== null) (this.held ??= new Map()).set(lock.resource, { lock, target })
  }

  /** A lock was released: forgotten unless a later grant of the resource replaced it. */
  released (lock: LockInfo): void {
    const held = this.held?.get(lock.resource)
    if (held !== undefined && held.lock.token <= lock.token) this.held?.delete(lock.resource)
  }

  /** The guarded locks. */
  list (): LockInfo[] {
    return this.held === undefined ? [] : [...this.held.values()].map(held => held.lock)
  }

  /**
   * Each guarded type the document has now, with its lock. Looked up afresh for every update
   * that is checked (one Map lookup or binary search per lock): a top-level type is replaced by
   * a typed one when someone calls getText on it, a nested one may arrive or be re-created, and a
   * cache would have to check as much to stay right.
   */
  resolve (doc: Y.Doc): Map<Type, LockInfo> {
    const types = new Map<Type, LockInfo>()
    for (const { lock, target } of this.held?.values() ?? []) {
      const type = resolveTypeResource(doc, target)
      if (type !== null) types.set(type, lock)
    }
    return types
  }
}

/** What EnforcedLocks needs of the loaded documents. */
export interface GuardedDocuments {
  /** The guards of a loaded document, if it is loaded. */
  guards (name: string): TypeGuards | undefined
}

/** How long to wait before asking the lock table again for a document's locks. */
const RETRY_LIST_MS = 1_000

/**
 * Keeps every loaded document's TypeGuards in step with the lock table: it subscribes to the
 * table's changes, and fills a document's guards from the table's list when it loads (changes
 * heard meanwhile win over the list, which may be older). When the list cannot be read (Redis is
 * unreachable), the document loads all the same, unguarded but for the changes heard, and the
 * list is asked again every second until it is read or the document unloads: availability first,
 * with an error logged.
 */
export class EnforcedLocks {
  private readonly unsubscribe: () => void
  /** Per document being filled: the resources whose changes were heard meanwhile. */
  private readonly heard = new Map<string, Set<string>>()
  private readonly timers = new Set<ReturnType<typeof setTimeout>>()
  private closed = false

  constructor (
    private readonly locks: LockTable,
    private readonly documents: GuardedDocuments,
    private readonly logger: Logger
  ) {
    this.unsubscribe = locks.subscribe(change => this.changed(change))
  }

  /** Fills the guards of a document that is loading; resolves once they are in place (or given up for now). */
  async prepare (name: string, guards: TypeGuards): Promise<void> {
    const heard = new Set<string>()
    this.heard.set(name, heard)
    try {
      const locks = await this.locks.list(name)
      for (const lock of locks) if (!heard.has(lock.resource)) guards.acquired(lock)
      if (this.heard.get(name) === heard) this.heard.delete(name)
    } catch (err) {
      this.logger.error({ err, doc: name }, 'cannot read the locks of a document: its y: locks are not enforced until they are read')
      this.retry(name, guards)
    }
  }

  /** Stops listening and retrying. Safe to call twice. */
  close (): void {
    this.closed = true
    this.unsubscribe()
    for (const timer of this.timers) clearTimeout(timer)
    this.timers.clear()
  }

  private retry (name: string, guards: TypeGuards): void {
    if (this.closed) return
    const timer = setTimeout(() => {
      this.timers.delete(timer)
      // unloaded (or loaded again, with guards of its own) meanwhile: nothing to fill
      if (this.closed || this.documents.guards(name) !== guards) return
      void this.prepare(name, guards)
    }, RETRY_LIST_MS)
    timer.unref?.()
    this.timers.add(timer)
  }

  private changed (change: LockChange): void {
    this.heard.get(change.doc)?.add(change.lock.resource)
    const guards = this.documents.guards(change.doc)
    if (guards === undefined) return
    if (change.event === 'acquired') guards.acquired(change.lock)
    else guards.released(change.lock)
  }
}
