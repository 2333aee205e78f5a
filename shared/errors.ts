import { CloseCode, type CloseCodeValue } from './constants.js'

/** What the registry says of one error. */
export interface ErrorSpec {
  /** Says what went wrong and what to change. */
  message: string
  /** The WebSocket close code, where the error ends a connection. */
  closeCode: CloseCodeValue | undefined
  /** The HTTP status where it refuses a request (an upgrade, or an /api call). */
  httpStatus: number
}

/**
 * The one registry of Tandem errors. Each has a stable code, a message that says what to change,
 * the close code used where it ends a connection, and the HTTP status where it refuses a request.
 * README's "Errors" table is generated from it (`npm run docs:errors`); a test checks it whole.
 */
export const ERRORS = Object.freeze({
  TANDEM_ERR_MALFORMED_MESSAGE: { message: 'The message could not be decoded', closeCode: CloseCode.MALFORMED, httpStatus: 400 },
  TANDEM_ERR_INVALID_UPDATE: { message: 'The Yjs update could not be decoded; it was not applied', closeCode: CloseCode.MALFORMED, httpStatus: 400 },
  TANDEM_ERR_MESSAGE_TOO_BIG: { message: 'The message is larger than the server accepts (--max-message-size)', closeCode: CloseCode.MESSAGE_TOO_BIG, httpStatus: 413 },
  TANDEM_ERR_SYNC_TOO_BIG: { message: 'The first sync (sync step 2) is larger than the server accepts (--max-sync-size); reconnecting cannot help, sync in smaller parts', closeCode: CloseCode.SYNC_TOO_BIG, httpStatus: 413 },
  TANDEM_ERR_UNAUTHENTICATED: { message: 'A valid token is required (query parameter "token" or Sec-WebSocket-Protocol)', closeCode: CloseCode.UNAUTHENTICATED, httpStatus: 401 },
  TANDEM_ERR_FORBIDDEN: { message: 'The token does not grant access to this document', closeCode: CloseCode.FORBIDDEN, httpStatus: 403 },
  TANDEM_ERR_KICKED: { message: 'An administrator removed this user from the document; reconnecting needs the administrator\'s consent', closeCode: CloseCode.FORBIDDEN, httpStatus: 403 },
  TANDEM_ERR_TOKEN_EXPIRED: { message: 'The token expired and was not refreshed in time; connect again with a new token', closeCode: CloseCode.UNAUTHENTICATED, httpStatus: 401 },
  TANDEM_ERR_REVOKED: { message: 'The session or its token was revoked; connect again with a new token', closeCode: CloseCode.UNAUTHENTICATED, httpStatus: 401 },
  TANDEM_ERR_TOKEN_REFRESH_FAILED: { message: 'The token function failed; the session lasts until the current token expires, and refreshing is retried', closeCode: undefined, httpStatus: 503 },
  TANDEM_ERR_IDLE_TIMEOUT: { message: 'The session had no edits and no awareness changes for longer than the server allows (--session-idle-timeout)', closeCode: CloseCode.IDLE, httpStatus: 408 },
  TANDEM_ERR_AUTH_TIMEOUT: { message: 'Authentication took longer than the server allows (--auth-timeout); reconnect later', closeCode: CloseCode.TRY_AGAIN_LATER, httpStatus: 503 },
  TANDEM_ERR_CLIENT_ID_TAKEN: { message: 'The update writes under a Yjs client id another user owns in this document; it was not applied (reload to get a new client id)', closeCode: CloseCode.FORBIDDEN, httpStatus: 409 },
  TANDEM_ERR_CLIENT_ID_IN_USE: { message: 'The update writes under a Yjs client id another connection holds; it was not applied (reconnect later)', closeCode: CloseCode.TRY_AGAIN_LATER, httpStatus: 409 },
  TANDEM_ERR_READ_ONLY: { message: 'This session has read access only; the update was not applied', closeCode: undefined, httpStatus: 403 },
  TANDEM_ERR_INVALID_DOCUMENT_NAME: { message: 'Document names are 1 to 512 characters without control characters', closeCode: undefined, httpStatus: 400 },
  TANDEM_ERR_INVALID_OPTION: { message: 'An option has an invalid value', closeCode: undefined, httpStatus: 400 },
  TANDEM_ERR_SHUTTING_DOWN: { message: 'The server is shutting down; reconnect later', closeCode: CloseCode.SERVICE_RESTART, httpStatus: 503 },
  TANDEM_ERR_RATE_LIMITED: { message: 'Too many messages; slow down and reconnect later', closeCode: CloseCode.TRY_AGAIN_LATER, httpStatus: 429 },
  TANDEM_ERR_UPDATE_INCOMPLETE: { message: 'The update depends on content the server does not have, and the server holds no more such updates for this session or document; reconnect to sync in full', closeCode: CloseCode.TRY_AGAIN_LATER, httpStatus: 400 },
  TANDEM_ERR_OVERLOADED: { message: 'The server is at capacity; reconnect later', closeCode: CloseCode.TRY_AGAIN_LATER, httpStatus: 503 },
  TANDEM_ERR_STORE_UNAVAILABLE: { message: 'The store cannot be opened or reached', closeCode: undefined, httpStatus: 503 },
  TANDEM_ERR_STORE_FAILED: { message: 'The store failed to write; the write will be retried', closeCode: undefined, httpStatus: 503 },
  TANDEM_ERR_REDIS_UNAVAILABLE: { message: 'Redis cannot be reached (--redis)', closeCode: undefined, httpStatus: 503 },
  TANDEM_ERR_LOCK_HELD: { message: 'The lock is held by another session', closeCode: undefined, httpStatus: 409 },
  TANDEM_ERR_LOCK_TIMEOUT: { message: 'The lock was not granted within waitMs', closeCode: undefined, httpStatus: 409 },
  TANDEM_ERR_LOCKED: { message: 'The change touched a shared type locked by another session; the server undid that part for everyone', closeCode: undefined, httpStatus: 409 },
  TANDEM_ERR_NOT_LOCK_HOLDER: { message: 'Only the holder can release a lock', closeCode: undefined, httpStatus: 409 },
  TANDEM_ERR_INVALID_RESOURCE: { message: 'Lock resource names are 1 to 256 characters', closeCode: undefined, httpStatus: 400 },
  TANDEM_ERR_DOCUMENT_DELETED: { message: 'The document was deleted; an administrator can restore it during the retention period (POST /api/documents/:name/restore)', closeCode: CloseCode.DOCUMENT_DELETED, httpStatus: 410 },
  TANDEM_ERR_TOO_MANY_LOCKS: { message: 'This session holds or awaits as many locks as the server allows (--max-locks-per-session); release some first', closeCode: undefined, httpStatus: 429 },
  TANDEM_ERR_DISCONNECTED: { message: 'The client is not connected', closeCode: undefined, httpStatus: 503 },
  TANDEM_ERR_DESTROYED: { message: 'The client was destroyed', closeCode: undefined, httpStatus: 410 }
} satisfies Record<string, ErrorSpec>)

/** A stable Tandem error code. */
export type ErrorCode = keyof typeof ERRORS

/** An error with a stable code; `closeCode` is set where it ends a connection. */
export class TandemError extends Error {
  readonly code: ErrorCode
  readonly closeCode: CloseCodeValue | undefined
  readonly httpStatus: number

  /**
   * @param code - the registry entry
   * @param detail - what exactly was wrong, appended to the registry's message
   * @param options - `cause` when wrapping another error
   */
  constructor (code: ErrorCode, detail?: string, options?: { cause?: unknown }) {
    const entry = ERRORS[code]
    super(detail === undefined ? entry.message : `${entry.message}: ${detail}`, options)
    this.name = 'TandemError'
    this.code = code
    this.closeCode = entry.closeCode
    this.httpStatus = entry.httpStatus
  }
}

/** True when `err` is a TandemError, optionally with the given code. */
export function isTandemError (err: unknown, code?: ErrorCode): err is TandemError {
  return err instanceof TandemError && (code === undefined || err.code === code)
}
