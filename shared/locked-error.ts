import { TandemError } from './errors.js'
import type { LockInfo } from './tandem.js'

/**
 * TANDEM_ERR_LOCKED: part of an update touched a shared type guarded by another session's `y:`
 * lock, and the server undid that part for everyone. `holder` is the lock that refused it.
 */
export class LockedError extends TandemError {
  readonly holder: LockInfo

  constructor (holder: LockInfo, detail?: string) {
    super('TANDEM_ERR_LOCKED', detail ?? `${holder.resource} is locked by ${holder.name} (${holder.userId})`)
    this.name = 'LockedError'
    this.holder = holder
  }
}
