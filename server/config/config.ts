import proxyAddr from 'proxy-addr'
import type { Server as HttpServer } from 'node:http'
import type { Server as HttpsServer } from 'node:https'
import type { Logger } from 'pino'
import { TandemError } from '../../shared/errors.js'
import type { Store } from '../store/store.js'
import type { AuthenticateHook } from '../auth/auth.js'
import type { Bus } from '../cluster/bus.js'

/** Options of {@link createServer}. Every field is optional; defaults are in DEFAULT_OPTIONS. */
export interface ServerOptions {
  /** TCP port; 0 picks a free one. @default 1234 */
  port?: number
  /** Interface to listen on. @default '127.0.0.1' */
  host?: string
  /** Folder of the embedded SQLite database. @default './data' */
  dataDir?: string
  /** `sqlite`, `memory`, a `postgres://` URL, or a Store instance. @default 'sqlite' */
  persistence?: string | Store
  /**
   * How SQLite commits: `normal` (WAL, synchronous=NORMAL) survives a crash of the process, the
   * last commits may be lost on power loss; `full` fsyncs every commit and survives power loss too.
   * @default 'normal'
   */
  sqliteDurability?: 'normal' | 'full'
  /** Redis URL; several instances then share documents, presence and locks. @default undefined */
  redis?: string
  /** Prefix of every Redis key and channel, so deployments (or tests) can share a Redis. @default 'tandem:' */
  redisPrefix?: string
  /** A Bus to share documents with other servers instead of Redis (e.g. in-process). @default undefined */
  bus?: Bus
  /** HS256 secret for JWTs; without it every connection is anonymous. @default undefined */
  authSecret?: string
  /**
   * Your own access check (session cookies, API keys...), used instead of the JWT check. It gets
   * the request's document, token, query, headers (cookies included) and remote address, and
   * returns the identity and access, or null/false to refuse with 401; throw a TandemError
   * (TANDEM_ERR_FORBIDDEN for 403) to choose the refusal. Any other error is logged and refused
   * with 500. It must settle within `authTimeoutMs`. @default undefined
   */
  authenticate?: AuthenticateHook
  /** A connection whose authentication takes longer is refused with 503. 0: no limit. @default 10_000 */
  authTimeoutMs?: number
  /** Bearer token for the admin HTTP endpoints (`/api/*`). @default undefined */
  adminToken?: string
  /** Ping every connection this often. @default 10_000 */
  heartbeatIntervalMs?: number
  /** A connection silent this long is terminated. @default 30_000 */
  heartbeatTimeoutMs?: number
  /**
   * A client sent nothing this long gets a keepalive message (an empty awareness update), also
   * while its document is still loading: the stock y-websocket client reconnects after 30 s
   * without a message, and ignores pings. @default 15_000
   */
  keepaliveMs?: number
  /** A dropped session may resume this long. @default 10_000 */
  reconnectGraceMs?: number
  /**
   * A session with no edits and no awareness changes for this long ends with close code 4408
   * (reason `idle`). 0: never. @default 0
   */
  sessionIdleTimeoutMs?: number
  /**
   * How long a revocation is kept (`POST /api/revocations`): set it to at least the longest
   * token lifetime you issue, since a revoked token is refused only while its revocation is
   * kept. @default 86_400_000
   */
  revocationTtlMs?: number
  /** Presence turns idle after this long without activity. @default 60_000 */
  idleAfterMs?: number
  /** Default lease of an edit lock. @default 30_000 */
  lockTtlMs?: number
  /**
   * Shortest lease a client may ask for: a shorter `ttlMs` is raised to this. A lease only
   * matters once its holder stops being renewed, and each lock costs a renewal every third of
   * its lease, so a 10 ms lease buys nothing and costs 300 renewals a second. @default 1_000
   */
  lockMinTtlMs?: number
  /**
   * Locks one session may hold plus lock requests it may have queued or under way; past it a
   * request is refused with TANDEM_ERR_TOO_MANY_LOCKS. 0: no limit. @default 100
   */
  maxLocksPerSession?: number
  /** Larger frames close the socket with 1009. @default 16_777_216 */
  maxMessageSize?: number
  /**
   * The largest first sync (the sync step 2 answering the server's, once per connection) a
   * client may send; every other frame keeps maxMessageSize. Larger closes with 4413, final.
   * Values below maxMessageSize act as maxMessageSize. @default 268_435_456
   */
  maxSyncSize?: number
  /** Origin allow-list; undefined allows any. @default undefined */
  allowedOrigins?: readonly string[]
  /**
   * Reverse proxies (addresses or CIDRs) whose `X-Forwarded-For` gives the client's address, for
   * per-address limits and logs; from anyone else the header is ignored. @default []
   */
  trustProxy?: readonly string[]
  /** Sustained messages per second one connection may send; faster closes it with 1013. 0: no limit. @default 100 */
  maxMessagesPerSecond?: number
  /** Messages one connection may send in a burst above the sustained rate. @default 1_000 */
  messageBurst?: number
  /** Open connections (and handshakes) per remote address; more are refused with 429. 0: no limit. @default 100 */
  maxConnectionsPerIp?: number
  /** Documents loaded at once; a connection to another one is refused with 503. 0: no limit. @default 10_000 */
  maxDocuments?: number
  /** Bytes queued for a client that does not read; past this it is terminated. @default 16_777_216 */
  maxBufferedBytes?: number
  /**
   * An existing http or https server to attach to instead of creating one: Tandem handles its
   * WebSocket upgrades and leaves its requests to you (mount `router.handle` for /healthz...).
   * `listen()` makes it listen unless it already does; `close()` never closes it. @default undefined
   */
  server?: HttpServer | HttpsServer
  /** The most a graceful shutdown may take. @default 10_000 */
  shutdownTimeoutMs?: number
  /** Compact a document's update log once it holds this many updates. @default 500 */
  compactAfterUpdates?: number
  /** Compact a document's update log once it holds this many bytes. @default 4_194_304 */
  compactAfterBytes?: number
  /**
   * How long the first update after a quiet spell waits for others to share its commit. Relays
   * never wait for it; acknowledgements do. 0 commits at the end of the event-loop turn. @default 2
   */
  commitDelayMs?: number
  /**
   * A changed document gets an automatic version when its last one is older than this. 0: no
   * automatic versions. @default 600_000
   */
  versionIntervalMs?: number
  /** Automatic versions kept per document; older ones are dropped. @default 100 */
  versionRetention?: number
  /** Webhook receivers: every event is POSTed to each. Needs `webhookSecret`. @default undefined */
  webhookUrls?: readonly string[]
  /** Key of the webhooks' `Tandem-Signature` HMAC. @default undefined */
  webhookSecret?: string
  /** `document.updated` goes out at most once per this long per document. @default 2_000 */
  webhookDebounceMs?: number
  /** First delay before a failed webhook delivery is retried; it doubles up to 5 minutes. @default 1_000 */
  webhookBackoffMs?: number
  /** A webhook receiver that has not answered within this long has failed the attempt. @default 10_000 */
  webhookTimeoutMs?: number
  /**
   * How long a deleted document (DELETE /api/documents/:name) can be restored; after that its
   * data is purged and the name is free. 0 purges at once. @default 604_800_000 (7 days)
   */
  deletedRetentionMs?: number
  /** pino level, used when no logger is given. @default 'info' */
  logLevel?: string
  /** A pino logger to use instead of creating one. @default undefined */
  logger?: Logger
}

/** Options after defaults and validation: every field present, frozen. */
type OptionalOption = 'redis' | 'bus' | 'authSecret' | 'adminToken' | 'allowedOrigins' | 'logger' | 'authenticate' | 'server' | 'webhookUrls' | 'webhookSecret'
export type ResolvedOptions = Readonly<Required<Omit<ServerOptions, OptionalOption>>> & Readonly<Pick<ServerOptions, OptionalOption>>

/** The defaults, with units in the numbers. */
export const DEFAULT_OPTIONS = Object.freeze({
  port: 1234,
  host: '127.0.0.1',
  dataDir: './data',
  persistence: 'sqlite',
  sqliteDurability: 'normal',
  redisPrefix: 'tandem:',
  trustProxy: [],
  heartbeatIntervalMs: 10_000,
  heartbeatTimeoutMs: 30_000,
  keepaliveMs: 15_000,
  reconnectGraceMs: 10_000,
  idleAfterMs: 60_000,
  sessionIdleTimeoutMs: 0,
  revocationTtlMs: 24 * 60 * 60_000,
  lockTtlMs: 30_000,
  lockMinTtlMs: 1_000,
  maxLocksPerSession: 100,
  maxMessageSize: 16 * 1024 * 1024,
  maxSyncSize: 256 * 1024 * 1024,
  authTimeoutMs: 10_000,
  maxMessagesPerSecond: 100,
  messageBurst: 1_000,
  maxConnectionsPerIp: 100,
  maxDocuments: 10_000,
  maxBufferedBytes: 16 * 1024 * 1024,
  shutdownTimeoutMs: 10_000,
  compactAfterUpdates: 500,
  compactAfterBytes: 4 * 1024 * 1024,
  commitDelayMs: 2,
  versionIntervalMs: 600_000,
  versionRetention: 100,
  webhookDebounceMs: 2_000,
  webhookBackoffMs: 1_000,
  webhookTimeoutMs: 10_000,
  deletedRetentionMs: 7 * 24 * 60 * 60 * 1000,
  logLevel: 'info'
} satisfies Partial<ServerOptions>)

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']

/** Merges options with the defaults (`??`, so 0 stays 0), validates and freezes them. */
export function resolveOptions (options: ServerOptions = {}): ResolvedOptions {
  const resolved = {
    port: options.port ?? DEFAULT_OPTIONS.port,
    host: options.host ?? DEFAULT_OPTIONS.host,
    dataDir: options.dataDir ?? DEFAULT_OPTIONS.dataDir,
    persistence: options.persistence ?? DEFAULT_OPTIONS.persistence,
    sqliteDurability: options.sqliteDurability ?? DEFAULT_OPTIONS.sqliteDurability,
    redis: options.redis,
    redisPrefix: options.redisPrefix ?? DEFAULT_OPTIONS.redisPrefix,
    bus: options.bus,
    authSecret: options.authSecret,
    adminToken: options.adminToken,
    authenticate: options.authenticate,
    authTimeoutMs: options.authTimeoutMs ?? DEFAULT_OPTIONS.authTimeoutMs,
    heartbeatIntervalMs: options.heartbeatIntervalMs ?? DEFAULT_OPTIONS.heartbeatIntervalMs,
    heartbeatTimeoutMs: options.heartbeatTimeoutMs ?? DEFAULT_OPTIONS.heartbeatTimeoutMs,
    keepaliveMs: options.keepaliveMs ?? DEFAULT_OPTIONS.keepaliveMs,
    reconnectGraceMs: options.reconnectGraceMs ?? DEFAULT_OPTIONS.reconnectGraceMs,
    idleAfterMs: options.idleAfterMs ?? DEFAULT_OPTIONS.idleAfterMs,
    sessionIdleTimeoutMs: options.sessionIdleTimeoutMs ?? DEFAULT_OPTIONS.sessionIdleTimeoutMs,
    revocationTtlMs: options.revocationTtlMs ?? DEFAULT_OPTIONS.revocationTtlMs,
    lockTtlMs: options.lockTtlMs ?? DEFAULT_OPTIONS.lockTtlMs,
    lockMinTtlMs: options.lockMinTtlMs ?? DEFAULT_OPTIONS.lockMinTtlMs,
    maxLocksPerSession: options.maxLocksPerSession ?? DEFAULT_OPTIONS.maxLocksPerSession,
    maxMessageSize: options.maxMessageSize ?? DEFAULT_OPTIONS.maxMessageSize,
    maxSyncSize: options.maxSyncSize ?? DEFAULT_OPTIONS.maxSyncSize,
    allowedOrigins: options.allowedOrigins,
    trustProxy: Object.freeze([...(options.trustProxy ?? DEFAULT_OPTIONS.trustProxy)]),
    maxMessagesPerSecond: options.maxMessagesPerSecond ?? DEFAULT_OPTIONS.maxMessagesPerSecond,
    messageBurst: options.messageBurst ?? DEFAULT_OPTIONS.messageBurst,
    maxConnectionsPerIp: options.maxConnectionsPerIp ?? DEFAULT_OPTIONS.maxConnectionsPerIp,
    maxDocuments: options.maxDocuments ?? DEFAULT_OPTIONS.maxDocuments,
    maxBufferedBytes: options.maxBufferedBytes ?? DEFAULT_OPTIONS.maxBufferedBytes,
    server: options.server,
    shutdownTimeoutMs: options.shutdownTimeoutMs ?? DEFAULT_OPTIONS.shutdownTimeoutMs,
    compactAfterUpdates: options.compactAfterUpdates ?? DEFAULT_OPTIONS.compactAfterUpdates,
    compactAfterBytes: options.compactAfterBytes ?? DEFAULT_OPTIONS.compactAfterBytes,
    commitDelayMs: options.commitDelayMs ?? DEFAULT_OPTIONS.commitDelayMs,
    versionIntervalMs: options.versionIntervalMs ?? DEFAULT_OPTIONS.versionIntervalMs,
    versionRetention: options.versionRetention ?? DEFAULT_OPTIONS.versionRetention,
    webhookUrls: options.webhookUrls === undefined || options.webhookUrls.length === 0 ? undefined : Object.freeze([...options.webhookUrls]),
    webhookSecret: options.webhookSecret,
    webhookDebounceMs: options.webhookDebounceMs ?? DEFAULT_OPTIONS.webhookDebounceMs,
    webhookBackoffMs: options.webhookBackoffMs ?? DEFAULT_OPTIONS.webhookBackoffMs,
    webhookTimeoutMs: options.webhookTimeoutMs ?? DEFAULT_OPTIONS.webhookTimeoutMs,
    deletedRetentionMs: options.deletedRetentionMs ?? DEFAULT_OPTIONS.deletedRetentionMs,
    logLevel: options.logLevel ?? DEFAULT_OPTIONS.logLevel,
    logger: options.logger
  }
  checkInteger('port', resolved.port, 0, 65_535)
  checkInteger('heartbeatIntervalMs', resolved.heartbeatIntervalMs, 1, 2 ** 31 - 1)
  checkInteger('heartbeatTimeoutMs', resolved.heartbeatTimeoutMs, 1, 2 ** 31 - 1)
  checkInteger('keepaliveMs', resolved.keepaliveMs, 1, 2 ** 31 - 1)
  checkInteger('reconnectGraceMs', resolved.reconnectGraceMs, 0, 2 ** 31 - 1)
  checkInteger('idleAfterMs', resolved.idleAfterMs, 1, 2 ** 31 - 1)
  checkInteger('sessionIdleTimeoutMs', resolved.sessionIdleTimeoutMs, 0, 2 ** 31 - 1)
  checkInteger('revocationTtlMs', resolved.revocationTtlMs, 1_000, 2 ** 42)
  checkInteger('lockTtlMs', resolved.lockTtlMs, 1, 2 ** 31 - 1)
  checkInteger('lockMinTtlMs', resolved.lockMinTtlMs, 1, 2 ** 31 - 1)
  if (resolved.lockTtlMs < resolved.lockMinTtlMs) {
    throw invalid('lockTtlMs', resolved.lockTtlMs, `at least lockMinTtlMs (${resolved.lockMinTtlMs})`)
  }
  checkInteger('maxLocksPerSession', resolved.maxLocksPerSession, 0, 2 ** 31 - 1)
  checkInteger('maxMessageSize', resolved.maxMessageSize, 64, 2 ** 31 - 1)
  checkInteger('maxSyncSize', resolved.maxSyncSize, 64, 2 ** 31 - 1)
  checkInteger('shutdownTimeoutMs', resolved.shutdownTimeoutMs, 0, 2 ** 31 - 1)
  checkInteger('authTimeoutMs', resolved.authTimeoutMs, 0, 2 ** 31 - 1)
  checkInteger('maxMessagesPerSecond', resolved.maxMessagesPerSecond, 0, 2 ** 31 - 1)
  checkInteger('messageBurst', resolved.messageBurst, 1, 2 ** 31 - 1)
  checkInteger('maxConnectionsPerIp', resolved.maxConnectionsPerIp, 0, 2 ** 31 - 1)
  checkInteger('maxDocuments', resolved.maxDocuments, 0, 2 ** 31 - 1)
  checkInteger('maxBufferedBytes', resolved.maxBufferedBytes, 1024, 2 ** 53)
  if (resolved.authenticate !== undefined && typeof resolved.authenticate !== 'function') {
    throw invalid('authenticate', typeof resolved.authenticate, 'a function')
  }
  if (resolved.adminToken === '') throw invalid('adminToken', '', 'a non-empty token')
  checkInteger('compactAfterUpdates', resolved.compactAfterUpdates, 1, 2 ** 31 - 1)
  checkInteger('compactAfterBytes', resolved.compactAfterBytes, 1, 2 ** 53)
  checkInteger('commitDelayMs', resolved.commitDelayMs, 0, 1_000)
  checkInteger('versionIntervalMs', resolved.versionIntervalMs, 0, 2 ** 31 - 1)
  checkInteger('versionRetention', resolved.versionRetention, 1, 1_000_000)
  checkInteger('webhookDebounceMs', resolved.webhookDebounceMs, 0, 2 ** 31 - 1)
  checkInteger('webhookBackoffMs', resolved.webhookBackoffMs, 1, 5 * 60_000)
  checkInteger('webhookTimeoutMs', resolved.webhookTimeoutMs, 1, 2 ** 31 - 1)
  for (const url of resolved.webhookUrls ?? []) {
    if (!/^https?:\/\/[^\s]+$/.test(url) || !URL.canParse(url)) throw invalid('webhookUrl', url, 'an http:// or https:// URL')
  }
  if (resolved.webhookUrls !== undefined && (resolved.webhookSecret === undefined || resolved.webhookSecret === '')) {
    throw new TandemError('TANDEM_ERR_INVALID_OPTION', 'webhookUrl (--webhook-url) needs webhookSecret (--webhook-secret) to sign its events')
  }
  checkInteger('deletedRetentionMs', resolved.deletedRetentionMs, 0, 2 ** 53)
  if (!LOG_LEVELS.includes(resolved.logLevel)) {
    throw invalid('logLevel', resolved.logLevel, `one of ${LOG_LEVELS.join(', ')}`)
  }
  if (typeof resolved.persistence === 'string' && !['sqlite', 'memory'].includes(resolved.persistence) &&
      !/^postgres(ql)?:\/\//.test(resolved.persistence)) {
    throw invalid('persistence', resolved.persistence, 'sqlite, memory or a postgres:// URL')
  }
  try {
    proxyAddr.compile([...resolved.trustProxy])
  } catch (err) {
    throw invalid('trustProxy', resolved.trustProxy, `addresses or CIDRs (${(err as Error).message})`)
  }
  if (resolved.sqliteDurability !== 'normal' && resolved.sqliteDurability !== 'full') {
    throw invalid('sqliteDurability', resolved.sqliteDurability, 'normal or full')
  }
  if (resolved.redis !== undefined && !/^rediss?:\/\//.test(resolved.redis)) {
    throw invalid('redis', resolved.redis, 'a redis:// or rediss:// URL')
  }
  if (resolved.redisPrefix.length > 256) throw invalid('redisPrefix', resolved.redisPrefix, 'at most 256 characters')
  return Object.freeze(resolved)
}

function checkInteger (name: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw invalid(name, value, `an integer from ${min} to ${max}`)
  }
}

function invalid (name: string, value: unknown, expected: string): TandemError {
  return new TandemError('TANDEM_ERR_INVALID_OPTION', `${name} is ${JSON.stringify(value)}, expected ${expected}`)
}
