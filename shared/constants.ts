/**
 * Wire constants shared by the server and the client. The y-websocket message types are fixed by
 * the stock provider; Tandem's own messages travel under one extra type that only clients which
 * opt in (query parameter `tandem=1`) ever receive.
 */

/** y-websocket message type: a y-protocols sync message follows. */
export const MESSAGE_SYNC = 0
/** y-websocket message type: an awareness update follows. */
export const MESSAGE_AWARENESS = 1
/** y-websocket message type: an auth message follows (0 = permission denied, then a reason). */
export const MESSAGE_AUTH = 2
/** y-websocket message type: the peer asks for every known awareness state. */
export const MESSAGE_QUERY_AWARENESS = 3
/** Tandem message type: a Tandem sub-message follows (see PROTOCOL.md). */
export const MESSAGE_TANDEM = 100

/** y-protocols sync sub-types. */
export const SYNC_STEP1 = 0
export const SYNC_STEP2 = 1
export const SYNC_UPDATE = 2

/** y-protocols auth sub-type. */
export const AUTH_PERMISSION_DENIED = 0

/** Query parameter a Tandem client sets to receive Tandem messages. */
export const TANDEM_QUERY_PARAM = 'tandem'

/** WebSocket close codes used by Tandem. 4400-4499 are final for the stock client. */
export const CloseCode = Object.freeze({
  /** Normal leave. */
  NORMAL: 1000,
  /** A frame over the maximum message size. */
  MESSAGE_TOO_BIG: 1009,
  /** The server is shutting down or restarting: reconnect later. */
  SERVICE_RESTART: 1012,
  /** Overloaded or rate-limited: reconnect later. */
  TRY_AGAIN_LATER: 1013,
  /** A frame that cannot be decoded or an update that cannot be applied. */
  MALFORMED: 4400,
  /** No valid credentials. */
  UNAUTHENTICATED: 4401,
  /** Valid credentials, but not for this. */
  FORBIDDEN: 4403,
  /** The document was deleted (DELETE /api/documents/:name): final, reconnecting cannot help. */
  DOCUMENT_DELETED: 4404,
  /** The session was inactive longer than --session-idle-timeout. */
  IDLE: 4408,
  /** The first sync is larger than --max-sync-size: final, reconnecting would send it again. */
  SYNC_TOO_BIG: 4413
} as const)

/** One of the close codes Tandem uses. */
export type CloseCodeValue = typeof CloseCode[keyof typeof CloseCode]

/** Limits on document names, as fixed by the contract. */
export const MAX_DOCUMENT_NAME_LENGTH = 512
/** Limit on lock resource names. */
export const MAX_RESOURCE_NAME_LENGTH = 256
