import { randomId } from './ids.js'
import type { HeartbeatOptions } from './heartbeat.js'
import * as Y from 'yjs'
import type { Logger } from 'pino'
import { readFrame, writeSyncStep1, writeAwareness, writeTandem, KEEPALIVE_FRAME, type Frame } from '../../shared/messages.js'
import { TandemError, isTandemError } from '../../shared/errors.js'
import { CloseCode, MESSAGE_SYNC, SYNC_STEP1 } from '../../shared/constants.js'
import { CLIENT_MESSAGE_TYPES, type LockInfo, type TandemMessage } from '../../shared/tandem.js'
import type { EndReason } from '../../shared/reasons.js'
import type { Document, DocumentMember } from '../document/document.js'
import type { AuthRequest, Identity } from '../auth/auth.js'
import { NO_HEADERS, type LiveSession } from './live.js'
import { OPEN, type SharedFrame, type WebSocketLike } from '../transport/socket.js'
import { changesDocument, integratesWhole } from '../document/read-only.js'
import { sendState, wholeState } from './state-sync.js'
import { RevertBudget } from '../document/enforced-locks.js'
import { AckOrder, type AckTicket } from './ack-order.js'
import { isEmptyStep1 } from '../document/stored-sync.js'
import { ticks, wallTime } from './clock.js'
import type { PresenceConnection } from '../presence/table.js'

/** Bytes of reverts a session may cause at once (copies of guarded content it deleted)… */
const REVERT_BURST_BYTES = 8 * 1024 * 1024
/** …and regains per second. */
const REVERT_BYTES_PER_SECOND = 256 * 1024

export type { EndReason }

/** Lifecycle of a session, changed only by setStatus. */
export type SessionStatus = 'waiting' | 'open' | 'ended'

/** What a session reports to the server that owns it. */
export interface SessionHooks {
  /** The session ended; called once. */
  ended (session: Session, reason: EndReason, code: number): void
  /** A Tandem message from a client that opted in; throwing closes the session as malformed. */
  message? (session: Session, message: TandemMessage): void
  /** The client edited the document or changed its awareness state (presence activity). */
  active? (session: Session): void
  /**
   * The credentials of a session that ended are still good (not expired, not revoked): what it
   * sent while its document loaded is applied once the document is built (Session.end) only then.
   */
  stillAllowed? (session: Session): boolean
}

/**
 * One WebSocket connection to one document. It decodes frames, applies them to the document and
 * sends the document's changes back. Frames that arrive while the document loads wait, in order.
 */
export class Session implements DocumentMember, LiveSession {
  /** Its times, in ticks (clock.ts: small integers, where Date.now() times are heap numbers). */
  private readonly started = ticks()
  /**
   * Its status (STATUS bits: an index of STATUSES) and TANDEM, DURABLE, SERVED_EARLY: one small
   * integer, where a field each cost every idle connection 8 bytes.
   */
  private bits = 0
  lastReceivedAt = ticks()
  lastSentAt = ticks()
  /** 0 until the first heartbeat tick gives the session its phase (see heartbeat). */
  lastPingAt = 0
  private backlog: Uint8Array[] | null = []
  /** Made on the first undone change: most sessions never have one. */
  private revertBudget: RevertBudget | undefined
  private log: Logger | undefined
  /** Traffic of this session, for its end-of-session record (plain numbers: cheap to count). */
  messagesReceived = 0
  bytesReceived = 0
  updatesReceived = 0
  messagesSent = 0
  bytesSent = 0
  updatesSent = 0
  /**
   * Acknowledgements in the order the frames came, though held frames settle late. Only a Tandem
   * client is told of them (PROTOCOL.md `ack`): a stock client's session keeps no order (null).
   */
  private readonly acks: AckOrder<Session> | null
  /** Its connection on its document's presence, while live there (kept by presence/rooms.ts). */
  presence: PresenceConnection | undefined = undefined

  /** Whose client ids this session uses: its user's, or its own when anonymous (see DocumentMember). */
  readonly clientOwner: string

  // live-session policy's fields (live.ts LiveFields, set by LiveSessions.add): fields of the
  // session, where an object and a map entry each cost every idle connection about 150 bytes
  liveToken: string | undefined = undefined
  liveSearch = ''
  liveHeaders: AuthRequest['headers'] = NO_HEADERS
  lastActiveAt = 0
  liveSlot = -1
  liveFlags = 0

  constructor (
    readonly socket: WebSocketLike,
    readonly doc: Document,
    /** Replaced, never mutated, when a refresh or a recheck changes it (see live.ts). */
    public identity: Identity,
    /** True when the client asked for Tandem messages. */
    tandem: boolean,
    private readonly hooks: SessionHooks,
    /** Stable across resumes: a resumed Tandem session keeps its id (see collaboration.ts). */
    readonly id: string = randomId(),
    /** The client's address: the socket's peer, or X-Forwarded-For's from a trusted proxy. */
    readonly address: string = ''
  ) {
    this.acks = tandem ? new AckOrder<Session>(sendAck, this) : null
    const durable = identity.anonymous !== true
    this.bits = (tandem ? TANDEM : 0) | (durable ? DURABLE : 0)
    this.clientOwner = durable ? identity.userId : `anonymous:${id}`
    doc.addMember(this)
  }

  /** Its lifecycle status, changed only by setStatus. */
  get status (): SessionStatus {
    return STATUSES[this.bits & STATUS] as SessionStatus
  }

  /** True when the client asked for Tandem messages. */
  get tandem (): boolean {
    return (this.bits & TANDEM) !== 0
  }

  /** Its client ids are its user's (an authenticated session), else its own (see DocumentMember). */
  get durableOwner (): boolean {
    return (this.bits & DURABLE) !== 0
  }

  /** Its first sync was answered from the stored bytes while the document loaded (stored-sync.ts). */
  private get servedEarly (): boolean {
    return (this.bits & SERVED_EARLY) !== 0
  }

  /** When the session started, in Date.now() ms. */
  get startedAt (): number {
    return wallTime(this.started)
  }

  /** The author of this session's updates: its user. */
  get author (): string {
    return this.identity.userId
  }

  /** This session's child logger (of its document's), made on first use: an idle connection does not pay for one. */
  get logger (): Logger {
    return this.log ??= this.doc.logger.child({ session: this.id, user: this.identity.userId, address: this.address })
  }

  /** Changes the lifecycle status; the one place it changes. */
  private setStatus (status: SessionStatus): void {
    this.bits = (this.bits & ~STATUS) | STATUSES.indexOf(status)
  }

  /** True once the session has ended. */
  isEnded (): boolean {
    return this.status === 'ended'
  }

  /** The document finished loading: greet the client and handle what it sent meanwhile. */
  start (): void {
    if (this.status !== 'waiting') return
    this.setStatus('open')
    // the greeting and the answers to what came meanwhile (the client's step 1: our step 2) go
    // out in one write
    this.socket.cork?.()
    try {
      this.send(writeSyncStep1(Y.encodeStateVector(this.doc.ydoc)))
      const states = this.doc.awareness.encodeAll(this)
      if (states !== null) this.send(writeAwareness(states))
      const backlog = this.backlog ?? []
      this.backlog = null
      for (const data of backlog) {
        if (this.isEnded()) break
        this.handle(data)
      }
    } finally {
      this.socket.uncork?.()
    }
  }

  /** A binary frame arrived. */
  receive (data: Uint8Array): void {
    this.lastReceivedAt = ticks()
    this.doc.meter?.received(data)
    this.messagesReceived++
    this.bytesReceived += data.byteLength
    if (this.status === 'ended') return
    if (this.backlog !== null) {
      // a fresh client's first sync, answered from the stored document while it is being built
      if (this.doc.storedSync?.answer(this, data) === true) {
        this.bits |= SERVED_EARLY
        return
      }
      this.backlog.push(data)
      return
    }
    this.handle(data)
  }

  /** The document can answer a first sync from its stored state: the one waiting here is answered now. */
  storedReady (): void {
    const sync = this.doc.storedSync
    if (this.backlog === null || sync === null) return
    const index = this.backlog.findIndex(isEmptyStep1)
    if (index >= 0 && sync.answer(this, this.backlog[index] as Uint8Array)) {
      this.backlog.splice(index, 1)
      this.bits |= SERVED_EARLY
    }
  }

  /** While the document loads: nothing came from the client yet, or a frame to it is still being written. */
  firstSyncPending (): boolean {
    return this.status === 'waiting' && (this.messagesReceived === 0 || this.socket.bufferedAmount > 0)
  }

  /** Bytes queued on the socket (the stored pieces of a big document wait for them: stored-sync.ts). */
  queuedBytes (): number {
    return this.socket.bufferedAmount
  }

  /** False once the socket closed or the session ended. */
  connected (): boolean {
    return this.status !== 'ended' && this.socket.readyState === OPEN
  }

  /** A pong (or anything else that proves the peer alive) arrived. */
  touch (): void {
    this.lastReceivedAt = ticks()
  }

  send (frame: Uint8Array): void {
    if (this.socket.readyState !== OPEN) return
    this.doc.meter?.sent(frame)
    this.deliver(frame)
  }

  /**
   * Sends a frame its caller counts in the metrics (a broadcast counts once for every member).
   * Not before start(): the greeting's step 2 and awareness states will carry it (a storm's
   * sessions waiting for their document's load would get every joiner's awareness twice);
   * unless the session's first sync was already answered from the stored bytes (no later step 2
   * would carry the edits that members applied before it started).
   */
  relay (frame: SharedFrame): void {
    if ((this.status !== 'open' && !this.servedEarly) || this.socket.readyState !== OPEN) return
    this.count(frame.data)
    if (this.socket.sendShared !== undefined) this.socket.sendShared(frame)
    else this.socket.send(frame.data)
  }

  private deliver (frame: Uint8Array): void {
    this.count(frame)
    this.socket.send(frame)
  }

  private count (frame: Uint8Array): void {
    this.lastSentAt = ticks()
    this.messagesSent++
    this.bytesSent += frame.byteLength
    if (frame[0] === MESSAGE_SYNC && frame[1] !== SYNC_STEP1) this.updatesSent++
  }

  acknowledge (count: number): void {
    this.acks?.acknowledge(count)
  }

  hold (): AckTicket {
    return this.acks?.holdLast() ?? { done: false }
  }

  settle (ticket: AckTicket): void {
    this.acks?.settle(ticket)
  }

  fail (error: TandemError): void {
    this.refuseInput(error)
  }

  /**
   * Heartbeat tick: terminate a silent peer, ping a quiet one, and send a keepalive message to a
   * client that has received nothing for a while (the stock client's watchdog ignores pings).
   * `now` in ticks (clock.ts).
   */
  heartbeat (now: number, options: HeartbeatOptions): void {
    if (this.status === 'ended') return
    if (now - this.lastReceivedAt >= options.timeoutMs) {
      this.logger.info({ silentMs: now - this.lastReceivedAt }, 'heartbeat timeout')
      this.doc.meter?.heartbeatTerminated()
      this.socket.terminate()
      this.end('timeout', 1006)
      return
    }
    // an update held for content that never came: 1013, and the client syncs in full on reconnect
    this.doc.expireHeld(this, wallTime(now))
    if (this.isEnded()) return
    // a random phase within the interval: sessions that started together do not all ping (nor
    // send keepalives) in the same tick
    if (this.lastPingAt === 0) this.lastPingAt = now - Math.floor(Math.random() * options.intervalMs)
    if (now - this.lastPingAt >= options.intervalMs) {
      this.lastPingAt = now
      if (this.socket.readyState === OPEN) this.socket.ping()
    }
    // a keepalive after keepaliveMs of silence, less up to half of it by the ping phase (spread
    // too); also while the document loads (a big one builds for longer than the stock client's
    // watchdog waits)
    if (now - this.lastSentAt >= options.keepaliveMs - (this.lastPingAt % (options.keepaliveMs / 2))) this.send(KEEPALIVE_FRAME)
  }

  /** Closes the socket with `code` and ends the session with `reason`. */
  close (code: number, reason: EndReason, message = ''): void {
    if (this.socket.readyState <= OPEN) this.socket.close(code, message.slice(0, 120))
    this.end(reason, code)
  }

  /** Drops the connection without a closing handshake (a half-open socket being replaced). */
  drop (): void {
    this.socket.terminate()
    this.end('disconnect', 1006)
  }

  /** The socket closed (or was terminated): ends the session. */
  socketClosed (code: number): void {
    this.end(code === CloseCode.NORMAL ? 'leave' : 'disconnect', code)
  }

  /**
   * The one exit path: remove awareness and membership, then tell the server. Safe to call twice.
   * Pending updates are stored by the writer regardless; the document unloads after that.
   */
  end (reason: EndReason, code: number): void {
    if (this.status === 'ended') return
    const backlog = this.status === 'waiting' ? this.backlog : null
    this.setStatus('ended')
    this.backlog = null
    this.doc.removeMember(this)
    // edits sent while the document loaded are not lost with the socket: the client may have
    // been shown the document already (stored-sync.ts), typed and left before the build ended.
    // Only when the client went (a session ended by the server: revoked, expired, refused input,
    // shutdown, loses them as it would any later frame)
    const clientWent = reason === 'leave' || reason === 'disconnect' || reason === 'timeout'
    if (clientWent && backlog !== null && backlog.length > 0 && this.identity.access !== 'read') this.doc.afterLoad(() => this.applyLeftBehind(backlog))
    this.hooks.ended(this, reason, code)
  }

  /**
   * Applies the updates of an ended session's backlog once its document is built, checked as any
   * of its updates (the owner of their client ids, `y:` locks). One that needs content the
   * document lacks cannot be asked for any more, and is dropped with what depends on it (held
   * updates of a member gone are never applied); one refused ends the rest.
   */
  private applyLeftBehind (backlog: Uint8Array[]): void {
    // revoked, or its token expired, after it left: the server would have ended it, edits unapplied
    if (this.hooks.stillAllowed?.(this) === false) {
      this.logger.info({ frames: backlog.length }, 'what a client that left sent while the document loaded is dropped: its credentials no longer hold')
      return
    }
    for (const data of backlog) {
      try {
        const frame = readFrame(data)
        if (frame.type !== 'sync-step2' && frame.type !== 'sync-update') continue
        this.doc.applyUpdate(frame.update, this)
      } catch (err) {
        this.logger.warn({ err: (err as Error).message }, 'an update sent while the document loaded, by a client that left, was refused')
        break
      }
    }
    // held for content the document lacks: nobody can be asked for it now, and no heartbeat of
    // this session expires it (it would take the document's held budget until it unloads)
    const dropped = this.doc.dropHeld(this)
    if (dropped > 0) this.logger.warn({ dropped }, 'updates sent while the document loaded, by a client that left, need content the document lacks; they are dropped')
  }

  private handle (data: Uint8Array): void {
    try {
      this.dispatch(readFrame(data))
    } catch (err) {
      this.refuseInput(isTandemError(err) ? err : new TandemError('TANDEM_ERR_MALFORMED_MESSAGE', String(err), { cause: err }))
    }
  }

  /** Closes the session on input it cannot accept, with the error's close code and one log line. */
  private refuseInput (error: TandemError): void {
    if (this.isEnded()) return
    if (error.code === 'TANDEM_ERR_INVALID_UPDATE') this.doc.meter?.refused('invalid')
    else if (error.code === 'TANDEM_ERR_UPDATE_INCOMPLETE') this.doc.meter?.refused('incomplete')
    else if (error.code === 'TANDEM_ERR_CLIENT_ID_TAKEN' || error.code === 'TANDEM_ERR_CLIENT_ID_IN_USE') this.doc.meter?.refused('client_id')
    this.logger.warn({ code: error.code, err: error.message }, 'closing session on bad input')
    this.close(error.closeCode ?? CloseCode.MALFORMED, 'error', error.code)
  }

  private dispatch (frame: Frame): void {
    switch (frame.type) {
      case 'sync-step1':
        return this.answerStep1(frame.stateVector)
      case 'sync-step2':
        this.updatesReceived++
        this.acks?.frame()
        if (this.identity.access === 'read') return this.refuseUpdate(frame.update)
        return this.locked(this.doc.applyUpdate(frame.update, this))
      case 'sync-update':
        this.updatesReceived++
        this.acks?.frame()
        if (this.identity.access === 'read') return this.refuseUpdate(frame.update)
        this.locked(this.doc.applyUpdate(frame.update, this))
        return this.hooks.active?.(this)
      case 'awareness': {
        // the stock client renews an unchanged state every 15 s: only a change is activity
        const changed = this.hooks.active !== undefined && this.doc.awareness.changesState(this, frame.update)
        this.doc.applyAwareness(frame.update, this)
        if (changed) this.hooks.active?.(this)
        return
      }
      case 'query-awareness': {
        const states = this.doc.awareness.encodeAll(this)
        return this.send(writeAwareness(states ?? Uint8Array.of(0)))
      }
      case 'tandem':
        if (!this.tandem || this.hooks.message === undefined || !CLIENT_MESSAGE_TYPES.has(frame.message.type)) {
          throw new TandemError('TANDEM_ERR_MALFORMED_MESSAGE', `unexpected tandem ${frame.message.type} message`)
        }
        return this.hooks.message(this, frame.message)
      case 'auth-denied':
        throw new TandemError('TANDEM_ERR_MALFORMED_MESSAGE', `unexpected ${frame.type} message from a client`)
    }
  }

  /**
   * Part of this session's update was undone (a lock, or read-only access). Undoing a deletion
   * copies the deleted content back: a session whose reverts keep costing more than the budget
   * is closed (1013), after its change was undone.
   */
  undone (bytes: number): void {
    this.revertBudget ??= new RevertBudget(REVERT_BURST_BYTES, REVERT_BYTES_PER_SECOND)
    if (this.revertBudget.spend(bytes)) return
    this.logger.warn({ bytes }, 'closing session: its undone changes cost too much')
    // after the current update is handled: it is applied and relayed already
    queueMicrotask(() => this.close(CloseCode.TRY_AGAIN_LATER, 'error', 'TANDEM_ERR_RATE_LIMITED'))
  }

  /** Part of this session's update was undone by another session's lock: a Tandem client is told. */
  locked (holder: LockInfo | null): void {
    if (holder === null) return
    this.doc.meter?.refused('locked')
    this.logger.debug({ resource: holder.resource }, 'update undone: locked type')
    if (this.tandem) this.send(writeTandem({ type: 'locked', holder }))
  }

  /**
   * A read-only session sent an update. One that integrates whole is applied and undone at once,
   * as one update relayed to everyone, the sender too, so that a stock client's screen converges
   * without a reload (enforced-locks.ts); one that would leave content pending never reaches the
   * document (it could integrate later, under a writer's update). The socket stays open (the
   * stock client keeps syncing); a Tandem client is told, unless the frame would have changed
   * nothing, which is acknowledged like any no-op.
   */
  private refuseUpdate (update: Uint8Array): void {
    let changes: boolean
    let whole: boolean
    try {
      changes = changesDocument(this.doc.ydoc, update)
      whole = changes && integratesWhole(this.doc.ydoc, update)
    } catch (err) {
      throw new TandemError('TANDEM_ERR_INVALID_UPDATE', (err as Error).message, { cause: err })
    }
    if (!changes) return this.acks?.settleLast(null)
    this.doc.meter?.refused('read_only')
    this.logger.debug('update refused: read-only session')
    if (whole) this.doc.applyUpdate(update, this, true)
    this.acks?.settleLast('TANDEM_ERR_READ_ONLY')
  }

  private answerStep1 (stateVector: Uint8Array): void {
    try {
      Y.decodeStateVector(stateVector)
    } catch (err) {
      throw new TandemError('TANDEM_ERR_MALFORMED_MESSAGE', 'bad state vector', { cause: err })
    }
    // a fresh client of a document unchanged since it was built from its stored bytes: those bytes
    const stored = this.doc.storedSync
    if (stored !== null && stateVector.byteLength === 1 && stateVector[0] === 0) return stored.serve(this)
    // what we send must be stored first: a client must never hold an update a crash could lose
    const reply = (): void => {
      if (this.status !== 'open') return
      // a small document: one step 2 now (no target, no promise for most sessions)
      const whole = wholeState(this.doc, stateVector)
      if (whole !== null) return this.send(whole)
      sendState(this.doc, this, stateVector).catch((err: unknown) => {
        this.logger.error({ err }, 'first sync failed')
        this.close(CloseCode.TRY_AGAIN_LATER, 'error', 'internal error')
      })
    }
    if (!this.doc.hasPending && this.doc.unconfirmedUpdates === 0) reply()
    else this.doc.whenStored().then(reply, () => {})
  }
}

/** Session.bits: the status's index in STATUSES (two bits), then flags. */
const STATUSES: readonly SessionStatus[] = ['waiting', 'open', 'ended']
const STATUS = 3
const TANDEM = 4
const DURABLE = 8
const SERVED_EARLY = 16

/** A session's acknowledgements (AckOrder's emit): one function for all sessions, not a closure each. */
function sendAck (this: Session, count: number, refused: string | null): void {
  this.send(writeTandem(refused === null ? { type: 'ack', count } : { type: 'refused', count, code: refused }))
}
