import type { Duplex } from 'node:stream'
import { WebSocket } from 'ws'
import type { Logger } from 'pino'
import { CloseCode } from '../../shared/constants.js'
import { FRAME_KINDS, frameKind } from '../../shared/frame-kind.js'
import { ConnectionCounter, type TokenBuckets } from './limits.js'
import type { Session } from '../session/session.js'
import { feedEvent, stoppedReading } from './socket-events.js'
import { admitsFrame } from './bounded-socket.js'
import { sendFramedOnce } from './ws-frame.js'
import type { SharedFrame } from './socket.js'

/**
 * The first-sync allowance: a client that edited offline answers the server's sync step 1 with
 * everything it holds, in one frame (the stock client cannot split it). That one frame, the
 * connection's first sync step 2, may be up to `maxSyncSize`; every other frame keeps
 * `maxMessageSize`.
 *
 * `ws` buffers a whole frame before Tandem sees it, up to the socket's maxPayload. So the large
 * limit is a scarce grant, not a per-message rule: at most SYNC_GRANTS connections at once, and
 * one per remote address, hold it; every other connection's maxPayload is lowered to
 * maxMessageSize as it opens. A grant ends with the connection's first step 2 (of any size),
 * with any frame over maxMessageSize, with the connection, or after SYNC_GRANT_MS (the
 * connection is then closed with 1013, freeing what it buffered). While it lasts, bytes arriving
 * keep the connection alive for the heartbeat, which otherwise hears only whole messages. The memory a client can pin
 * in receive buffers is thus at most SYNC_GRANTS x maxSyncSize beyond the usual
 * connections x maxMessageSize.
 *
 * A connection without a grant whose step 2 is too big is closed with 1009, as before; the
 * client reconnects and gets a grant once one is free. A step 2 over maxSyncSize closes with
 * 4413, which the stock client takes as final: sending it again cannot help.
 */

/** Connections that may hold the large first-sync limit at once. */
export const SYNC_GRANTS = 4
/** Of which per remote address. */
export const SYNC_GRANTS_PER_ADDRESS = 1
/** The longest a grant lasts; a connection still holding it then is closed with 1013. */
export const SYNC_GRANT_MS = 120_000

const EMPTY = Buffer.alloc(0)

/** Hands out first-sync grants (see the file comment). */
export class SyncGrants {
  private readonly perAddress = new ConnectionCounter(SYNC_GRANTS_PER_ADDRESS)
  private held = 0

  constructor (private readonly max: number = SYNC_GRANTS) {}

  /** A grant for `address`, or null when none is free; the release is safe to call twice. */
  acquire (address: string): (() => void) | null {
    if (this.held >= this.max) return null
    const releaseAddress = this.perAddress.acquire(address)
    if (releaseAddress === null) return null
    this.held++
    let released = false
    return () => {
      if (released) return
      released = true
      this.held--
      releaseAddress()
    }
  }

  /** Grants held now. */
  get size (): number {
    return this.held
  }
}

/** A connection's first-sync grant while it lasts (SyncSocket.startSync). */
export interface Grant {
  /** Gives the grant back (SyncGrants.acquire's release). */
  release: () => void
  /** Ends the grant after SYNC_GRANT_MS. */
  timer: NodeJS.Timeout
  /** The TCP socket, and its data listener: arriving bytes are signs of life meanwhile. */
  tcp: Duplex
  progress: () => void
}

/** What every SyncSocket of one transport shares. */
export interface SyncLimits {
  maxMessageSize: number
  /** At least maxMessageSize (the server's maxPayload). */
  maxSyncSize: number
  /** The most queued for a peer before the next send terminates it (bounded-socket.ts). */
  maxBufferedBytes: number
  /** Every connection's message budget (a bucket in its socket's fields); undefined: unlimited. */
  budget: TokenBuckets | undefined
  logger: Logger
  /** Connections per remote address: each socket gives its slot back at its close (startSync). */
  connections: ConnectionCounter
  /**
   * The grants held now, by socket (at most SYNC_GRANTS): here, not a field of every socket,
   * where most connections never hold one.
   */
  grants: Map<SyncSocket, Grant>
}

/**
 * The `ws` WebSocket class of Tandem's server (its `WebSocket` option): it carries the
 * first-sync grant of its connection and turns the 1009 that `ws` sends for a frame over
 * maxPayload into Tandem's codes, with a log line.
 */
export class SyncSocket extends WebSocket {
  /**
   * EventEmitter's table of listeners, made when the first is added (Node's emitters handle none):
   * Tandem adds none (its session hears every event through emit), and an empty table is a
   * dictionary of about 160 bytes on every idle connection.
   */
  protected _events: unknown = undefined
  /** The session this socket's frames go to, once bound (socket-events.ts); undefined after its close. */
  feeds: Session | undefined = undefined
  /** This connection's message budget (limits.budget's bucket): thousandths of a message, and when counted. */
  tokens = 0
  tokensAt = 0
  limits: SyncLimits | undefined = undefined
  /** The address whose connection slot (limits.connections) this socket holds until its close. */
  private slot: string | undefined = undefined

  /**
   * Gives this connection the first-sync grant (`release` from SyncGrants.acquire), or, with
   * null, lowers its limit to maxMessageSize at once; and the slot in `limits.connections` taken
   * for `remoteAddress`, given back at this socket's close. Call before any frame is read.
   */
  startSync (limits: SyncLimits, release: (() => void) | null, remoteAddress: string, tcp: Duplex): void {
    this.limits = limits
    this.slot = remoteAddress
    limits.budget?.fill(this)
    if (release === null || limits.maxSyncSize <= limits.maxMessageSize) {
      release?.()
      this.limitPayload(limits.maxMessageSize)
      return
    }
    const timer = setTimeout(() => {
      if (this.grant === undefined) return
      this.endSync()
      limits.logger.info({ remoteAddress, grantMs: SYNC_GRANT_MS }, 'no first sync within the grant; closing with 1013')
      this.close(CloseCode.TRY_AGAIN_LATER, 'first sync not received in time')
    }, SYNC_GRANT_MS)
    timer.unref()
    // a large frame takes a while to arrive, and the heartbeat counts only whole messages and
    // pongs: while the grant lasts, bytes arriving count as a sign of life (a 'pong', which the
    // session hears through emit; the peer cannot send a real one inside a frame)
    const progress = (): void => { this.emit('pong', EMPTY) }
    tcp.on('data', progress)
    // ended by the first step 2, a refused frame, the timer, or the close (emit)
    limits.grants.set(this, { release, timer, tcp, progress })
  }

  /**
   * Decides whether a received frame is within its limit, per message type: only the
   * connection's first sync step 2 may be larger than maxMessageSize. Any step 2, and any
   * frame refused here, ends the grant.
   */
  admits (data: Uint8Array): boolean {
    const maxMessageSize = this.limits?.maxMessageSize ?? Infinity
    const step2 = FRAME_KINDS[frameKind(data)] === 'sync_step2'
    const admitted = data.byteLength <= maxMessageSize || (step2 && this.grant !== undefined)
    if (step2 || !admitted) this.endSync()
    return admitted
  }

  /** Ends the grant: this connection's limit becomes maxMessageSize. Safe to call twice. */
  endSync (): void {
    const grant = this.grant
    if (grant === undefined) return
    this.limits?.grants.delete(this)
    clearTimeout(grant.timer)
    grant.tcp.off('data', grant.progress)
    grant.release()
    if (this.limits !== undefined) this.limitPayload(this.limits.maxMessageSize)
  }

  /** The grant this connection holds, if any. */
  private get grant (): Grant | undefined {
    return this.limits?.grants.get(this)
  }

  override close (code?: number, data?: string | Buffer): void {
    const limits = this.limits
    // ws closes with 1009 and no reason when a frame is over the receiver's maxPayload
    if (code === CloseCode.MESSAGE_TOO_BIG && data === undefined && limits !== undefined) {
      if (this.grant !== undefined) {
        limits.logger.warn({ maxSyncSize: limits.maxSyncSize }, 'first sync larger than --max-sync-size; closing with 4413 (final)')
        this.endSync()
        super.close(CloseCode.SYNC_TOO_BIG, 'TANDEM_ERR_SYNC_TOO_BIG')
        return
      }
      limits.logger.info({ maxMessageSize: limits.maxMessageSize }, 'frame larger than --max-message-size; closing with 1009')
      super.close(code, 'TANDEM_ERR_MESSAGE_TOO_BIG')
      return
    }
    super.close(code, data)
  }

  /**
   * Every event goes to the session this socket feeds (socket-events.ts) before any listener:
   * Tandem adds none, as every event name in an emitter's table costs each idle connection (V8
   * grows the dictionary). An error no listener hears is the session's (logged), not thrown.
   */
  override emit (event: string | symbol, ...args: unknown[]): boolean {
    if (event === 'close') {
      this.releaseSlot()
      this.endSync()
    }
    feedEvent(this, event, args)
    if (event === 'error' && this.listenerCount('error') === 0) return true
    return super.emit(event, ...args)
  }

  /**
   * Gives the connection slot back, once. Here rather than a listener on the TCP socket: its
   * second close listener would be an array kept by every idle connection. ws emits close once,
   * after the TCP socket closed.
   */
  private releaseSlot (): void {
    const slot = this.slot
    if (slot === undefined) return
    this.slot = undefined
    this.limits?.connections.release(slot)
  }

  /**
   * ws's send, bounded: past maxBufferedBytes queued, the socket is terminated and its session
   * ended (bounded-socket.ts). Tandem sends binary frames only, without options.
   */
  override send (data: Uint8Array): void {
    if (this.mayQueue()) super.send(data)
  }

  /** A frame a broadcast sends to many sockets, framed once for all (ws-frame.ts), bounded as send. */
  sendShared (frame: SharedFrame): void {
    if (this.mayQueue()) sendFramedOnce(this, frame)
  }

  private mayQueue (): boolean {
    return admitsFrame(this, this.limits?.maxBufferedBytes ?? Infinity, stoppedReading, this)
  }

  /** Holds writes until `uncork` (see WebSocketLike.cork): the TCP socket's own cork, which nests. */
  cork (): void {
    tcpOf(this)?.cork()
  }

  uncork (): void {
    tcpOf(this)?.uncork()
  }

  /**
   * ws has one maxPayload per server; its receiver reads the limit from this field at every
   * frame header, so lowering it here applies from the next frame on. The tests
   * (test/transport/big-sync.test.ts) check it against the installed ws.
   */
  private limitPayload (bytes: number): void {
    const receiver = (this as unknown as { _receiver?: { _maxPayload?: unknown } })._receiver
    if (receiver === undefined || typeof receiver._maxPayload !== 'number') {
      throw new Error('ws internals changed: cannot lower a connection\'s maxPayload')
    }
    receiver._maxPayload = bytes
  }
}

/** The TCP socket under a ws WebSocket (ws keeps it as `_socket`; null once closed). */
function tcpOf (socket: WebSocket): Duplex | null {
  const tcp = (socket as unknown as { _socket?: Duplex | null })._socket
  return tcp ?? null
}
