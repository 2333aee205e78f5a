// Longer than most files here (about 490 lines), on purpose: the composition root builds every
// part (store, writer, registry, locks, collaboration, cluster, live sessions, versions,
// webhooks, deletions, transport, HTTP) and connects their events, and its graceful shutdown
// undoes that in the one order that stores everything first. Policies live in the parts' folders.
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { once } from 'node:events'
import { Server as TlsServer } from 'node:tls'
import type { Logger } from 'pino'
import { resolveOptions, type ResolvedOptions, type ServerOptions } from './config/config.js'
import { createLogger } from './observability/logger.js'
import { openStore } from './store/open.js'
import type { Store } from './store/store.js'
import { UpdateWriter } from './document/writer.js'
import { DocumentRegistry } from './document/registry.js'
import { Session, type EndReason, type SessionHooks } from './session/session.js'
import { WebSocketTransport, type UpgradeRequest } from './transport/transport.js'
import { anonymous, fromHook, jwt, type Authenticate, type Identity } from './auth/auth.js'
import { JwtPool } from './auth/jwt-pool.js'
import { Router } from './http/router.js'
import { adminGuard } from './http/admin.js'
import { registerHealth } from './http/health.js'
import { HeartbeatLoop } from './session/heartbeat.js'
import type { SyncSocket } from './transport/sync-allowance.js'
import { withTimeout, type ConnectionCounter } from './transport/limits.js'
import { bindSocket } from './transport/socket-events.js'
import { Collaboration } from './session/collaboration.js'
import { RedisResumeRecords } from './session/redis-resume.js'
import { openLockTable } from './locks/open.js'
import { EnforcedLocks } from './document/type-guards.js'
import { registerApi } from './http/api.js'
import { openCluster, type Cluster } from './cluster/cluster.js'
import { TandemError, isTandemError } from '../shared/errors.js'
import { CloseCode } from '../shared/constants.js'
import { Metrics } from './observability/metrics.js'
import { SessionStats } from './observability/stats.js'
import { SessionAnalytics } from './observability/analytics.js'
import { Versions } from './versions/versions.js'
import { registerVersionsApi } from './http/versions.js'
import { Webhooks } from './webhooks/webhooks.js'
import { Deletions } from './document/deletion.js'
import { DocumentHandle, isServerMember } from './document/handle.js'
import type { DocumentApiSource } from './http/documents.js'
import { LiveSessions } from './session/live.js'
import { Revocations, type RevocationTarget } from './auth/revocations.js'
import type { Revocation } from './store/store.js'
import type { AuthRequest } from './auth/auth.js'

/** What admitting an upgrade found: who it is, and the session it resumes (several instances). */
interface Admission {
  identity: Identity
  /** Claimed from the resume records in Redis (see Collaboration.claim). */
  resumeId?: string
}

/** Lifecycle of a server, changed only by setStatus. */
export type ServerStatus = 'idle' | 'starting' | 'listening' | 'draining' | 'closed'

/**
 * A Tandem server: an HTTP server whose upgrades become document sessions. `listen()` opens the
 * store and starts accepting; `close()` drains: stop accepting, store everything, close every
 * socket with 1012, all within the shutdown timeout.
 */
export class TandemServer {
  readonly options: ResolvedOptions
  readonly logger: Logger
  readonly router = new Router()
  private lifecycle: ServerStatus = 'idle'
  readonly sessions = new Set<Session>()
  /** Prometheus metrics (`GET /metrics`). */
  readonly metrics: Metrics
  /** Session analytics over a recent window (`GET /api/stats`). */
  readonly stats = new SessionStats()
  private readonly analytics: SessionAnalytics
  /**
   * Webhooks, when `webhookUrls` is configured and the server listens: `webhooks?.documentDeleted(name)`
   * tells receivers a document was deleted.
   */
  webhooks: Webhooks | null = null
  private versionsOf: Versions | undefined
  private store: Store | undefined
  private writer: UpdateWriter | undefined
  private registry: DocumentRegistry | undefined
  private collab: Collaboration | undefined
  private deletions: Deletions | undefined
  private enforced: EnforcedLocks | undefined
  private cluster: Cluster | undefined
  private resumeRecords: RedisResumeRecords | undefined
  private http: HttpServer | undefined
  private transport: WebSocketTransport | undefined
  private readonly heartbeats: HeartbeatLoop
  private live: LiveSessions | undefined
  private revocationList: Revocations | undefined
  private closing: Promise<void> | undefined
  private readonly authenticate: Authenticate
  /** The worker threads verifying JWTs (with an auth secret and no hook). */
  private readonly jwtPool: JwtPool | undefined

  constructor (options: ServerOptions = {}) {
    this.options = resolveOptions(options)
    this.logger = this.options.logger ?? createLogger(this.options.logLevel)
    const { authenticate, authSecret, adminToken } = this.options
    if (authenticate === undefined && authSecret !== undefined) this.jwtPool = new JwtPool(authSecret)
    const pool = this.jwtPool
    this.authenticate = authenticate !== undefined ? fromHook(authenticate) : pool !== undefined ? jwt(token => pool.verify(token)) : anonymous()
    if (adminToken !== undefined) this.router.guard('/api', adminGuard(adminToken))
    registerHealth(this.router, { status: () => this.status, redisReady: () => this.cluster?.ready })
    this.heartbeats = new HeartbeatLoop(this.sessions, this.options.heartbeatIntervalMs, this.options.heartbeatTimeoutMs, this.options.keepaliveMs)
    // before the other /api routes: a document name may contain `/`, so theirs would match these paths
    registerVersionsApi(this.router, this)
    registerApi(this.router, { server: this })
    this.metrics = new Metrics({
      connections: () => this.sessions.size,
      sessions: () => this.sessions.size + (this.collab?.held ?? 0),
      documents: () => this.registry?.size ?? 0,
      usersPresent: () => this.collab?.documents().reduce((sum, doc) => sum + doc.users, 0) ?? 0,
      locksHeld: () => this.collab?.locksHeld ?? 0,
      webhookEventsPending: () => this.webhooks === null ? undefined : this.store?.pendingEvents()
    })
    this.analytics = new SessionAnalytics(this.metrics, this.stats, this.logger, end => {
      this.webhooks?.emit('session.ended', end.doc, { userId: end.user, sessionId: end.session, reason: end.reason, durationMs: end.endedAt - end.startedAt })
    })
    // not behind the admin token: it carries counts only, never a document or user name
    this.router.add('GET', '/metrics', async () => ({
      status: 200, body: await this.metrics.text(), contentType: this.metrics.registry.contentType
    }))
  }

  /** Changes the lifecycle status; the one place it changes. */
  private setStatus (status: ServerStatus): void {
    this.logger.debug({ from: this.lifecycle, to: status }, 'server status')
    this.lifecycle = status
  }

  /** Where the server is in its lifecycle. */
  get status (): ServerStatus {
    return this.lifecycle
  }

  /** Versions of documents, once listening. */
  get versions (): Versions {
    if (this.versionsOf === undefined) throw new Error('server is not listening')
    return this.versionsOf
  }

  /** The documents loaded now. */
  get documents (): DocumentRegistry {
    if (this.registry === undefined) throw new Error('server is not listening')
    return this.registry
  }

  /** Presence, locks and reconnect grace, once listening. */
  /** One hooks object for every session: a closure per session would cost memory per connection. */
  private readonly sessionHooks: SessionHooks = {
    ended: (s, reason, code) => this.sessionEnded(s, reason, code),
    message: (s, message) => {
      if (message.type === 'refresh') this.live?.refresh(s, message.token)
      else this.collaboration.message(s, message)
    },
    active: s => {
      this.live?.active(s)
      this.collaboration.activity(s)
    },
    stillAllowed: s => {
      const { identity } = s
      if (identity.expiresAt !== undefined && identity.expiresAt <= Date.now()) return false
      return this.revocationList?.covering(identity, s.id) === undefined
    }
  }

  get collaboration (): Collaboration {
    if (this.collab === undefined) throw new Error('server is not listening')
    return this.collab
  }

  /** The address it listens on, once listening. */
  get address (): AddressInfo {
    const address = this.http?.address()
    if (address === null || address === undefined || typeof address === 'string') throw new Error('server is not listening')
    return address
  }

  /** `ws://host:port` (`wss://` on an https server), once listening. */
  get url (): string {
    const { address, port, family } = this.address
    const scheme = this.http instanceof TlsServer ? 'wss' : 'ws'
    return `${scheme}://${family === 'IPv6' ? `[${address}]` : address}:${port}`
  }

  /** Open connections and handshakes per remote address, once listening. */
  get connections (): ConnectionCounter {
    if (this.transport === undefined) throw new Error('server is not listening')
    return this.transport.connections
  }

  /** Opens the store and starts listening. Rejects with one clear message if either fails. */
  async listen (): Promise<this> {
    if (this.status !== 'idle') throw new Error(`cannot listen while ${this.status}`)
    this.setStatus('starting')
    const { options, logger } = this
    if (options.authSecret === undefined && options.authenticate === undefined) logger.warn('no --auth-secret: every connection is anonymous and may write')
    try {
      this.store = await openStore(options)
      if (options.redis !== undefined || options.bus !== undefined) {
        if (options.persistence === 'sqlite' || options.persistence === 'memory') {
          logger.warn(`--redis with the ${options.persistence} store: each instance stores only its own clients' edits; use --persistence postgres://... so every instance loads every edit`)
        }
        this.cluster = await openCluster(options, {
          get: name => this.registry?.get(name),
          all: () => this.registry?.all() ?? [],
          deleted: name => { void this.evict(name) }
        }, logger, {
          message: (direction, lagSeconds) => {
            this.metrics.busMessages.labels(direction).inc()
            if (lagSeconds !== undefined) this.metrics.busLagSeconds.observe(lagSeconds)
          },
          reconnected: () => this.metrics.busReconnects.inc()
        })
      }
      const { metrics } = this
      const { webhookUrls, webhookSecret } = options
      if (webhookUrls !== undefined && webhookSecret !== undefined) {
        this.webhooks = new Webhooks(this.store, { ...options, webhookUrls, webhookSecret }, logger.child({ component: 'webhooks' }), {
          delivered: () => metrics.webhookEvents.labels('delivered').inc(),
          retried: () => metrics.webhookEvents.labels('retried').inc(),
          failed: () => metrics.webhookEvents.labels('failed').inc()
        })
      }
      const { webhooks } = this
      this.versionsOf = new Versions(this.store, () => this.documents, options, logger, {
        created: (name, version) => webhooks?.versionCreated(name, version)
      })
      this.writer = new UpdateWriter(this.store, logger, {
        onWrite: (entries, seconds) => {
          metrics.storeWriteSeconds.observe(seconds)
          metrics.storeBatchSize.observe(entries)
          metrics.updatesApplied.inc(entries)
        },
        onStored: (name, count, authors) => {
          this.stats.updated(name, count)
          webhooks?.documentUpdated(name, authors)
        },
        onFailure: () => metrics.storeFailures.inc(),
        onRetry: () => metrics.storeRetries.inc()
      }, options.commitDelayMs)
      this.deletions = new Deletions(this.store, options.deletedRetentionMs, logger, {
        evict: name => this.evict(name),
        announce: name => {
          this.cluster?.announceDeleted(name)
          this.webhooks?.documentDeleted(name)
        }
      })
      const locks = await openLockTable(options, this.store, this.cluster?.nodeId, logger)
      // a dropped Tandem session resumes on whichever instance sharing the Redis its client reaches
      if (options.redis !== undefined && this.cluster !== undefined) {
        this.resumeRecords = new RedisResumeRecords({ url: options.redis, prefix: options.redisPrefix, nodeId: this.cluster.nodeId, logger })
        await this.resumeRecords.start()
      }
      // every instance hears every lock change: each guards its loaded documents' `y:` types
      const enforced = this.enforced = new EnforcedLocks(locks, { guards: name => this.registry?.get(name)?.guards }, logger)
      this.registry = new DocumentRegistry(this.store, this.writer, options, logger, this.cluster ?? null, this.deletions.gate, doc => enforced.prepare(doc.name, doc.guards))
      this.collab = new Collaboration(locks, options, logger, this.cluster, {
        lock: event => metrics.lockEvents.labels(event).inc(),
        finished: (sessionId, reason) => this.analytics.finished(sessionId, reason),
        moved: sessionId => this.analytics.moved(sessionId),
        lockChanged: change => {
          const { resource, userId, token } = change.lock
          if (change.event === 'acquired') webhooks?.emit('lock.acquired', change.doc, { resource, userId, token, reason: 'granted' })
          else webhooks?.emit('lock.released', change.doc, { resource, userId, token, reason: change.reason })
        }
      }, this.resumeRecords !== undefined && this.cluster !== undefined ? { records: this.resumeRecords, peers: this.cluster } : undefined)
      this.cluster?.bindPresence(this.collab)
      this.cluster?.bindResume(this.collab)
      this.revocationList = new Revocations(this.store, options.revocationTtlMs, logger)
      await this.revocationList.start()
      const collab = this.collab
      this.live = new LiveSessions(options, this.revocationList, {
        authenticate: request => this.authenticateChecked(request),
        // the built-in authenticators (anonymous, JWT) read the query and the token only
        readsHeaders: options.authenticate !== undefined,
        revokeHeld: covered => collab.revokeHeld(covered),
        ending: session => collab.voidResume(session.id, session.doc.name),
        changed: session => collab.identityChanged(session as Session),
        sessions: () => this.sessions
      }, logger, this.cluster)
      this.cluster?.bindLive(this.live)
      await this.jwtPool?.warm()
      this.transport = new WebSocketTransport({
        admit: request => this.admit(request),
        connect: (socket, request, admission) => this.connect(socket, request, admission as Admission)
      }, options, logger)
      this.http = options.server ?? createHttpServer((req, res) => { void this.router.handle(req, res) })
      this.http.on('upgrade', this.transport.handleUpgrade)
      if (!this.http.listening) {
        this.http.listen(options.port, options.host)
        await once(this.http, 'listening')
      }
    } catch (err) {
      this.live?.close()
      this.revocationList?.close()
      await this.collab?.close().catch(() => {})
      await this.resumeRecords?.close()
      await this.cluster?.close().catch(() => {})
      await this.store?.close().catch(() => {})
      this.jwtPool?.close()
      this.setStatus('closed')
      throw err
    }
    this.versionsOf.start()
    this.webhooks?.start()
    this.deletions?.start()
    this.heartbeats.start()
    this.setStatus('listening')
    logger.info({ url: this.url }, `listening on ${this.url}`)
    return this
  }

  private async admit (request: UpgradeRequest): Promise<Admission> {
    if (this.status !== 'listening') throw new TandemError('TANDEM_ERR_SHUTTING_DOWN')
    const identity = await this.authenticateWithin(request)
    if (this.documents.atLimit(request.document, this.options.maxDocuments)) throw new TandemError('TANDEM_ERR_OVERLOADED', 'too many documents loaded')
    // a deleted document is refused with 410 (a loaded one is not deleted: deleting evicts it)
    if (this.documents.get(request.document) === undefined) await this.deletions?.gate(request.document)
    // last: a claim takes the session over (from another instance too), which a refusal would waste
    // undefined without a claim to make (no promise for most connections)
    const claim = this.collaboration.claim(request.document, request.query, identity, request.tandem)
    const resumeId = claim === undefined ? undefined : await claim
    return { identity, resumeId }
  }

  /** At the upgrade: the authenticator and the checks (authenticateChecked) within the auth timeout. */
  private async authenticateWithin (request: AuthRequest): Promise<Identity> {
    const { authTimeoutMs } = this.options
    return this.checked(await withTimeout(this.authenticate(request), authTimeoutMs,
      () => new TandemError('TANDEM_ERR_AUTH_TIMEOUT', `no answer within ${authTimeoutMs} ms`)))
  }

  /**
   * The authenticator, then the checks every credential passes (checked), at every refresh. No
   * timeout: a live session's check is timed by the sweep of live.ts (no timer per refresh).
   */
  private async authenticateChecked (request: AuthRequest): Promise<Identity> {
    return this.checked(await this.authenticate(request))
  }

  /** The checks every credential passes, at the upgrade and at every refresh: not expired, not revoked. */
  private checked (identity: Identity): Identity {
    if (identity.expiresAt !== undefined && identity.expiresAt <= Date.now()) throw new TandemError('TANDEM_ERR_TOKEN_EXPIRED')
    if (this.revocationList?.covering(identity) !== undefined) throw new TandemError('TANDEM_ERR_REVOKED')
    return identity
  }

  /**
   * Revokes a user's sessions and older tokens, a session, or a token, on every instance: stored
   * first, then in force here, then told to the peers. Returns it and the sessions ended here.
   */
  async revoke (target: RevocationTarget): Promise<{ revocation: Revocation, sessions: number }> {
    if (this.live === undefined) throw new Error('server is not listening')
    return await this.live.revoke(target)
  }

  /** Authenticates every session of a document again, here and on every peer; returns the count here. */
  async recheck (doc: string): Promise<number> {
    if (this.live === undefined) throw new Error('server is not listening')
    return await this.live.recheckEverywhere(doc)
  }

  private connect (socket: SyncSocket, request: UpgradeRequest, { identity, resumeId: claimed }: Admission): void {
    if (this.status !== 'listening') {
      socket.close(CloseCode.SERVICE_RESTART, 'TANDEM_ERR_SHUTTING_DOWN')
      return
    }
    // admitted sessions may have loaded other documents meanwhile
    if (this.documents.atLimit(request.document, this.options.maxDocuments)) {
      socket.close(CloseCode.TRY_AGAIN_LATER, 'TANDEM_ERR_OVERLOADED')
      return
    }
    const collab = this.collaboration
    // before open(): resuming may drop a half-open socket of the same session
    const resumeId = claimed ?? collab.resumable(request.document, request.query, identity, request.tandem)
    const { doc, loaded } = this.documents.open(request.document)
    doc.meter = this.metrics.meter
    // the socket itself: it bounds what is queued for a peer that stopped reading (bounded-socket.ts)
    const session = new Session(socket, doc, identity, request.tandem, this.sessionHooks, resumeId, request.remoteAddress)
    // fed by its socket before anything is sent: a send that overflows the socket's queue (the
    // greeting) ends this session, which the socket must know by then
    bindSocket(socket, session)
    // in one synchronous block: the live-session policy walks `sessions` (recheck, revocation,
    // idle sweep) and takes each as added to it
    this.sessions.add(session)
    this.analytics.started(session, resumeId !== undefined)
    collab.joined(session, resumeId !== undefined)
    this.live?.add(session, request)
    loaded.then(() => session.start(), (err: unknown) => {
      // deleted between the admission and the load: as final as a deletion seen at once
      if (isTandemError(err, 'TANDEM_ERR_DOCUMENT_DELETED')) return session.close(CloseCode.DOCUMENT_DELETED, 'kicked', err.code)
      session.logger.error({ err }, 'document failed to load')
      session.close(CloseCode.TRY_AGAIN_LATER, 'error', 'TANDEM_ERR_STORE_FAILED')
    }).catch((err: unknown) => {
      // an unhandled rejection would end the process
      session.logger.error({ err }, 'session failed to start')
      session.close(CloseCode.TRY_AGAIN_LATER, 'error', 'internal error')
    })
  }

  /**
   * Opens a document in this process, for edits from the server side (a bot, an importer, an
   * assistant): a Y.Doc in step with the document, whose changes made in `transact` are applied
   * like a client's (validated, relayed to every client on every instance, attributed to
   * `userId`) and resolve once stored. Keeps the document loaded until `close()`. Rejects with
   * TANDEM_ERR_DOCUMENT_DELETED for a deleted document.
   */
  async openDocument (name: string, options: { userId?: string } = {}): Promise<DocumentHandle> {
    if (this.status !== 'listening') throw new TandemError('TANDEM_ERR_SHUTTING_DOWN', `the server is ${this.status}`)
    const { doc, loaded } = this.documents.open(name)
    await loaded
    return new DocumentHandle(doc, options.userId ?? 'server', this.authenticated, released => this.registry?.release(released))
  }

  /** True when users are authenticated (an auth secret or hook): server-side writers then own client ids as their user. */
  private get authenticated (): boolean {
    return this.options.authSecret !== undefined || this.options.authenticate !== undefined
  }

  /** What the document API reads (GET/POST/DELETE /api/documents/:name/...), once listening. */
  get documentApi (): DocumentApiSource {
    if (this.store === undefined || this.deletions === undefined) throw new Error('server is not listening')
    return {
      documents: this.documents,
      store: this.store,
      deletions: this.deletions,
      clustered: this.cluster !== undefined,
      authenticated: this.authenticated,
      maxMessageSize: this.options.maxMessageSize
    }
  }

  /**
   * The document was deleted (here or on another instance): it is forgotten at once, and every
   * connection to it here closes with 4404, every in-process handle and API write fails.
   * Resolves once the updates it had pending are stored.
   */
  private evict (name: string): Promise<void> {
    // a tombstone read that began before the delete must not admit anyone any more
    this.deletions?.forget(name)
    const doc = this.registry?.evict(name)
    if (doc === undefined) return Promise.resolve()
    const err = new TandemError('TANDEM_ERR_DOCUMENT_DELETED')
    for (const session of [...this.sessions]) {
      if (session.doc === doc) session.close(CloseCode.DOCUMENT_DELETED, 'kicked', err.code)
    }
    for (const member of [...doc.members]) if (isServerMember(member)) member.gone(err)
    return doc.whenStored()
  }

  /**
   * Every session ends here, once (Session.end is the single exit): its awareness states are
   * already removed and broadcast; collaboration holds or releases its locks and presence (see
   * Collaboration.ended); pending updates are stored by the writer and the document unloads
   * once it has no member and nothing pending.
   */
  private sessionEnded (session: Session, reason: EndReason, code: number): void {
    this.sessions.delete(session)
    this.live?.remove(session)
    const outcome = this.collab?.ended(session, reason) ?? 'ended'
    this.analytics.ended(session, reason, code, outcome)
    this.registry?.release(session.doc)
  }

  /**
   * Graceful shutdown: readyz turns 503, no new connections, pending updates are stored, every
   * socket is closed with 1012. Resolves within the shutdown timeout even if the store hangs.
   * Safe to call twice.
   */
  close (): Promise<void> {
    this.closing ??= this.drain()
    return this.closing
  }

  private async drain (): Promise<void> {
    if (this.status === 'idle' || this.status === 'closed') {
      this.jwtPool?.close()
      this.setStatus('closed')
      return
    }
    this.setStatus('draining')
    const started = Date.now()
    const { logger } = this
    this.heartbeats.stop()
    this.deletions?.close()
    this.live?.close()
    this.revocationList?.close()
    // an attached server is the embedder's: Tandem only stops taking its upgrades
    if (this.options.server === undefined) this.http?.close()
    else if (this.transport !== undefined) this.http?.off('upgrade', this.transport.handleUpgrade)
    this.transport?.close()
    let timer: NodeJS.Timeout | undefined
    const deadline = new Promise<'timeout'>(resolve => { timer = setTimeout(() => resolve('timeout'), this.options.shutdownTimeoutMs) })
    const stored = (async () => {
      await this.writer?.idle()
      for (const session of [...this.sessions]) session.close(CloseCode.SERVICE_RESTART, 'shutdown', 'TANDEM_ERR_SHUTTING_DOWN')
      await this.collab?.close()
      this.enforced?.close()
      await this.writer?.idle()
      await this.registry?.settled()
      return 'done' as const
    })()
    const outcome = await Promise.race([stored, deadline])
    clearTimeout(timer)
    if (outcome === 'timeout') {
      logger.error({ timeoutMs: this.options.shutdownTimeoutMs }, 'shutdown timed out; some updates may not be stored')
    }
    for (const session of [...this.sessions]) {
      session.close(CloseCode.SERVICE_RESTART, 'shutdown', 'TANDEM_ERR_SHUTTING_DOWN')
      session.socket.terminate()
    }
    // memoized: normally already done above; after a timeout it must not hold the exit up
    this.collab?.close().catch((err: unknown) => logger.error({ err }, 'collaboration failed to close'))
    // after collaboration voided the secrets of the sessions it ended
    await Promise.race([this.resumeRecords?.close(), new Promise(resolve => setTimeout(resolve, 500).unref())])
    this.writer?.close()
    this.versionsOf?.close()
    // the events of the sessions just ended go to the outbox before the store closes
    await this.webhooks?.close().catch((err: unknown) => logger.error({ err }, 'webhooks failed to close'))
    if (this.options.server === undefined) this.http?.closeAllConnections()
    // after the sessions closed, so their awareness removals reach the other instances
    await Promise.race([this.cluster?.close(), new Promise(resolve => setTimeout(resolve, 1_000).unref())]).catch((err: unknown) => {
      logger.error({ err }, 'bus failed to close')
    })
    await Promise.race([this.store?.close(), new Promise(resolve => setTimeout(resolve, 200).unref())]).catch((err: unknown) => {
      logger.error({ err }, 'store failed to close')
    })
    this.jwtPool?.close()
    this.setStatus('closed')
    logger.info({ ms: Date.now() - started }, 'shut down')
  }
}

/** Creates a Tandem server; call `listen()` to start it. */
export function createServer (options: ServerOptions = {}): TandemServer {
  return new TandemServer(options)
}
