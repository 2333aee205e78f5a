import { ERRORS, TandemError, type ErrorCode } from '../shared/errors.js'
import type { LockInfo, LockReleaseReason } from '../shared/tandem.js'

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
