import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import type { Awareness } from 'y-protocols/awareness'
import type * as decoding from 'lib0/decoding'
import { IndexeddbPersistence } from 'y-indexeddb'
import { MESSAGE_TANDEM, TANDEM_QUERY_PARAM, MAX_RESOURCE_NAME_LENGTH, CloseCode } from '../shared/constants.js'
import { ERRORS, TandemError, type ErrorCode } from '../shared/errors.js'
import { LockDeniedError } from '../shared/lock-denied-error.js'
import { LockedError } from '../shared/locked-error.js'
import { parseTypeResource, resolveTypeResource, typeResource, type SharedType } from '../shared/type-resource.js'
import { writeTandem } from '../shared/messages.js'
import { validateDocumentName } from '../shared/document-name.js'
import { readTandemMessage, type LockInfo, type SettableStatus, type TandemMessage } from '../shared/tandem.js'
import { Emitter } from './emitter.js'
import { UnsyncedCounter } from './unsynced.js'
import { PresenceBook, type PresenceEvent, type PresenceView } from './presence.js'
import { Lock, LockBook, replyError, type AcquireOptions, type LockEvent } from './locks.js'

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
  /** A JWT when the server has an auth secret. @default undefined */
  token?: string
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
}

/** Defaults of TandemClientOptions. */
export const DEFAULT_CLIENT_OPTIONS = Object.freeze({
  connect: true,
  warnBeforeUnload: false,
  offline: false,
  leaveTimeoutMs: 5_000,
  connectTimeoutMs: 10_000,
  maxBackoffTimeMs: 2_500,
  broadcastChannel: false
})

/** The events of a TandemClient and their payloads. */
export interface TandemClientEvents {
  status: (status: ClientStatus) => void
  /** The document is in sync with the server (again, after a reconnect). */
  synced: () => void
  presence: (event: PresenceEvent) => void
  locks: (event: LockEvent) => void
  error: (error: TandemError) => void
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

type Reply = { code: string, lock: LockInfo | null }
interface Request {
  resource: string
  kind: 'acquire' | 'release'
  resolve: (reply: Reply) => void
  reject: (err: unknown) => void
}

type Lifecycle = 'open' | 'leaving' | 'left' | 'destroyed'

/**
 * A Tandem client: a Y.Doc kept in sync through y-websocket's WebsocketProvider, plus presence,
 * edit locks, durable acknowledgements and resumable sessions. See the README's "Client" part.
 */
export class TandemClient {
  readonly doc: Y.Doc
  readonly provider: WebsocketProvider
  readonly presence: PresenceView
  readonly locks: LocksView
  /** Connection status. */
  status: ClientStatus = 'disconnected'
  /** This client's session id, once the server greeted it (kept across resumes). */
  sessionId: string | undefined
  /** `read` when the server refuses this client's edits. */
  access: 'read' | 'write' | undefined
  private readonly options: Required<Omit<TandemClientOptions, 'token' | 'user' | 'WebSocketPolyfill' | 'doc' | 'params'>> & Pick<TandemClientOptions, 'token' | 'user'>
  private readonly emitter = new Emitter<TandemClientEvents>()
  private readonly counter = new UnsyncedCounter()
  private readonly people = new PresenceBook()
  private readonly book = new LockBook()
  private readonly ownLocks = new Map<string, Lock>()
  private readonly requests = new Map<number, Request>()
  private readonly persistence: IndexeddbPersistence | undefined
  private readonly cleanups: Array<() => void> = []
  private lifecycle: Lifecycle = 'open'
  /** True while closing on purpose: the socket then closes with 1000. */
  private departing = false
  private trackedSocket: WebSocket | null = null
  private welcomed = false
  private hasSynced = false
  private desiredStatus: SettableStatus = 'active'
  private nextRequestId = 1
  private readonly waiters = { welcome: new Set<Waiter>(), synced: new Set<Waiter>(), flushed: new Set<Waiter>() }

  constructor (options: TandemClientOptions) {
    this.options = resolveClientOptions(options)
    this.doc = options.doc ?? new Y.Doc()
    const params: Record<string, string> = { ...options.params, [TANDEM_QUERY_PARAM]: '1' }
    if (options.token !== undefined) params.token = options.token
    if (options.user?.id !== undefined) params.user = options.user.id
    if (options.user?.name !== undefined) params.name = options.user.name
    if (options.user?.color !== undefined) params.color = options.user.color
    if (this.options.offline) this.persistence = new IndexeddbPersistence(`tandem:${options.document}`, this.doc)
    // the provider puts the room name into the URL as it is: encode it, keeping the slashes
    const room = options.document.split('/').map(encodeURIComponent).join('/')
    this.provider = new WebsocketProvider(options.url, room, this.doc, {
      connect: false,
      params,
      WebSocketPolyfill: this.trackingSocketClass(options.WebSocketPolyfill ?? globalThis.WebSocket),
      maxBackoffTime: this.options.maxBackoffTimeMs,
      disableBc: !this.options.broadcastChannel
    })
    this.provider.messageHandlers[MESSAGE_TANDEM] = (_encoder: unknown, decoder: decoding.Decoder) => this.receiveFrom(decoder)
    this.listen()
    if (options.user?.name !== undefined || options.user?.color !== undefined) {
      this.awareness.setLocalStateField('user', { name: options.user?.name, color: options.user?.color })
    }
    const people = this.people
    this.presence = {
      list: () => people.list(),
      get self () { return people.self },
      setStatus: status => this.setStatus(status)
    }
    this.locks = {
      acquire: async (target, acquireOptions) => await this.acquire(this.resourceOf(target), acquireOptions ?? {}),
      list: () => this.book.list(),
      holder: resource => this.book.get(resource),
      guarded: () => this.guarded(),
      guardOf: type => this.guardOf(type)
    }
    if (this.options.connect) this.provider.connect()
  }

  /** The awareness instance of the provider (cursors and selections). */
  get awareness (): Awareness {
    return this.provider.awareness
  }

  /** Local changes not yet stored durably by the server. */
  get unsyncedChanges (): number {
    return this.counter.count
  }

  /** Adds an event handler; returns the function that removes it. */
  on<K extends keyof TandemClientEvents> (event: K, handler: TandemClientEvents[K]): () => void {
    return this.emitter.on(event, handler)
  }

  /** Removes an event handler. */
  off<K extends keyof TandemClientEvents> (event: K, handler: TandemClientEvents[K]): void {
    this.emitter.off(event, handler)
  }

  /** Resolves once the document first synced with the server. */
  synced (): Promise<void> {
    if (this.hasSynced) return Promise.resolve()
    return this.wait('synced')
  }

  /** Resolves once `unsyncedChanges` is 0: everything edited so far is stored by the server. */
  flushed (): Promise<void> {
    if (this.counter.count === 0) return Promise.resolve()
    return this.wait('flushed')
  }

  /** Connects (again) after `connect: false`. */
  connect (): void {
    this.assertOpen()
    this.provider.connect()
  }

  /**
   * Leaves cleanly: waits up to `leaveTimeoutMs` for pending changes to be stored, tells the
   * server (which releases this client's locks and presence at once, with reason `leave`), closes
   * with 1000 and destroys the client. Safe to call twice.
   */
  async leave (options: { timeoutMs?: number } = {}): Promise<void> {
    if (this.lifecycle !== 'open') return
    this.lifecycle = 'leaving'
    const timeoutMs = options.timeoutMs ?? this.options.leaveTimeoutMs
    let timer: ReturnType<typeof setTimeout> | undefined
    await Promise.race([
      this.flushed().catch(() => {}),
      new Promise<void>(resolve => { timer = setTimeout(resolve, timeoutMs) })
    ])
    clearTimeout(timer)
    if (this.lifecycle !== 'leaving') return
    const socket = this.openSocket()
    const closed = socket === null ? Promise.resolve() : socketClosed(socket, 1_000)
    this.depart()
    this.teardown('left')
    await closed
  }

  /**
   * Stops at once: tells the server it leaves if connected (best effort, nothing awaited) and
   * frees everything. Changes not yet sent are lost unless `offline` keeps them.
   */
  destroy (): void {
    if (this.lifecycle === 'left' || this.lifecycle === 'destroyed') return
    this.depart()
    this.teardown('destroyed')
  }

  private setStatus (status: SettableStatus): void {
    this.desiredStatus = status
    if (this.welcomed) this.sendTandem({ type: 'set-status', status })
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
      throw new TandemError('TANDEM_ERR_INVALID_RESOURCE', (err as Error).message, { cause: err })
    }
  }

  private guarded (): GuardedType[] {
    const types: GuardedType[] = []
    for (const holder of this.book.list()) {
      const target = parseTypeResource(holder.resource)
      if (target !== null) types.push({ resource: holder.resource, type: resolveTypeResource(this.doc, target), holder })
    }
    return types
  }

  private guardOf (type: SharedType): LockInfo | undefined {
    // the lock on the type itself or on the closest guarded type around it
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

  private async acquire (resource: string, options: AcquireOptions): Promise<Lock> {
    if (resource.length === 0 || resource.length > MAX_RESOURCE_NAME_LENGTH) {
      throw new TandemError('TANDEM_ERR_INVALID_RESOURCE', `${resource.length} characters`)
    }
    const ttlMs = Math.max(0, Math.floor(options.ttlMs ?? 0))
    const waitMs = Math.max(0, Math.floor(options.waitMs ?? 0))
    const reply = await this.request('acquire', resource, id => ({ type: 'lock-acquire', id, resource, ttlMs, waitMs }))
    if (reply.code === '' && reply.lock !== null) {
      const lock = new Lock(reply.lock, { releaseLock: l => this.releaseLock(l) })
      this.ownLocks.set(resource, lock)
      this.book.set(reply.lock)
      return lock
    }
    if (reply.code === 'TANDEM_ERR_LOCK_HELD' || reply.code === 'TANDEM_ERR_LOCK_TIMEOUT') {
      throw new LockDeniedError(reply.code, resource, reply.lock)
    }
    throw replyError(reply.code, resource)
  }

  private async releaseLock (lock: Lock): Promise<void> {
    const reply = await this.request('release', lock.resource, id => ({ type: 'lock-release', id, resource: lock.resource }))
    this.lockGone(lock.info)
    // not the holder any more (expired, released by an admin, lost with the session): released all the same
    if (reply.code !== '' && reply.code !== 'TANDEM_ERR_NOT_LOCK_HOLDER') throw replyError(reply.code, lock.resource)
  }

  /** Sends a lock request once greeted, and resolves with the server's reply. */
  private async request (kind: Request['kind'], resource: string, build: (id: number) => TandemMessage): Promise<Reply> {
    if (!this.welcomed) await this.wait('welcome', this.options.connectTimeoutMs)
    return await new Promise<Reply>((resolve, reject) => {
      const id = this.nextRequestId++
      this.requests.set(id, { resource, kind, resolve, reject })
      if (!this.sendTandem(build(id))) {
        this.requests.delete(id)
        reject(new TandemError('TANDEM_ERR_DISCONNECTED'))
      }
    })
  }

  /** Wraps the WebSocket class so that every frame sent is seen (for `unsyncedChanges`). */
  private trackingSocketClass (Base: WebSocketClass): WebSocketClass {
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the subclass reports to this client
    const client = this
    return class TrackingWebSocket extends Base {
      override send (data: Parameters<WebSocket['send']>[0]): void {
        client.sending(this, data)
        super.send(data)
      }

      override close (code?: number, reason?: string): void {
        // the provider closes without a code; only a departure on purpose is a normal leave
        if (code === undefined && client.departing) super.close(CloseCode.NORMAL, 'leave')
        else super.close(code, reason)
      }
    } as WebSocketClass
  }

  private sending (socket: WebSocket, data: unknown): void {
    const bytes = data instanceof Uint8Array ? data : data instanceof ArrayBuffer ? new Uint8Array(data) : null
    // sync frames: varUint 0, then varUint 1 (step 2) or 2 (update)
    if (bytes === null || bytes.length < 2 || bytes[0] !== 0) return
    if (socket !== this.trackedSocket) {
      this.counter.socketClosed()
      this.trackedSocket = socket
    }
    if (bytes[1] === 1) this.counter.sentStep2()
    else if (bytes[1] === 2) this.counter.sentUpdate()
  }

  private listen (): void {
    const { provider, doc } = this
    const onUpdate = (_update: Uint8Array, origin: unknown): void => {
      if (origin === provider) return
      // the provider sent it (and the tracking socket counted it) under exactly this condition
      const ws = provider.ws
      if (!(provider.wsconnected && ws !== null && ws.readyState === ws.OPEN)) this.counter.unsent()
    }
    doc.on('update', onUpdate)
    this.cleanups.push(() => doc.off('update', onUpdate))
    const onStatus = ({ status }: { status: ClientStatus }): void => {
      this.status = status
      this.emitter.emit('status', status)
    }
    const onSync = (synced: boolean): void => {
      if (!synced) return
      this.hasSynced = true
      this.settle('synced')
      this.emitter.emit('synced')
    }
    const onConnectionClose = (): void => this.socketDropped()
    const onClosed = (event: { code: number, reason: string }): void => {
      const code = Object.hasOwn(ERRORS, event.reason) ? event.reason as ErrorCode
        : event.code === CloseCode.UNAUTHENTICATED ? 'TANDEM_ERR_UNAUTHENTICATED' : 'TANDEM_ERR_FORBIDDEN'
      this.emitter.emit('error', new TandemError(code, `the server closed the connection with ${event.code}`))
    }
    provider.on('status', onStatus)
    provider.on('sync', onSync)
    provider.on('connection-close', onConnectionClose)
    provider.on('closed', onClosed)
    this.cleanups.push(() => {
      provider.off('status', onStatus)
      provider.off('sync', onSync)
      provider.off('connection-close', onConnectionClose)
      provider.off('closed', onClosed)
    })
    const target = globalThis as unknown as { addEventListener?: EventTarget['addEventListener'], removeEventListener?: EventTarget['removeEventListener'], document?: unknown }
    if (typeof target.addEventListener !== 'function' || typeof target.removeEventListener !== 'function' || target.document === undefined) return
    const add = target.addEventListener.bind(target)
    const remove = target.removeEventListener.bind(target)
    // pagehide, not unload: unload also fires on downloads in some browsers, and blocks bfcache
    const onPageHide = (): void => { if (this.lifecycle === 'open') this.depart() }
    const onPageShow = (event: Event): void => {
      if ((event as PageTransitionEvent).persisted && this.lifecycle === 'open') this.provider.connect()
    }
    const onBeforeUnload = (event: Event): void => {
      if (!this.options.warnBeforeUnload || this.counter.count === 0) return
      event.preventDefault()
      ;(event as BeforeUnloadEvent).returnValue = ''
    }
    add('pagehide', onPageHide)
    add('pageshow', onPageShow)
    add('beforeunload', onBeforeUnload)
    this.cleanups.push(() => {
      remove('pagehide', onPageHide)
      remove('pageshow', onPageShow)
      remove('beforeunload', onBeforeUnload)
    })
  }

  private socketDropped (): void {
    this.counter.socketClosed()
    this.trackedSocket = null
    this.welcomed = false
    // the server cancels queued requests of a dropped connection; a grant whose reply was lost
    // shows up in the lock snapshot after resuming and is released then
    for (const request of this.requests.values()) request.reject(new TandemError('TANDEM_ERR_DISCONNECTED'))
    this.requests.clear()
  }

  private receiveFrom (decoder: decoding.Decoder): void {
    let message: TandemMessage
    try {
      message = readTandemMessage(decoder)
    } catch (err) {
      this.emitter.emit('error', new TandemError('TANDEM_ERR_MALFORMED_MESSAGE', (err as Error).message, { cause: err }))
      return
    }
    this.receive(message)
  }

  private receive (message: TandemMessage): void {
    switch (message.type) {
      case 'ack':
        this.counter.settled(message.count)
        return this.checkFlushed()
      case 'refused':
        this.counter.settled(message.count)
        this.emitter.emit('error', new TandemError('TANDEM_ERR_READ_ONLY', `${message.count} updates refused (${message.code})`))
        return this.checkFlushed()
      case 'welcome':
        return this.welcome(message)
      case 'presence':
        return this.emitter.emit('presence', this.people.snapshot(message.users))
      case 'presence-event':
        return this.emitter.emit('presence', message.event === 'left'
          ? this.people.left(message.user, message.reason)
          : this.people.joinedOrUpdated(message.event, message.user))
      case 'locks':
        return this.lockSnapshot(message.locks)
      case 'lock-event':
        if (message.event === 'acquired') {
          this.book.set(message.lock)
          return this.emitter.emit('locks', { type: 'acquired', lock: message.lock })
        }
        this.lockGone(message.lock)
        return this.emitter.emit('locks', { type: 'released', lock: message.lock, reason: message.reason })
      case 'locked':
        return this.emitter.emit('error', new LockedError(message.holder))
      case 'lock-reply': {
        const request = this.requests.get(message.id)
        if (request === undefined) return
        this.requests.delete(message.id)
        return request.resolve({ code: message.code, lock: message.lock })
      }
      default:
        this.emitter.emit('error', new TandemError('TANDEM_ERR_MALFORMED_MESSAGE', `unexpected ${message.type} from the server`))
    }
  }

  private welcome (message: Extract<TandemMessage, { type: 'welcome' }>): void {
    this.sessionId = message.sessionId
    this.access = message.access
    this.people.selfId = message.userId
    // read on every reconnect (the provider's url getter): the next socket resumes this session
    this.provider.params = { ...this.provider.params, session: message.sessionId, resume: message.secret, user: message.userId }
    this.welcomed = true
    if (!message.resumed && this.desiredStatus !== 'active') this.sendTandem({ type: 'set-status', status: this.desiredStatus })
    this.awareness.setLocalStateField('user', { name: message.name, color: message.color })
    this.settle('welcome')
  }

  private lockSnapshot (locks: LockInfo[]): void {
    this.book.reset(locks)
    for (const lock of [...this.ownLocks.values()]) {
      const current = this.book.get(lock.resource)
      if (current !== undefined && current.sessionId === this.sessionId && current.token === lock.token) continue
      this.lockGone(lock.info)
      this.emitter.emit('locks', { type: 'released', lock: lock.info, reason: 'lost' })
    }
    for (const lock of locks) {
      if (lock.sessionId !== this.sessionId || this.ownLocks.has(lock.resource)) continue
      // granted just before a drop, its reply lost: nobody here holds it, so give it back
      const asked = [...this.requests.values()].some(r => r.kind === 'acquire' && r.resource === lock.resource)
      if (!asked) this.sendTandem({ type: 'lock-release', id: this.nextRequestId++, resource: lock.resource })
    }
    this.emitter.emit('locks', { type: 'snapshot', locks: this.book.list() })
  }

  private lockGone (info: LockInfo): void {
    this.book.delete(info)
    const own = this.ownLocks.get(info.resource)
    if (own !== undefined && own.token === info.token) {
      own.released = true
      this.ownLocks.delete(info.resource)
    }
  }

  private checkFlushed (): void {
    if (this.counter.count === 0) this.settle('flushed')
  }

  /** The socket, if open. */
  private openSocket (): WebSocket | null {
    const ws = this.provider.ws
    return this.provider.wsconnected && ws !== null && ws.readyState === ws.OPEN ? ws : null
  }

  private sendTandem (message: TandemMessage): boolean {
    const ws = this.openSocket()
    if (ws === null || !this.welcomed) return false
    ws.send(writeTandem(message) as Uint8Array<ArrayBuffer>)
    return true
  }

  /** Tells the server this client leaves (if connected) and closes the socket with 1000. */
  private depart (): void {
    this.sendTandem({ type: 'leave' })
    this.departing = true
    try {
      this.provider.disconnect()
    } finally {
      this.departing = false
    }
  }

  private teardown (lifecycle: 'left' | 'destroyed'): void {
    this.lifecycle = lifecycle
    for (const cleanup of this.cleanups.splice(0)) cleanup()
    this.provider.destroy()
    void this.persistence?.destroy()
    for (const request of this.requests.values()) request.reject(new TandemError('TANDEM_ERR_DESTROYED'))
    this.requests.clear()
    for (const lock of this.ownLocks.values()) lock.released = true
    this.ownLocks.clear()
    const error = new TandemError('TANDEM_ERR_DESTROYED')
    for (const set of Object.values(this.waiters)) {
      for (const waiter of set) waiter.reject(error)
      set.clear()
    }
    if (this.status !== 'disconnected') {
      this.status = 'disconnected'
      this.emitter.emit('status', 'disconnected')
    }
    this.emitter.clear()
  }

  private assertOpen (): void {
    if (this.lifecycle !== 'open') throw new TandemError('TANDEM_ERR_DESTROYED')
  }

  private wait (what: keyof TandemClient['waiters'], timeoutMs?: number): Promise<void> {
    if (this.lifecycle === 'left' || this.lifecycle === 'destroyed') return Promise.reject(new TandemError('TANDEM_ERR_DESTROYED'))
    return new Promise((resolve, reject) => {
      const set = this.waiters[what]
      let timer: ReturnType<typeof setTimeout> | undefined
      const waiter: Waiter = {
        resolve: () => { clearTimeout(timer); resolve() },
        reject: err => { clearTimeout(timer); reject(err) }
      }
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          set.delete(waiter)
          reject(new TandemError('TANDEM_ERR_DISCONNECTED', `not connected within ${timeoutMs} ms`))
        }, timeoutMs)
      }
      set.add(waiter)
    })
  }

  private settle (what: keyof TandemClient['waiters']): void {
    const set = this.waiters[what]
    for (const waiter of set) waiter.resolve()
    set.clear()
  }
}

/** Merges the options with the defaults (`??`), validates and freezes them. */
function resolveClientOptions (options: TandemClientOptions): TandemClient['options'] {
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
    broadcastChannel: options.broadcastChannel ?? DEFAULT_CLIENT_OPTIONS.broadcastChannel
  }
  for (const key of ['leaveTimeoutMs', 'connectTimeoutMs', 'maxBackoffTimeMs'] as const) {
    const value = resolved[key]
    if (!Number.isInteger(value) || value < 0 || value > 2 ** 31 - 1) {
      throw new TandemError('TANDEM_ERR_INVALID_OPTION', `${key} is ${JSON.stringify(value)}, expected an integer from 0 to ${2 ** 31 - 1}`)
    }
  }
  return Object.freeze(resolved)
}

interface Waiter {
  resolve: () => void
  reject: (err: unknown) => void
}

/** Resolves when the socket closed, or after `timeoutMs` at the latest. */
function socketClosed (socket: WebSocket, timeoutMs: number): Promise<void> {
  return new Promise(resolve => {
    const timer = setTimeout(resolve, timeoutMs)
    socket.addEventListener('close', () => {
      clearTimeout(timer)
      resolve()
    })
  })
}
