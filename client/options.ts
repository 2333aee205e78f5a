import type * as Y from 'yjs'
import { TandemError } from '../shared/errors.js'
import { TANDEM_QUERY_PARAM } from '../shared/constants.js'
import { validateDocumentName } from '../shared/document-name.js'
import type { TokenFunction } from './token.js'

/** Connection status of a client. */
export type ClientStatus = 'connecting' | 'connected' | 'disconnected'

/** A WebSocket class: the browser's, or `ws` in Node. */
export type WebSocketClass = typeof globalThis.WebSocket

/** Options of a TandemClient. */
export interface TandemClientOptions {
  /** The server, e.g. `ws://localhost:1234`. */
  url: string
  /** The document name (may contain `/`). */
  document: string
  /**
   * A JWT when the server has an auth secret, or a function that returns one: it is called for
   * the first connection, for every reconnect, and when the server says the token expires soon
   * (the new token is then sent on the same connection: no reconnect, nothing lost). If it
   * throws, the session lasts until the current token expires, it is retried with backoff, and
   * `error` reports TANDEM_ERR_TOKEN_REFRESH_FAILED. @default undefined
   */
  token?: string | TokenFunction
  /**
   * Who this is, for servers without an auth secret (with one, the token decides). `id` keeps
   * the same user across connections, which is what makes two tabs one presence entry.
   * @default anonymous
   */
  user?: { id?: string, name?: string, color?: string }
  /** A WebSocket class; required in Node (`ws`). @default globalThis.WebSocket */
  WebSocketPolyfill?: WebSocketClass
  /** The Y.Doc to sync. @default a new Y.Doc */
  doc?: Y.Doc
  /** Connect at once. @default true */
  connect?: boolean
  /** Browser: ask the page to confirm closing while `unsyncedChanges > 0`. @default false */
  warnBeforeUnload?: boolean
  /** Keep the document in IndexedDB (y-indexeddb) so offline edits survive a closed tab. @default false */
  offline?: boolean
  /** The most `leave()` waits for pending changes to be stored. @default 5_000 */
  leaveTimeoutMs?: number
  /** The most a lock request waits for a connection before it fails. @default 10_000 */
  connectTimeoutMs?: number
  /** Longest pause between reconnection attempts. @default 2_500 */
  maxBackoffTimeMs?: number
  /** Share updates between tabs over BroadcastChannel too (y-websocket's option). @default false */
  broadcastChannel?: boolean
  /** Extra query parameters for the server. @default {} */
  params?: Record<string, string>
  /**
   * A sync frame (the step 2 after connecting, or an update) larger than this is sent as
   * several frames of at most this size, in an order the server can apply one by one (see
   * PROTOCOL.md "Large first syncs and chunked sync"). Keep it below the server's
   * --max-message-size. From 1024 to 2^31 - 1. @default 1_048_576
   */
  syncChunkBytes?: number
}

/** Defaults of TandemClientOptions. */
export const DEFAULT_CLIENT_OPTIONS = Object.freeze({
  connect: true,
  warnBeforeUnload: false,
  offline: false,
  leaveTimeoutMs: 5_000,
  connectTimeoutMs: 10_000,
  maxBackoffTimeMs: 2_500,
  broadcastChannel: false,
  syncChunkBytes: 1024 * 1024
})

/** The options after defaults and validation. */
export type ResolvedClientOptions = Readonly<Required<Omit<TandemClientOptions, 'token' | 'user' | 'WebSocketPolyfill' | 'doc' | 'params'>> & Pick<TandemClientOptions, 'token' | 'user'>>

/** Merges the options with the defaults (`??`), validates and freezes them. */
export function resolveClientOptions (options: TandemClientOptions): ResolvedClientOptions {
  if (typeof options.url !== 'string' || !/^(wss?|https?):\/\//.test(options.url)) {
    throw new TandemError('TANDEM_ERR_INVALID_OPTION', `url is ${JSON.stringify(options.url)}, expected a ws://, wss://, http:// or https:// URL`)
  }
  validateDocumentName(options.document)
  const resolved = {
    url: options.url,
    document: options.document,
    token: options.token,
    user: options.user,
    connect: options.connect ?? DEFAULT_CLIENT_OPTIONS.connect,
    warnBeforeUnload: options.warnBeforeUnload ?? DEFAULT_CLIENT_OPTIONS.warnBeforeUnload,
    offline: options.offline ?? DEFAULT_CLIENT_OPTIONS.offline,
    leaveTimeoutMs: options.leaveTimeoutMs ?? DEFAULT_CLIENT_OPTIONS.leaveTimeoutMs,
    connectTimeoutMs: options.connectTimeoutMs ?? DEFAULT_CLIENT_OPTIONS.connectTimeoutMs,
    maxBackoffTimeMs: options.maxBackoffTimeMs ?? DEFAULT_CLIENT_OPTIONS.maxBackoffTimeMs,
    broadcastChannel: options.broadcastChannel ?? DEFAULT_CLIENT_OPTIONS.broadcastChannel,
    syncChunkBytes: options.syncChunkBytes ?? DEFAULT_CLIENT_OPTIONS.syncChunkBytes
  }
  if (!Number.isInteger(resolved.syncChunkBytes) || resolved.syncChunkBytes < 1024 || resolved.syncChunkBytes > 2 ** 31 - 1) {
    throw new TandemError('TANDEM_ERR_INVALID_OPTION', `syncChunkBytes is ${JSON.stringify(resolved.syncChunkBytes)}, expected an integer from 1024 to ${2 ** 31 - 1}`)
  }
  for (const key of ['leaveTimeoutMs', 'connectTimeoutMs', 'maxBackoffTimeMs'] as const) {
    const value = resolved[key]
    if (!Number.isInteger(value) || value < 0 || value > 2 ** 31 - 1) {
      throw new TandemError('TANDEM_ERR_INVALID_OPTION', `${key} is ${JSON.stringify(value)}, expected an integer from 0 to ${2 ** 31 - 1}`)
    }
  }
  return Object.freeze(resolved)
}

/** The query parameters of the first connection (the token is added by TokenSource). */
export function connectionParams (options: TandemClientOptions): Record<string, string> {
  const params: Record<string, string> = { ...options.params, [TANDEM_QUERY_PARAM]: '1' }
  if (options.user?.id !== undefined) params.user = options.user.id
  if (options.user?.name !== undefined) params.name = options.user.name
  if (options.user?.color !== undefined) params.color = options.user.color
  return params
}
