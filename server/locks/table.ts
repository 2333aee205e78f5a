// A little over 350 lines: the LockTable interface with its in-memory implementation, which is
// the reference the Redis one (redis-table.ts) is tested against by the same contract suite.
import { validateResourceName } from '../../shared/resource-name.js'
import { TandemError } from '../../shared/errors.js'
import { LockDeniedError } from '../../shared/lock-denied-error.js'
import type { LockInfo, LockReleaseReason } from '../../shared/tandem.js'

/** Who asks for a lock: a session (its id is stable across resumes) and its user. */
export interface LockOwner {
  sessionId: string
  userId: string
  name: string
  color: string
}

/** How long a lock is leased, and how long a request may queue. */
export interface AcquireOptions {
  /** Lease; the holder's server renews it while the session lives. */
  ttlMs: number
  /** 0 refuses at once when the lock is held; more queues the request in order. */
  waitMs: number
  /** Called once if the request joins the queue (the lock was held): the `waited` metric. */
  onQueued?: () => void
}

/** A lock taken over by {@link LockTable.adopt}, with its lease. */
export interface AdoptedLock {
  lock: LockInfo
  ttlMs: number
}

/** A change to the locks of a document. */
export type LockChange =
  | { doc: string, event: 'acquired', lock: LockInfo }
  | { doc: string, event: 'released', lock: LockInfo, reason: LockReleaseReason }

/**
 * The edit locks of every document. The seam between a single instance (MemoryLockTable) and
 * several sharing Redis: callers only see promises and change events.
 */
export interface LockTable {
  /**
   * Grants the lock, or queues the request for up to `waitMs`. Resolves with the lock (its
   * fencing token only grows per resource); rejects with LockDeniedError naming the holder,
   * TANDEM_ERR_INVALID_RESOURCE, or TANDEM_ERR_DISCONNECTED when the request was cancelled.
   * A holder asking again gets its lock back, renewed.
   */
  acquire (doc: string, resource: string, owner: LockOwner, options: AcquireOptions): Promise<LockInfo>
  /** Releases a lock held by `sessionId`; rejects with TANDEM_ERR_NOT_LOCK_HOLDER otherwise. */
  release (doc: string, resource: string, sessionId: string, reason: LockReleaseReason): Promise<LockInfo>
  /** Releases every lock `sessionId` holds in `doc` and cancels its queued requests. */
  releaseAll (doc: string, sessionId: string, reason: LockReleaseReason): Promise<LockInfo[]>
  /** Cancels the queued requests of `sessionId` in `doc` (they need a live connection). */
  cancelWaits (doc: string, sessionId: string): void
  /** Extends the lease of a lock `sessionId` holds; null when it does not hold it any more. */
  renew (doc: string, resource: string, sessionId: string, ttlMs: number): Promise<LockInfo | null>
  /** Releases a lock whoever holds it (the admin endpoint); null when it was free. */
  forceRelease (doc: string, resource: string): Promise<LockInfo | null>
  /** The locks held in a document. */
  list (doc: string): Promise<LockInfo[]>
  /** Calls `listener` on every change; returns the function that unsubscribes. */
  subscribe (listener: (change: LockChange) => void): () => void
  /**
   * The session resumed here from another instance: its locks in `doc` become this instance's
   * (the same locks and fencing tokens, nothing released or announced; their leases start
   * again now), and are renewed from here on. Resolves with them and their leases.
   */
  adopt (doc: string, sessionId: string): Promise<AdoptedLock[]>
  /** The session resumed on another instance: this one stops timing its locks' leases. */
  letGo (doc: string, sessionId: string): void
  /**
   * Tells the table which sessions live on this instance. In memory, a lease of a live session
   * that runs out before its renewal came (the event loop stalled longer than the lease) is
   * extended, not expired: a lease ends a lock only once its holder's renewals stopped. In
   * Redis a lease is shared by the instances and cannot be brought back (see RedisLockTable).
   */
  keepAlive (alive: (sessionId: string) => boolean): void
  /**
   * Clears every timer and cancels queued requests. In memory, held locks are forgotten, not
   * announced; in Redis, this instance's locks are released (reason `shutdown`).
   */
  close (): Promise<void>
}

/** Checks a lock resource name, 1 to 256 code points (shared/resource-name.ts). */
export const validateResource = validateResourceName

/** The key of a session's resources in a document. */
function sessionKey (doc: string, sessionId: string): string {
  return JSON.stringify([doc, sessionId])
}

interface Held {
  info: LockInfo
  ttlMs: number
  timer: ReturnType<typeof setTimeout> | undefined
  /** When `timer` fires. */
  fireAt: number
}

interface Waiter {
  owner: LockOwner
  ttlMs: number
  resolve: (lock: LockInfo) => void
  reject: (err: unknown) => void
  timer: ReturnType<typeof setTimeout>
}

interface Resource {
  holder: Held | null
  waiters: Waiter[]
  /** Operations on one resource run one at a time, in order (a grant awaits its token). */
  chain: Promise<void>
}

/**
 * The in-process LockTable: locks live in this process, fencing tokens come from the Store so
 * that they keep growing across restarts. Every operation on a resource is queued on that
 * resource's chain, so a grant waiting for its token cannot race a release or another grant.
 */
export class MemoryLockTable implements LockTable {
  private readonly docs = new Map<string, Map<string, Resource>>()
  private readonly listeners = new Set<(change: LockChange) => void>()
  /**
   * The resources each session holds or waits for, by document and session: a session's end
   * touches its own resources, not every resource of the document (a thousand sessions with a
   * hundred locks each ending at once was a hundred thousand operations per session).
   */
  private readonly bySession = new Map<string, Set<string>>()
  private alive: (sessionId: string) => boolean = () => false
  private closed = false

  constructor (
    /** The next fencing token of a resource (Store.nextFencingToken). */
    private readonly nextToken: (doc: string, resource: string) => Promise<number>,
    private readonly now: () => number = Date.now
  ) {}

  acquire (doc: string, resource: string, owner: LockOwner, options: AcquireOptions): Promise<LockInfo> {
    validateResource(resource)
    if (this.closed) return Promise.reject(new TandemError('TANDEM_ERR_SHUTTING_DOWN'))
    // noted at once: a releaseAll or cancelWaits made while the request is on its way to the
    // resource's chain runs after it there, and undoes it
    this.index(doc, resource, owner.sessionId)
    return new Promise((resolve, reject) => {
      this.run(doc, resource, async entry => {
        if (entry.holder?.info.sessionId === owner.sessionId) {
          return resolve(this.extend(doc, entry.holder, options.ttlMs))
        }
        if (entry.holder === null && entry.waiters.length === 0) {
          return this.grant(doc, resource, entry, owner, options.ttlMs).then(resolve, (err: unknown) => {
            this.unindex(doc, resource, entry, owner.sessionId)
            reject(err)
          })
        }
        if (options.waitMs <= 0) {
          this.unindex(doc, resource, entry, owner.sessionId)
          return reject(new LockDeniedError('TANDEM_ERR_LOCK_HELD', resource, entry.holder?.info ?? null))
        }
        const waiter: Waiter = {
          owner,
          ttlMs: options.ttlMs,
          resolve,
          reject,
          timer: setTimeout(() => {
            this.run(doc, resource, async current => {
              const index = current.waiters.indexOf(waiter)
              if (index === -1) return
              current.waiters.splice(index, 1)
              this.unindex(doc, resource, current, owner.sessionId)
              reject(new LockDeniedError('TANDEM_ERR_LOCK_TIMEOUT', resource, current.holder?.info ?? null))
            })
          }, options.waitMs)
        }
        entry.waiters.push(waiter)
        options.onQueued?.()
      })
    })
  }

  release (doc: string, resource: string, sessionId: string, reason: LockReleaseReason): Promise<LockInfo> {
    return new Promise((resolve, reject) => {
      this.run(doc, resource, async entry => {
        if (entry.holder === null || entry.holder.info.sessionId !== sessionId) {
          return reject(new TandemError('TANDEM_ERR_NOT_LOCK_HOLDER', resource))
        }
        resolve(await this.free(doc, resource, entry, reason))
      })
    })
  }

  async releaseAll (doc: string, sessionId: string, reason: LockReleaseReason): Promise<LockInfo[]> {
    const resources = this.bySession.get(sessionKey(doc, sessionId))
    if (resources === undefined) return []
    const released = await Promise.all([...resources].map(resource => new Promise<LockInfo | null>(resolve => {
      this.run(doc, resource, async entry => {
        this.dropWaiters(doc, resource, entry, sessionId)
        if (entry.holder?.info.sessionId !== sessionId) return resolve(null)
        resolve(await this.free(doc, resource, entry, reason))
      })
    })))
    return released.filter((lock): lock is LockInfo => lock !== null)
  }

  cancelWaits (doc: string, sessionId: string): void {
    // on each resource's chain: a request still on its way to the queue is cancelled too
    for (const resource of [...this.bySession.get(sessionKey(doc, sessionId)) ?? []]) {
      this.run(doc, resource, async entry => this.dropWaiters(doc, resource, entry, sessionId))
    }
  }

  private dropWaiters (doc: string, resource: string, entry: Resource, sessionId: string): void {
    entry.waiters = entry.waiters.filter(waiter => {
      if (waiter.owner.sessionId !== sessionId) return true
      clearTimeout(waiter.timer)
      waiter.reject(new TandemError('TANDEM_ERR_DISCONNECTED', 'the lock request was cancelled'))
      return false
    })
    this.unindex(doc, resource, entry, sessionId)
  }

  /** Notes that `sessionId` holds or waits for `resource`. */
  private index (doc: string, resource: string, sessionId: string): void {
    const key = sessionKey(doc, sessionId)
    let resources = this.bySession.get(key)
    if (resources === undefined) this.bySession.set(key, resources = new Set())
    resources.add(resource)
  }

  /** Forgets that note unless the session still holds or waits for the resource. */
  private unindex (doc: string, resource: string, entry: Resource, sessionId: string): void {
    if (entry.holder?.info.sessionId === sessionId || entry.waiters.some(waiter => waiter.owner.sessionId === sessionId)) return
    const key = sessionKey(doc, sessionId)
    const resources = this.bySession.get(key)
    if (resources === undefined) return
    resources.delete(resource)
    if (resources.size === 0) this.bySession.delete(key)
  }

  renew (doc: string, resource: string, sessionId: string, ttlMs: number): Promise<LockInfo | null> {
    return new Promise(resolve => {
      this.run(doc, resource, async entry => {
        if (entry.holder?.info.sessionId !== sessionId) return resolve(null)
        resolve(this.extend(doc, entry.holder, ttlMs))
      })
    })
  }

  forceRelease (doc: string, resource: string): Promise<LockInfo | null> {
    return new Promise(resolve => {
      this.run(doc, resource, async entry => {
        resolve(entry.holder === null ? null : await this.free(doc, resource, entry, 'admin'))
      })
    })
  }

  async list (doc: string): Promise<LockInfo[]> {
    const locks: LockInfo[] = []
    for (const entry of this.docs.get(doc)?.values() ?? []) if (entry.holder !== null) locks.push({ ...entry.holder.info })
    return locks
  }

  subscribe (listener: (change: LockChange) => void): () => void {
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  /** One process has one instance: the session's locks are already here. */
  async adopt (doc: string, sessionId: string): Promise<AdoptedLock[]> {
    const adopted: AdoptedLock[] = []
    for (const entry of this.docs.get(doc)?.values() ?? []) {
      if (entry.holder?.info.sessionId === sessionId) adopted.push({ lock: { ...entry.holder.info }, ttlMs: entry.holder.ttlMs })
    }
    return adopted
  }

  letGo (): void {}

  keepAlive (alive: (sessionId: string) => boolean): void {
    this.alive = alive
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    for (const resources of this.docs.values()) {
      for (const entry of resources.values()) {
        if (entry.holder !== null) clearTimeout(entry.holder.timer)
        for (const waiter of entry.waiters) {
          clearTimeout(waiter.timer)
          waiter.reject(new TandemError('TANDEM_ERR_SHUTTING_DOWN'))
        }
        entry.waiters = []
      }
    }
    this.docs.clear()
    this.bySession.clear()
    this.listeners.clear()
  }

  /** Queues `op` on the resource's chain; an op that throws is contained to its caller. */
  private run (doc: string, resource: string, op: (entry: Resource) => Promise<void>): void {
    let resources = this.docs.get(doc)
    if (resources === undefined) this.docs.set(doc, resources = new Map())
    let entry = resources.get(resource)
    if (entry === undefined) resources.set(resource, entry = { holder: null, waiters: [], chain: Promise.resolve() })
    const current = entry
    const table = resources
    const next: Promise<void> = current.chain.then(() => op(current)).catch(() => {}).then(() => {
      // forget a free resource once nothing else is queued on it
      if (current.chain !== next || current.holder !== null || current.waiters.length > 0) return
      if (table.get(resource) === current) table.delete(resource)
      if (table.size === 0 && this.docs.get(doc) === table) this.docs.delete(doc)
    })
    current.chain = next
  }

  private async grant (doc: string, resource: string, entry: Resource, owner: LockOwner, ttlMs: number): Promise<LockInfo> {
    const token = await this.nextToken(doc, resource)
    const now = this.now()
    const info: LockInfo = {
      resource,
      token,
      sessionId: owner.sessionId,
      userId: owner.userId,
      name: owner.name,
      color: owner.color,
      acquiredAt: now,
      expiresAt: now + ttlMs
    }
    const held: Held = { info, ttlMs, timer: undefined, fireAt: 0 }
    this.armExpiry(doc, resource, held, ttlMs)
    entry.holder = held
    this.index(doc, resource, owner.sessionId)
    this.emit({ doc, event: 'acquired', lock: { ...info } })
    return { ...info }
  }

  private extend (doc: string, held: Held, ttlMs: number): LockInfo {
    held.ttlMs = ttlMs
    held.info.expiresAt = this.now() + ttlMs
    // the expiry timer stays: when it fires it waits out what is left of the lease (a new timer
    // per renewal cost more than the renewal); only a lease that now ends sooner needs a new one
    if (held.info.expiresAt < held.fireAt) this.armExpiry(doc, held.info.resource, held, ttlMs)
    return { ...held.info }
  }

  /** (Re)starts the expiry timer of a held lock: it frees the lock unless renewed meanwhile. */
  private armExpiry (doc: string, resource: string, held: Held, ms: number): void {
    clearTimeout(held.timer)
    const { info } = held
    const timer = setTimeout(() => {
      this.run(doc, resource, async entry => {
        if (entry.holder !== held || held.timer !== timer) return
        const left = info.expiresAt - this.now()
        // renewed since, or the timer fired a little before the clock says so: wait out the rest
        if (left > 0) return this.armExpiry(doc, resource, held, left)
        // its session lives: the renewal is late (a stalled event loop), not stopped
        if (this.alive(info.sessionId)) {
          this.extend(doc, held, held.ttlMs)
          return this.armExpiry(doc, resource, held, held.ttlMs)
        }
        await this.free(doc, resource, entry, 'expired')
      })
    }, ms)
    timer.unref?.()
    held.timer = timer
    held.fireAt = this.now() + ms
  }

  /** Frees the lock and hands it to the first waiter whose grant succeeds. */
  private async free (doc: string, resource: string, entry: Resource, reason: LockReleaseReason): Promise<LockInfo> {
    const held = entry.holder as Held
    clearTimeout(held.timer)
    entry.holder = null
    this.unindex(doc, resource, entry, held.info.sessionId)
    this.emit({ doc, event: 'released', lock: { ...held.info }, reason })
    while (entry.holder === null && entry.waiters.length > 0) {
      const waiter = entry.waiters.shift() as Waiter
      clearTimeout(waiter.timer)
      // still noted as the session's while its grant awaits a token: a releaseAll then waits
      // for it on the chain and releases what it granted
      await this.grant(doc, resource, entry, waiter.owner, waiter.ttlMs).then(waiter.resolve, (err: unknown) => {
        this.unindex(doc, resource, entry, waiter.owner.sessionId)
        waiter.reject(err)
      })
    }
    return { ...held.info }
  }

  private emit (change: LockChange): void {
    for (const listener of this.listeners) listener(change)
  }
}
