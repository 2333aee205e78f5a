import * as Y from 'yjs'
import { ERRORS, TandemError, isTandemError, type ErrorCode } from '../shared/errors.js'
import { LockDeniedError } from '../shared/lock-denied-error.js'
import { validateResourceName } from '../shared/resource-name.js'
import { parseTypeResource, resolveTypeResource, typeResource, type SharedType } from '../shared/type-resource.js'
import type { LockInfo, LockReleaseReason, TandemMessage } from '../shared/tandem.js'

/** A lock event as the client reports it. */
export type LockEvent =
  | { type: 'snapshot', locks: LockInfo[] }
  | { type: 'acquired', lock: LockInfo }
  | { type: 'released', lock: LockInfo, reason: LockReleaseReason | 'lost' }

/** Options of `locks.acquire`. */
export interface AcquireOptions {
  /** Lease in ms; the server renews it while this client's session lives. @default the server's --lock-ttl */
  ttlMs?: number
  /** Queue up to this long for a held lock; 0 refuses at once. @default 0 */
  waitMs?: number
}

/** What a Lock needs of its client. */
export interface LockOwnerLink {
  releaseLock (lock: Lock): Promise<void>
}

/** A shared type the server guards: a `y:` lock is held on it. */
export interface GuardedType {
  resource: string
  /** The type in `client.doc`, or null while this client does not have it. */
  type: SharedType | null
  holder: LockInfo
}

/** `client.locks`: the document's edit locks. */
export interface LocksView {
  /**
   * Acquires a lock; rejects with LockDeniedError (`.holder`) when it is held. `target` is a
   * resource name, or a shared type of `client.doc` (its resource is `y:<name>` or
   * `y:<client>:<clock>`, see typeResource): the server then undoes every other session's change
   * inside that type while the lock is held.
   */
  acquire (target: string | SharedType, options?: AcquireOptions): Promise<Lock>
  /** Every lock held in the document. */
  list (): LockInfo[]
  /** The holder of a resource's lock, if held. */
  holder (resource: string): LockInfo | undefined
  /** The types guarded now (every `y:` lock held), so that an editor can make them read-only. */
  guarded (): GuardedType[]
  /**
   * The lock guarding `type` (on the type itself or on a type that contains it), if one is held;
   * compare its `sessionId` with `client.sessionId` to know whether this client may edit it.
   */
  guardOf (type: SharedType): LockInfo | undefined
}

/** A granted edit lock. `token` is its fencing token: pass it along with the writes it guards. */
export class Lock {
  /** True once released (by `release()`, by the server, or lost with the session). */
  released = false

  constructor (readonly info: LockInfo, private readonly owner: LockOwnerLink) {}

  /** The locked resource. */
  get resource (): string {
    return this.info.resource
  }

  /** The fencing token: larger than any earlier grant of this resource. */
  get token (): number {
    return this.info.token
  }

  /** Releases the lock; resolves at once if it is already released. */
  async release (): Promise<void> {
    if (this.released) return
    await this.owner.releaseLock(this)
  }
}

/** The locks of the document as this client knows them. */
export class LockBook {
  private readonly held = new Map<string, LockInfo>()

  /** Replaces everything with a snapshot. */
  reset (locks: readonly LockInfo[]): void {
    this.held.clear()
    for (const lock of locks) this.held.set(lock.resource, lock)
  }

  set (lock: LockInfo): void {
    this.held.set(lock.resource, lock)
  }

  /** Forgets the lock if it is this grant (a later grant of the resource stays). */
  delete (lock: LockInfo): void {
    if (this.held.get(lock.resource)?.token === lock.token) this.held.delete(lock.resource)
  }

  list (): LockInfo[] {
    return [...this.held.values()]
  }

  get (resource: string): LockInfo | undefined {
    return this.held.get(resource)
  }
}

/** A TandemError for a lock reply code the client does not know specially. */
export function replyError (code: string, resource: string): TandemError {
  if (Object.hasOwn(ERRORS, code)) return new TandemError(code as ErrorCode, resource)
  return new TandemError('TANDEM_ERR_MALFORMED_MESSAGE', `unknown error code ${code}`)
}

type Reply = { code: string, lock: LockInfo | null }
interface Request {
  resource: string
  kind: 'acquire' | 'release'
  resolve: (reply: Reply) => void
  reject: (err: unknown) => void
}

/** What the lock client needs of its TandemClient. */
export interface LockLink {
  /** Sends a Tandem message on the open, greeted socket; false when there is none. */
  send (message: TandemMessage): boolean
  /** Resolves once the server greeted this connection (rejects after the connect timeout). */
  welcomed (): Promise<void>
  /** This client's session id, once greeted. */
  sessionId (): string | undefined
  /** Reports a lock event to the client's listeners. */
  emit (event: LockEvent): void
}

/**
 * `client.locks`: lock requests and their replies, the locks this client holds, and the
 * document's locks as the server reports them (a snapshot on every connection, then events).
 */
export class LockClient {
  private readonly book = new LockBook()
  private readonly own = new Map<string, Lock>()
  private readonly requests = new Map<number, Request>()
  private nextRequestId = 1

  constructor (private readonly doc: Y.Doc, private readonly link: LockLink) {}

  /**
   * Acquires a lock on a resource name or a shared type of the document (`y:` resource);
   * rejects with LockDeniedError (`.holder`) when it is held.
   */
  async acquire (target: string | SharedType, options: AcquireOptions = {}): Promise<Lock> {
    const resource = this.resourceOf(target)
    validateResourceName(resource)
    const ttlMs = Math.max(0, Math.floor(options.ttlMs ?? 0))
    const waitMs = Math.max(0, Math.floor(options.waitMs ?? 0))
    const reply = await this.request('acquire', resource, id => ({ type: 'lock-acquire', id, resource, ttlMs, waitMs }))
    if (reply.code === '' && reply.lock !== null) {
      const lock = new Lock(reply.lock, { releaseLock: l => this.releaseLock(l) })
      this.own.set(resource, lock)
      this.book.set(reply.lock)
      return lock
    }
    if (reply.code === 'TANDEM_ERR_LOCK_HELD' || reply.code === 'TANDEM_ERR_LOCK_TIMEOUT') {
      throw new LockDeniedError(reply.code, resource, reply.lock)
    }
    throw replyError(reply.code, resource)
  }

  /** Every lock held in the document. */
  list (): LockInfo[] {
    return this.book.list()
  }

  /** The holder of a resource's lock, if held. */
  holder (resource: string): LockInfo | undefined {
    return this.book.get(resource)
  }

  /** The types guarded now (every `y:` lock held), so that an editor can make them read-only. */
  guarded (): GuardedType[] {
    const types: GuardedType[] = []
    for (const holder of this.book.list()) {
      const target = parseTypeResource(holder.resource)
      if (target !== null) types.push({ resource: holder.resource, type: resolveTypeResource(this.doc, target), holder })
    }
    return types
  }

  /** The lock guarding `type`: on the type itself or on the closest guarded type around it. */
  guardOf (type: SharedType): LockInfo | undefined {
    for (let current: SharedType | null = type; current !== null; current = (current._item?.parent ?? null) as SharedType | null) {
      let resource: string
      try {
        resource = typeResource(current)
      } catch {
        return undefined
      }
      const lock = this.book.get(resource)
      if (lock !== undefined) return lock
    }
    return undefined
  }

  /** A lock message from the server. */
  receive (message: Extract<TandemMessage, { type: 'locks' | 'lock-event' | 'lock-reply' }>): void {
    switch (message.type) {
      case 'locks':
        return this.snapshot(message.locks)
      case 'lock-event':
        if (message.event === 'acquired') {
          this.book.set(message.lock)
          return this.link.emit({ type: 'acquired', lock: message.lock })
        }
        this.gone(message.lock)
        return this.link.emit({ type: 'released', lock: message.lock, reason: message.reason })
      case 'lock-reply': {
        const request = this.requests.get(message.id)
        if (request === undefined) return
        this.requests.delete(message.id)
        return request.resolve({ code: message.code, lock: message.lock })
      }
    }
  }

  /**
   * The connection dropped: the server cancels its queued requests, so they fail here. A grant
   * whose reply was lost shows up in the lock snapshot after resuming and is released then.
   */
  dropped (): void {
    this.rejectAll(new TandemError('TANDEM_ERR_DISCONNECTED'))
  }

  /** The client is torn down: requests fail, held locks count as released. */
  close (): void {
    this.rejectAll(new TandemError('TANDEM_ERR_DESTROYED'))
    for (const lock of this.own.values()) lock.released = true
    this.own.clear()
  }

  /** The resource name of a lock target: a string as it is, a shared type by its id. */
  private resourceOf (target: string | SharedType): string {
    if (typeof target === 'string') return target
    if (!(target instanceof Y.AbstractType) || target.doc !== this.doc) {
      throw new TandemError('TANDEM_ERR_INVALID_RESOURCE', 'a lock target must be a resource name or a shared type of client.doc')
    }
    try {
      return typeResource(target)
    } catch (err) {
      if (isTandemError(err)) throw err
      throw new TandemError('TANDEM_ERR_INVALID_RESOURCE', (err as Error).message, { cause: err })
    }
  }

  private rejectAll (error: TandemError): void {
    for (const request of this.requests.values()) request.reject(error)
    this.requests.clear()
  }

  private async releaseLock (lock: Lock): Promise<void> {
    const reply = await this.request('release', lock.resource, id => ({ type: 'lock-release', id, resource: lock.resource }))
    this.gone(lock.info)
    // not the holder any more (expired, released by an admin, lost with the session): released all the same
    if (reply.code !== '' && reply.code !== 'TANDEM_ERR_NOT_LOCK_HOLDER') throw replyError(reply.code, lock.resource)
  }

  /** Sends a lock request once greeted, and resolves with the server's reply. */
  private async request (kind: Request['kind'], resource: string, build: (id: number) => TandemMessage): Promise<Reply> {
    await this.link.welcomed()
    return await new Promise<Reply>((resolve, reject) => {
      const id = this.nextRequestId++
      this.requests.set(id, { resource, kind, resolve, reject })
      if (!this.link.send(build(id))) {
        this.requests.delete(id)
        reject(new TandemError('TANDEM_ERR_DISCONNECTED'))
      }
    })
  }

  private snapshot (locks: LockInfo[]): void {
    const sessionId = this.link.sessionId()
    this.book.reset(locks)
    for (const lock of [...this.own.values()]) {
      const current = this.book.get(lock.resource)
      if (current !== undefined && current.sessionId === sessionId && current.token === lock.token) continue
      this.gone(lock.info)
      this.link.emit({ type: 'released', lock: lock.info, reason: 'lost' })
    }
    for (const lock of locks) {
      if (lock.sessionId !== sessionId || this.own.has(lock.resource)) continue
      // granted just before a drop, its reply lost: nobody here holds it, so give it back
      const asked = [...this.requests.values()].some(r => r.kind === 'acquire' && r.resource === lock.resource)
      if (!asked) this.link.send({ type: 'lock-release', id: this.nextRequestId++, resource: lock.resource })
    }
    this.link.emit({ type: 'snapshot', locks: this.book.list() })
  }

  private gone (info: LockInfo): void {
    this.book.delete(info)
    const own = this.own.get(info.resource)
    if (own !== undefined && own.token === info.token) {
      own.released = true
      this.own.delete(info.resource)
    }
  }
}
