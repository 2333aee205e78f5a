// Longer than most files here (about 500 lines), on purpose: every method drives the same Lua
// scripts (redis-scripts.ts) over the same queued-request state, and the failure handling (a
// request abandoned while its script runs, a hand-off to a dead instance, Redis losing its data)
// only reads correctly in one place. Announcements (redis-announcements.ts) and instance
// liveness (cluster/instances.ts) are rooms of their own.
import { randomUUID } from 'node:crypto'
import type { Cluster, Redis } from 'ioredis'
import type { Logger } from 'pino'
import { TandemError, isTandemError } from '../../shared/errors.js'
import { LockDeniedError } from '../../shared/lock-denied-error.js'
import type { LockInfo, LockReleaseReason } from '../../shared/tandem.js'
import { validateResource, type AcquireOptions, type AdoptedLock, type LockChange, type LockOwner, type LockTable } from './table.js'
import { ACQUIRE, ADOPT, CANCEL, GRANT, RELEASE, RENEW, RESTORE } from './redis-scripts.js'
import { Announcements, type Announcement } from './redis-announcements.js'
import { LiveInstances } from '../cluster/instances.js'
import { connectPair, redisClient } from '../cluster/redis-client.js'

/** Options of {@link RedisLockTable}. */
export interface RedisLockTableOptions {
  /** `redis://` or `rediss://` URL (any node of a Redis Cluster will do). */
  url: string
  /** Prepended to every key and channel. @default 'tandem:' */
  prefix?: string
  /** This instance's id: its locks are released by the others when it stops refreshing it. */
  nodeId?: string
  /** An instance silent this long is dead: its locks are released (reason `timeout`). @default 30_000 */
  livenessMs?: number
  /** The next fencing token of a resource (Store.nextFencingToken): durable and shared. */
  nextToken: (doc: string, resource: string) => Promise<number>
  logger: Logger
}

/** A script's reply. */
interface Reply {
  status: string
  lock?: LockInfo
  holder?: LockInfo
  /** A waiter popped and reserved: this caller must hand it the lock. */
  next?: string
  node?: string
  /** ADOPT: the locks moved to this node (an empty list comes back from Lua as `{}`). */
  adopted?: Array<{ lock: LockInfo, ttl: number, from: string }> | Record<string, never>
  events: string[] | Record<string, never>
}

/** A queued request of a session of this instance. */
interface Pending {
  doc: string
  resource: string
  owner: LockOwner
  /** The waiter JSON exactly as queued (LREM matches it byte for byte). */
  raw: string
  resolve: (lock: LockInfo) => void
  reject: (err: unknown) => void
  timer: ReturnType<typeof setTimeout>
}

/** Lifecycle of the table, changed only by setStatus: `down` while Redis is away after start. */
type LockTableStatus = 'starting' | 'ready' | 'down' | 'closing' | 'closed'

type Script = (...args: Array<string | number>) => Promise<string>
type Scripted = Record<'tandemLockAcquire' | 'tandemLockRelease' | 'tandemLockGrant' | 'tandemLockCancel' | 'tandemLockRenew' | 'tandemLockRestore' | 'tandemLockAdopt', Script>

/** Tokens a grant may fetch before giving up (each retry means another instance raced it). */
const MAX_TOKEN_TRIES = 20

/**
 * The LockTable shared by every instance through Redis. A lock is a record in the document's
 * `holders` hash, changed only by Lua scripts (locks-redis-scripts.ts), which also queue
 * waiters (FIFO across instances), keep the last fencing token and announce every change on
 * one channel that every instance hears.
 *
 * Fencing tokens come from the store (durable, shared by the instances); a script grants only
 * with a token above the last one it granted, so tokens only grow even when two instances
 * fetch concurrently, and after Redis loses its data the store still knows the highest.
 *
 * Liveness: each instance refreshes its score in a sorted set of live instances; one whose
 * score is older than 3/5 of livenessMs is claimed by the first instance to notice, which
 * releases its locks (reason `timeout`), found through the instance's set of locks.
 *
 * While Redis is unreachable, acquire, release and renew reject with
 * TANDEM_ERR_REDIS_UNAVAILABLE; when it returns, this instance's locks are checked and put back
 * if Redis lost them and nobody took them meanwhile (else announced as released, `expired`).
 */
export class RedisLockTable implements LockTable {
  readonly nodeId: string
  private readonly prefix: string
  private readonly instances: LiveInstances
  private readonly livenessMs: number
  private readonly logger: Logger
  private client: Redis | Cluster
  private sub: Redis | Cluster
  private readonly listeners = new Set<(change: LockChange) => void>()
  private readonly pending = new Map<string, Pending>()
  /** Ids of the queued requests, by document and session: a session's end finds its own. */
  private readonly pendingBySession = new Map<string, Set<string>>()
  /** Queued requests whose acquire script has not answered yet. */
  private readonly inFlight = new Set<string>()
  /** Of those, the ones given up meanwhile (cancelled, timed out): undone when it answers. */
  private readonly abandoned = new Set<string>()
  /** Every change, from the channel or a script's reply, once and in order per resource. */
  private readonly announcements: Announcements
  /** Locks held by this instance's sessions, with their lease timers. */
  private readonly owned = new Map<string, { doc: string, lock: LockInfo, ttl: number, timer: ReturnType<typeof setTimeout> }>()
  private ticker: ReturnType<typeof setInterval> | undefined
  private status: LockTableStatus = 'starting'
  /** When the status last became `ready` (after an outage every instance's score is old). */
  private readySince = 0
  private closing: Promise<void> | undefined

  constructor (private readonly options: RedisLockTableOptions) {
    this.prefix = options.prefix ?? 'tandem:'
    this.nodeId = options.nodeId ?? randomUUID()
    this.livenessMs = options.livenessMs ?? 30_000
    this.logger = options.logger.child({ locks: 'redis', node: this.nodeId })
    this.announcements = new Announcements(change => this.announced(change), this.logger)
    this.client = this.connection(false, 'locks')
    this.sub = this.connection(false, 'locks-sub')
    this.instances = new LiveInstances(() => this.client, this.prefix, this.nodeId, Math.floor(this.livenessMs * 3 / 5), this.logger)
  }

  private connection (cluster: boolean, role: string): Redis | Cluster {
    return redisClient({
      url: this.options.url,
      name: `tandem-${role}-${this.nodeId}`,
      commandTimeoutMs: Math.max(500, Math.floor(this.livenessMs / 5)),
      autoResubscribe: true
    }, cluster)
  }

  /** Changes the lifecycle status; the one place it changes. */
  private setStatus (status: LockTableStatus): void {
    if (status === 'ready') this.readySince = Date.now()
    this.status = status
  }

  /** True while Redis answers. */
  get ready (): boolean {
    return this.client.status === 'ready'
  }

  /** Connects, defines the scripts, subscribes and registers this instance. Rejects when Redis cannot be reached. */
  async start (): Promise<void> {
    const onError = (err: Error): void => this.logger.debug({ err: err.message }, 'redis error')
    const pair = await connectPair(cluster => ({ main: this.connection(cluster, 'locks'), sub: this.connection(cluster, 'locks-sub') }), onError)
    this.client = pair.main
    this.sub = pair.sub
    try {
      await this.sub.subscribe(this.channel)
    } catch (err) {
      this.client.disconnect()
      this.sub.disconnect()
      throw err
    }
    this.define()
    this.sub.on('message', (_channel: string, payload: string) => this.announcements.deliver(payload))
    this.client.on('close', () => { if (this.status === 'ready') this.setStatus('down') })
    this.client.on('ready', () => { void this.reconnected() })
    await this.instances.beat()
    this.setStatus('ready')
    this.ticker = setInterval(() => { void this.tick() }, Math.max(10, Math.floor(this.livenessMs / 5)))
    this.ticker.unref?.()
  }

  private define (): void {
    const scripts = { tandemLockAcquire: ACQUIRE, tandemLockRelease: RELEASE, tandemLockGrant: GRANT, tandemLockCancel: CANCEL, tandemLockRenew: RENEW, tandemLockRestore: RESTORE, tandemLockAdopt: ADOPT }
    for (const [name, lua] of Object.entries(scripts)) this.client.defineCommand(name, { numberOfKeys: 4, lua })
    this.instances.define(this.client)
  }

  private get channel (): string {
    return `${this.prefix}locks`
  }

  /** The four keys of a resource; the document is the hash tag, as for the bus channel. */
  private keys (doc: string, resource: string): string[] {
    const tag = `${this.prefix}{${encodeURIComponent(doc)}}`
    return [`${tag}:holders`, `${tag}:q:${resource}`, `${tag}:fence`, `${tag}:reserve`]
  }

  /** Runs a script on a resource; Redis being away becomes TANDEM_ERR_REDIS_UNAVAILABLE. */
  private async run (name: keyof Scripted, doc: string, resource: string, ...args: Array<string | number>): Promise<Reply> {
    if (this.status === 'closed') throw new TandemError('TANDEM_ERR_SHUTTING_DOWN')
    let raw: string
    try {
      raw = await (this.client as unknown as Scripted)[name](...this.keys(doc, resource), resource, this.channel, Date.now(), doc, ...args)
    } catch (err) {
      throw new TandemError('TANDEM_ERR_REDIS_UNAVAILABLE', `locks need Redis: ${(err as Error).message}`, { cause: err })
    }
    const reply = JSON.parse(raw) as Reply
    await Promise.all((Array.isArray(reply.events) ? reply.events : []).map(payload => this.announcements.heard(payload)))
    return reply
  }

  acquire (doc: string, resource: string, owner: LockOwner, options: AcquireOptions): Promise<LockInfo> {
    validateResource(resource)
    if (this.status === 'closed') return Promise.reject(new TandemError('TANDEM_ERR_SHUTTING_DOWN'))
    return new Promise((resolve, reject) => {
      const id = options.waitMs > 0 ? randomUUID() : ''
      const raw = id === '' ? '' : JSON.stringify({ id, node: this.nodeId, owner, ttl: options.ttlMs })
      if (id !== '') {
        const timer = setTimeout(() => { void this.cancel(id, 'timeout') }, options.waitMs)
        this.pending.set(id, { doc, resource, owner, raw, resolve, reject, timer })
        const key = JSON.stringify([doc, owner.sessionId])
        let ids = this.pendingBySession.get(key)
        if (ids === undefined) this.pendingBySession.set(key, ids = new Set())
        ids.add(id)
      }
      if (id !== '') this.inFlight.add(id)
      this.tryAcquire(doc, resource, owner, options.ttlMs, raw).then(reply => {
        this.inFlight.delete(id)
        // cancelled or timed out while on its way: undo what the script did
        if (this.abandoned.delete(id)) return void this.undo(doc, resource, owner.sessionId, raw, reply)
        if (reply.status === 'granted' || reply.status === 'renewed') {
          this.settle(id)
          if (reply.status === 'renewed') this.own(doc, reply.lock as LockInfo, options.ttlMs)
          return resolve(reply.lock as LockInfo)
        }
        if (reply.status === 'held') return reject(new LockDeniedError('TANDEM_ERR_LOCK_HELD', resource, reply.holder ?? null))
        // queued: resolved by the announcement of its grant, or by its timer
        options.onQueued?.()
      }, (err: unknown) => {
        this.inFlight.delete(id)
        this.abandoned.delete(id)
        this.settle(id)
        reject(err)
      })
    })
  }

  /** A request given up before its script ran: its grant is released, its queue entry removed. */
  private async undo (doc: string, resource: string, sessionId: string, raw: string, reply: Reply): Promise<void> {
    try {
      if (reply.status === 'granted') await this.release(doc, resource, sessionId, 'leave')
      if (reply.status === 'queued') {
        const cancelled = await this.run('tandemLockCancel', doc, resource, raw)
        if (cancelled.next !== undefined) await this.handoff(doc, resource, cancelled.next)
        if (cancelled.status === 'granted') await this.release(doc, resource, sessionId, 'leave')
      }
    } catch (err) {
      this.logger.debug({ err, doc, resource }, 'cannot undo an abandoned lock request')
    }
  }

  /** Fetches a token and asks; a stale token (another instance was faster) is fetched again. */
  private async tryAcquire (doc: string, resource: string, owner: LockOwner, ttl: number, waiter: string): Promise<Reply> {
    for (let tries = 0; tries < MAX_TOKEN_TRIES; tries++) {
      const token = await this.options.nextToken(doc, resource)
      const reply = await this.run('tandemLockAcquire', doc, resource, JSON.stringify(owner), this.nodeId, ttl, token, waiter)
      if (reply.status === 'granted') void this.instances.index(this.nodeId, doc, resource, true)
      if (reply.next !== undefined) void this.handoff(doc, resource, reply.next)
      if (reply.status !== 'stale') return { ...reply, next: undefined }
    }
    throw new TandemError('TANDEM_ERR_STORE_FAILED', 'fencing tokens kept falling behind')
  }

  /** Gives a reserved waiter the lock, with a fresh token; hands on again if it is gone. */
  private async handoff (doc: string, resource: string, next: string): Promise<void> {
    const waiter = JSON.parse(next) as { id: string, node: string }
    try {
      if (!await this.instances.alive(waiter.node)) {
        const reply = await this.run('tandemLockCancel', doc, resource, next)
        if (reply.next !== undefined) return await this.handoff(doc, resource, reply.next)
        return
      }
      for (let tries = 0; tries < MAX_TOKEN_TRIES; tries++) {
        const token = await this.options.nextToken(doc, resource)
        const reply = await this.run('tandemLockGrant', doc, resource, waiter.id, token)
        if (reply.status === 'stale') continue
        if (reply.status !== 'granted') return
        await this.instances.index(waiter.node, doc, resource, true)
        // its instance was reaped meanwhile (after reading its index): release the lock now
        if (!await this.instances.alive(waiter.node)) {
          await this.releaseWhere(doc, resource, 'node', waiter.node, 'timeout')
        }
        return
      }
    } catch (err) {
      // the reservation runs out and the next call on the resource hands it on
      this.logger.warn({ err, doc, resource }, 'cannot hand a lock to the next waiter')
    }
  }

  /** Takes a queued request out: `timeout` rejects with the holder, `cancel` with DISCONNECTED. */
  private async cancel (id: string, why: 'timeout' | 'cancel'): Promise<void> {
    const pending = this.pending.get(id)
    if (pending === undefined) return
    const { doc, resource, owner } = pending
    if (this.inFlight.has(id)) {
      // its script has not answered yet: acquire() undoes what it did once it does
      this.abandoned.add(id)
      return await this.refuse(id, why)
    }
    try {
      const reply = await this.run('tandemLockCancel', doc, resource, pending.raw)
      if (reply.next !== undefined) void this.handoff(doc, resource, reply.next)
      if (reply.status === 'granted' && reply.lock !== undefined) {
        // granted just before: a timed-out request takes it; a cancelled one gives it back
        if (why === 'timeout') return this.settle(id)?.resolve(reply.lock)
        this.settle(id)?.reject(new TandemError('TANDEM_ERR_DISCONNECTED', 'the lock request was cancelled'))
        await this.release(doc, resource, owner.sessionId, 'leave').catch(() => {})
        return
      }
    } catch (err) {
      this.logger.debug({ err, doc, resource }, 'cannot cancel a queued lock request')
    }
    await this.refuse(id, why)
  }

  /** Rejects a queued request: DISCONNECTED when cancelled, LOCK_TIMEOUT naming the holder. */
  private async refuse (id: string, why: 'timeout' | 'cancel'): Promise<void> {
    const settled = this.settle(id)
    if (settled === undefined) return
    if (why === 'cancel') return settled.reject(new TandemError('TANDEM_ERR_DISCONNECTED', 'the lock request was cancelled'))
    const holder = (await this.list(settled.doc).catch(() => [])).find(lock => lock.resource === settled.resource) ?? null
    settled.reject(new LockDeniedError('TANDEM_ERR_LOCK_TIMEOUT', settled.resource, holder))
  }

  /** Forgets a queued request; returns it if it was still pending. */
  private settle (id: string): Pending | undefined {
    const pending = this.pending.get(id)
    if (pending === undefined) return undefined
    clearTimeout(pending.timer)
    this.pending.delete(id)
    const key = JSON.stringify([pending.doc, pending.owner.sessionId])
    const ids = this.pendingBySession.get(key)
    ids?.delete(id)
    if (ids?.size === 0) this.pendingBySession.delete(key)
    return pending
  }

  async release (doc: string, resource: string, sessionId: string, reason: LockReleaseReason): Promise<LockInfo> {
    const reply = await this.releaseWhere(doc, resource, 'session', sessionId, reason)
    if (reply.status !== 'released') throw new TandemError('TANDEM_ERR_NOT_LOCK_HOLDER', resource)
    return reply.lock as LockInfo
  }

  private async releaseWhere (doc: string, resource: string, mode: string, value: string, reason: LockReleaseReason | ''): Promise<Reply> {
    const reply = await this.run('tandemLockRelease', doc, resource, mode, value, reason)
    if (reply.status === 'released' && reply.node !== undefined) void this.instances.index(reply.node, doc, resource, false)
    if (reply.next !== undefined) await this.handoff(doc, resource, reply.next)
    return reply
  }

  async releaseAll (doc: string, sessionId: string, reason: LockReleaseReason): Promise<LockInfo[]> {
    this.cancelWaits(doc, sessionId)
    const held = (await this.list(doc)).filter(lock => lock.sessionId === sessionId)
    const released = await Promise.all(held.map(lock => this.releaseWhere(doc, lock.resource, 'session', sessionId, reason)))
    return released.filter(reply => reply.status === 'released').map(reply => reply.lock as LockInfo)
  }

  cancelWaits (doc: string, sessionId: string): void {
    for (const id of [...this.pendingBySession.get(JSON.stringify([doc, sessionId])) ?? []]) void this.cancel(id, 'cancel')
  }

  async renew (doc: string, resource: string, sessionId: string, ttlMs: number): Promise<LockInfo | null> {
    const reply = await this.run('tandemLockRenew', doc, resource, sessionId, ttlMs)
    if (reply.status !== 'renewed') return null
    this.own(doc, reply.lock as LockInfo, ttlMs)
    return reply.lock as LockInfo
  }

  async forceRelease (doc: string, resource: string): Promise<LockInfo | null> {
    const reply = await this.releaseWhere(doc, resource, 'any', '', 'admin')
    return reply.status === 'released' ? reply.lock as LockInfo : null
  }

  async list (doc: string): Promise<LockInfo[]> {
    let records: Record<string, string>
    try {
      records = await this.client.hgetall(this.keys(doc, '')[0] as string)
    } catch (err) {
      throw new TandemError('TANDEM_ERR_REDIS_UNAVAILABLE', `locks need Redis: ${(err as Error).message}`, { cause: err })
    }
    const now = Date.now()
    return Object.values(records)
      .map(raw => (JSON.parse(raw) as { lock: LockInfo }).lock)
      .filter(lock => lock.expiresAt > now)
      .sort((a, b) => a.acquiredAt - b.acquiredAt)
  }

  subscribe (listener: (change: LockChange) => void): () => void {
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  /**
   * Moves the session's locks to this instance in one script (their holder node, so renewals
   * and the dead-instance check follow it), then the instances' lock index; this instance
   * times their leases from now on.
   */
  async adopt (doc: string, sessionId: string): Promise<AdoptedLock[]> {
    const reply = await this.run('tandemLockAdopt', doc, '', sessionId, this.nodeId)
    const adopted = Array.isArray(reply.adopted) ? reply.adopted : []
    for (const { lock, ttl, from } of adopted) {
      if (from !== this.nodeId) {
        await this.instances.index(from, doc, lock.resource, false)
        await this.instances.index(this.nodeId, doc, lock.resource, true)
      }
      this.own(doc, lock, ttl)
    }
    return adopted.map(({ lock, ttl }) => ({ lock, ttlMs: ttl }))
  }

  letGo (doc: string, sessionId: string): void {
    for (const [key, owned] of this.owned) {
      if (owned.doc !== doc || owned.lock.sessionId !== sessionId) continue
      clearTimeout(owned.timer)
      this.owned.delete(key)
    }
  }

  /**
   * Nothing to do: in Redis a lease is the instances' shared truth, and a lease that ran out is
   * freed by the next script that touches it, whoever runs it, so a renewal that comes late
   * cannot be allowed to bring it back. The minimum lease (--lock-min-ttl) is what keeps an
   * instance's stalls shorter than its leases.
   */
  keepAlive (): void {}

  /** A change, heard once and in order: resolves the queued request it grants, reaches the listeners. */
  private announced (change: Announcement): void {
    const { doc, lock } = change
    const key = JSON.stringify([doc, lock.resource])
    if (change.event === 'acquired' && change.node === this.nodeId) this.own(doc, lock, lock.expiresAt - lock.acquiredAt)
    if (change.event === 'released') {
      const owned = this.owned.get(key)
      if (owned !== undefined && owned.lock.token === lock.token) {
        clearTimeout(owned.timer)
        this.owned.delete(key)
      }
    }
    const out: LockChange = change.event === 'acquired'
      ? { doc, event: 'acquired', lock }
      : { doc, event: 'released', lock, reason: change.reason as LockReleaseReason }
    for (const listener of this.listeners) listener(out)
    if (change.event === 'acquired' && change.waiter !== '') this.settle(change.waiter)?.resolve(lock)
  }

  /** A lock of this instance: its lease is timed here (the owner expires it when renewals stop). */
  private own (doc: string, lock: LockInfo, ttl: number): void {
    const key = JSON.stringify([doc, lock.resource])
    const previous = this.owned.get(key)
    if (previous !== undefined) clearTimeout(previous.timer)
    const timer = setTimeout(() => { void this.expire(doc, lock.resource, lock.sessionId) }, Math.max(1, lock.expiresAt - Date.now()))
    timer.unref?.()
    this.owned.set(key, { doc, lock, ttl, timer })
  }

  private async expire (doc: string, resource: string, sessionId: string): Promise<void> {
    const key = JSON.stringify([doc, resource])
    try {
      const reply = await this.releaseWhere(doc, resource, 'expire', sessionId, 'expired')
      if (reply.status === 'renewed' && reply.lock !== undefined) return this.own(doc, reply.lock, this.owned.get(key)?.ttl ?? 0)
      const owned = this.owned.get(key)
      // not that session's any more (released meanwhile): forget it, unless it is a newer lock of ours
      if (reply.status === 'none' && owned?.lock.sessionId === sessionId) {
        clearTimeout(owned.timer)
        this.owned.delete(key)
      }
    } catch (err) {
      // Redis is away: try again shortly; the lease is checked again when it returns
      const owned = this.owned.get(key)
      if (owned === undefined || this.status === 'closed') return
      owned.timer = setTimeout(() => { void this.expire(doc, resource, sessionId) }, Math.max(100, Math.floor(this.livenessMs / 5)))
      owned.timer.unref?.()
      this.logger.debug({ err, doc, resource }, 'cannot expire a lease now')
    }
  }

  /** Refreshes this instance's score; releases the locks of instances whose score is too old. */
  private async tick (): Promise<void> {
    if (this.status !== 'ready' || this.client.status !== 'ready') return
    try {
      const dead = await this.instances.beat()
      // after an outage every score is old: give the others a turn to refresh theirs
      if (Date.now() - this.readySince < this.livenessMs * 3 / 5) return
      for (const nodeId of dead) {
        if (!await this.instances.claim(nodeId)) continue
        await this.reap(nodeId)
      }
    } catch (err) {
      this.logger.debug({ err }, 'liveness check of instances failed')
    }
  }

  /** Releases every lock of a dead instance, handing each to its next waiter. */
  private async reap (nodeId: string, reason: LockReleaseReason = 'timeout'): Promise<void> {
    const locks = await this.instances.locks(nodeId)
    if (nodeId !== this.nodeId) this.logger.info({ peer: nodeId, locks: locks.length }, 'instance is gone; releasing its locks')
    for (const [doc, resource] of locks) {
      await this.releaseWhere(doc, resource, 'node', nodeId, reason).catch((err: unknown) => {
        this.logger.warn({ err, doc, resource }, 'cannot release a lock of a dead instance')
      })
    }
    await this.instances.forget(nodeId)
  }

  /** Redis is back: register again, then check (or put back) the locks of this instance. */
  private async reconnected (): Promise<void> {
    if (this.status !== 'down') return
    this.setStatus('ready')
    try {
      await this.instances.beat()
      for (const [key, owned] of [...this.owned]) {
        const reply = await this.run('tandemLockRestore', owned.doc, owned.lock.resource, JSON.stringify(owned.lock), this.nodeId, owned.ttl)
        if (reply.status === 'restored') {
          await this.instances.index(this.nodeId, owned.doc, owned.lock.resource, true)
          this.own(owned.doc, reply.lock as LockInfo, owned.ttl)
        } else if (reply.status === 'lost') {
          clearTimeout(owned.timer)
          this.owned.delete(key)
        }
      }
    } catch (err) {
      if (!isTandemError(err, 'TANDEM_ERR_REDIS_UNAVAILABLE')) this.logger.warn({ err }, 'cannot check locks after Redis returned')
    }
    this.logger.info('redis reachable again; locks checked')
  }

  /**
   * Cancels queued requests, releases this instance's locks (reason `shutdown`) and leaves the
   * set of live instances. Safe to call twice.
   */
  close (): Promise<void> {
    this.closing ??= this.shutdown()
    return this.closing
  }

  private async shutdown (): Promise<void> {
    this.setStatus('closing')
    clearInterval(this.ticker)
    for (const id of [...this.pending.keys()]) this.settle(id)?.reject(new TandemError('TANDEM_ERR_SHUTTING_DOWN'))
    for (const owned of this.owned.values()) clearTimeout(owned.timer)
    this.owned.clear()
    if (this.client.status === 'ready') {
      await this.reap(this.nodeId, 'shutdown').catch(() => {})
      await this.instances.leave().catch(() => {})
    }
    this.setStatus('closed')
    this.listeners.clear()
    this.sub.disconnect()
    await this.client.quit().catch(() => {})
    this.client.disconnect()
  }
}
