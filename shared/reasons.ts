/**
 * Why a session ended, and what follows from it: the one vocabulary of the server, the client,
 * metrics (the `reason` label), `/api/stats`, session-end log lines and presence events.
 */

/**
 * Every way a session ends. `error`: the server closed it for bad input or a failure; `expired`:
 * its token expired unrefreshed; `revoked`: a revocation covered it; `idle`: no edits and no
 * awareness changes for --session-idle-timeout.
 */
export const END_REASONS = ['leave', 'disconnect', 'timeout', 'kicked', 'shutdown', 'error', 'expired', 'revoked', 'idle'] as const
/** Why a session ended. */
export type EndReason = typeof END_REASONS[number]

/** The reasons presence announces with `left`: every end reason but `error` (see leaveReason). */
export const LEAVE_REASONS = ['leave', 'disconnect', 'timeout', 'kicked', 'shutdown', 'expired', 'revoked', 'idle'] as const
/** Why a user left a document. */
export type LeaveReason = typeof LEAVE_REASONS[number]

/** The ends a Tandem session survives for its reconnect grace: the connection dropped. */
export const DROP_REASONS = ['disconnect', 'timeout'] as const
/** Why a session that may still resume dropped. */
export type DropReason = typeof DROP_REASONS[number]

/**
 * Why a lock was released: by its holder (`release`), by lease (`expired`) or admin, or by its
 * session's end. `expired` is listed once: it is also a leave reason (the token expired).
 */
export const LOCK_RELEASE_REASONS = ['release', 'admin', ...LEAVE_REASONS] as const
/** Why a lock was released. */
export type LockReleaseReason = typeof LOCK_RELEASE_REASONS[number]

/**
 * What the other users are told when a session ends: a session the server closed for bad input
 * (`error`) simply went away for them (`disconnect`); it was not kicked by anyone.
 */
export function leaveReason (reason: EndReason): LeaveReason {
  return reason === 'error' ? 'disconnect' : reason
}

/** True when a Tandem session ending this way is held for its reconnect grace. */
export function isDrop (reason: EndReason): reason is DropReason {
  return (DROP_REASONS as readonly string[]).includes(reason)
}
