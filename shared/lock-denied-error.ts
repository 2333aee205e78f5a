import { TandemError, type ErrorCode } from './errors.js'
import type { LockInfo } from './tandem.js'

/**
 * A lock that was not granted: TANDEM_ERR_LOCK_HELD (someone holds it and the request did not
 * wait) or TANDEM_ERR_LOCK_TIMEOUT (still held when `waitMs` ran out). `holder` is the lock as it
 * was held when the request was refused, or null if it was free by then.
 */
export class LockDeniedError extends TandemError {
  readonly holder: LockInfo | null

  constructor (code: Extract<ErrorCode, 'TANDEM_ERR_LOCK_HELD' | 'TANDEM_ERR_LOCK_TIMEOUT'>, resource: string, holder: LockInfo | null) {
    super(code, holder === null ? resource : `${resource} is held by ${holder.name} (${holder.userId})`)
    this.name = 'LockDeniedError'
    this.holder = holder
  }
}
