import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import type { Awareness } from 'y-protocols/awareness'
import type * as decoding from 'lib0/decoding'
import { IndexeddbPersistence } from 'y-indexeddb'
import { MESSAGE_TANDEM } from '../shared/constants.js'
import { trackingSocketClass, socketClosed, closeError } from './connection.js'
import { TandemError } from '../shared/errors.js'
import { LockedError } from '../shared/locked-error.js'
import { writeTandem } from '../shared/messages.js'
import { readTandemMessage, type SettableStatus, type TandemMessage } from '../shared/tandem.js'
import { Emitter } from './emitter.js'
import { UnsyncedCounter } from './unsynced.js'
import { PresenceBook, type PresenceEvent, type PresenceView } from './presence.js'
import { LockClient, type LockEvent, type LocksView } from './locks.js'
import { connectionParams, resolveClientOptions, type ClientStatus, type ResolvedClientOptions, type TandemClientOptions } from './options.js'
import { watchPage } from './page.js'
import { Waiters } from './waiters.js'
import { TokenSource } from './token.js'

export { DEFAULT_CLIENT_OPTIONS, type ClientStatus, type TandemClientOptions, type WebSocketClass } from './options.js'
export type { LocksView, GuardedType } from './locks.js'
export type { TokenFunction } from './token.js'

/** The events of a TandemClient and their payloads. */
export interface TandemClientEvents {
  status: (status: ClientStatus) => void
  /** The document is in sync with the server (again, after a reconnect). */
  synced: () => void
  presence: (event: PresenceEvent) => void
  locks: (event: LockEvent) => void
  error: (error: TandemError) => void
}

type Lifecycle = 'open' | 'leaving' | 'left' | 'destroyed'

/**
 * A Tandem client: a Y.Doc kept in sync through y-websocket's WebsocketProvider, plus presence,
 * edit locks, durable acknowledgements and resumable sessions. See docs/client.md.
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
  private readonly options: ResolvedClientOptions
  private readonly emitter = new Emitter<TandemClientEvents>()
  private readonly counter = new UnsyncedCounter()
  private readonly people = new PresenceBook()
  private readonly lockClient: LockClient
  private readonly persistence: IndexeddbPersistence | undefined
  /** Puts the token in the URL, or calls the token function (see TokenSource). */
  private readonly tokens: TokenSource
  private readonly cleanups: Array<() => void> = []
  private lifecycle: Lifecycle = 'open'
  /** True while closing on purpose: the socket then closes with 1000. */
  private departing = false
  private welcomed = false
  private hasSynced = false
  private desiredStatus: SettableStatus = 'active'
  private readonly waiters = new Waiters<'welcome' | 'synced' | 'flushed'>()

  constructor (options: TandemClientOptions) {
    this.options = resolveClientOptions(options)
    this.doc = options.doc ?? new Y.Doc()
    if (this.options.offline) this.persistence = new IndexeddbPersistence(`tandem:${options.document}`, this.doc)
    // the provider puts the room name into the URL as it is: encode it, keeping the slashes
    const room = options.document.split('/').map(encodeURIComponent).join('/')
    this.provider = new WebsocketProvider(options.url, room, this.doc, {
      connect: false,
      params: connectionParams(options),
      WebSocketPolyfill: trackingSocketClass(options.WebSocketPolyfill ?? globalThis.WebSocket, {
        sent: (socket, bytes, frames) => this.counter.frameSent(socket, bytes, frames),
        syncChunkBytes: this.options.syncChunkBytes,
        departing: () => this.departing
      }),
      maxBackoffTime: this.options.maxBackoffTimeMs,
      disableBc: !this.options.broadcastChannel
    })
    this.tokens = new TokenSource(options.token, this.provider, this.options.maxBackoffTimeMs, {
      open: () => this.lifecycle === 'open',
      error: error => this.emitter.emit('error', error),
      refresh: token => this.sendTandem({ type: 'refresh', token })
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
    const locks = this.lockClient = new LockClient(this.doc, {
      send: message => this.sendTandem(message),
      welcomed: () => this.welcomed ? Promise.resolve() : this.wait('welcome', this.options.connectTimeoutMs),
      sessionId: () => this.sessionId,
      emit: event => this.emitter.emit('locks', event)
    })
    this.locks = {
      acquire: (target, acquireOptions) => locks.acquire(target, acquireOptions),
      list: () => locks.list(),
      holder: resource => locks.holder(resource),
      guarded: () => locks.guarded(),
      guardOf: type => locks.guardOf(type)
    }
    if (this.options.connect) this.tokens.connect()
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
    this.tokens.connect()
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
    const onClosed = (event: { code: number, reason: string }): void => this.emitter.emit('error', closeError(event))
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
    this.cleanups.push(watchPage({
      hide: () => { if (this.lifecycle === 'open') this.depart() },
      show: () => { if (this.lifecycle === 'open') this.tokens.connect() },
      unsaved: () => this.options.warnBeforeUnload && this.counter.count > 0
    }))
  }

  private socketDropped (): void {
    this.counter.socketClosed()
    this.welcomed = false
    this.lockClient.dropped()
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
      case 'lock-event':
      case 'lock-reply':
        return this.lockClient.receive(message)
      case 'locked':
        return this.emitter.emit('error', new LockedError(message.holder))
      case 'token-expiring':
        return void this.tokens.refresh(message.expiresAt)
      case 'refreshed':
        this.access = message.access
        this.awareness.setLocalStateField('user', { name: message.name, color: message.color })
        return
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
    // also after a resume: one on another instance starts its presence there afresh
    if (this.desiredStatus !== 'active') this.sendTandem({ type: 'set-status', status: this.desiredStatus })
    this.awareness.setLocalStateField('user', { name: message.name, color: message.color })
    this.settle('welcome')
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
    this.tokens.close()
    for (const cleanup of this.cleanups.splice(0)) cleanup()
    this.provider.destroy()
    void this.persistence?.destroy()
    this.lockClient.close()
    this.waiters.rejectAll(new TandemError('TANDEM_ERR_DESTROYED'))
    if (this.status !== 'disconnected') {
      this.status = 'disconnected'
      this.emitter.emit('status', 'disconnected')
    }
    this.emitter.clear()
  }

  private assertOpen (): void {
    if (this.lifecycle !== 'open') throw new TandemError('TANDEM_ERR_DESTROYED')
  }

  private wait (what: 'welcome' | 'synced' | 'flushed', timeoutMs?: number): Promise<void> {
    if (this.lifecycle === 'left' || this.lifecycle === 'destroyed') return Promise.reject(new TandemError('TANDEM_ERR_DESTROYED'))
    return this.waiters.wait(what, timeoutMs)
  }

  private settle (what: 'welcome' | 'synced' | 'flushed'): void {
    this.waiters.settle(what)
  }
}
