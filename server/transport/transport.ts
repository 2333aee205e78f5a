import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { WebSocketServer } from 'ws'
import { documentNameFromPath } from '../../shared/document-name.js'
import { TandemError, isTandemError } from '../../shared/errors.js'
import { TANDEM_QUERY_PARAM } from '../../shared/constants.js'
import { CloseCode } from '../../shared/constants.js'
import type { AuthRequest } from '../auth/auth.js'
import { ConnectionCounter, TokenBuckets } from './limits.js'
import { SyncGrants, SyncSocket, type SyncLimits } from './sync-allowance.js'
import { clientAddress, type TrustProxy } from './proxy.js'
import { splitTarget } from './request-target.js'
import type { Logger } from 'pino'

/** A WebSocket request that passed the transport's checks. */
export interface UpgradeRequest extends AuthRequest {
  /** The client asked for Tandem messages. */
  tandem: boolean
}

/** The transport's own limits and checks. */
export interface TransportOptions {
  maxMessageSize: number
  /** The largest first sync step 2 (see sync-allowance.ts). */
  maxSyncSize: number
  /** Bytes queued for a peer past which the next send terminates it (bounded-socket.ts). */
  maxBufferedBytes: number
  /** Each connection's message budget: its rate (0: unlimited) and burst. */
  maxMessagesPerSecond: number
  messageBurst: number
  allowedOrigins?: readonly string[]
  /** Open connections and handshakes per remote address; 0: no limit. */
  maxConnectionsPerIp: number
  /** Proxies (addresses or CIDRs) whose X-Forwarded-For names the client. */
  trustProxy?: readonly string[]
}

/** What the transport needs from the server core. */
export interface TransportTarget {
  /** Throws a TandemError (or an error with statusCode) to refuse the upgrade. */
  admit (request: UpgradeRequest): Promise<unknown>
  /**
   * Takes the accepted socket (a SyncSocket: feed its frames through `admits`); `admission` is
   * what admit returned.
   */
  connect (socket: SyncSocket, request: UpgradeRequest, admission: unknown): void
}

/**
 * The thin binding between `ws` and the core: parses the request, refuses bad ones with an HTTP
 * status before the upgrade, and hands accepted sockets over. Frames over a connection's
 * maxPayload are closed by `ws` itself, with 1009 (or 4413 for a first sync over maxSyncSize:
 * see sync-allowance.ts).
 */
export class WebSocketTransport {
  readonly wss: WebSocketServer
  /** Connections allowed a first sync over maxMessageSize (see sync-allowance.ts). */
  readonly syncGrants = new SyncGrants()
  private readonly syncLimits: SyncLimits
  /** Connections (handshakes included) per remote address, released when the connection closes. */
  readonly connections: ConnectionCounter
  private readonly proxies: TrustProxy

  constructor (
    private readonly target: TransportTarget,
    private readonly options: TransportOptions,
    private readonly logger: Logger
  ) {
    this.connections = new ConnectionCounter(options.maxConnectionsPerIp)
    this.syncLimits = {
      maxMessageSize: options.maxMessageSize,
      maxSyncSize: Math.max(options.maxSyncSize, options.maxMessageSize),
      maxBufferedBytes: options.maxBufferedBytes,
      budget: options.maxMessagesPerSecond > 0 ? new TokenBuckets(options.messageBurst, options.maxMessagesPerSecond) : undefined,
      logger,
      connections: this.connections,
      grants: new Map()
    }
    this.proxies = clientAddress.compile(options.trustProxy ?? [], options.maxConnectionsPerIp, logger)
    this.wss = new WebSocketServer({
      noServer: true,
      WebSocket: SyncSocket,
      // the first-sync limit; each connection lowers it to maxMessageSize unless granted
      maxPayload: this.syncLimits.maxSyncSize,
      perMessageDeflate: false,
      clientTracking: false,
      // a token sent as Sec-WebSocket-Protocol must be echoed back, or browsers fail the handshake
      handleProtocols: protocols => protocols.values().next().value ?? false
    })
  }

  /** The http server's 'upgrade' listener. */
  readonly handleUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    // a named function, not a closure here: this listener lives as long as the connection, and a
    // closure would keep this whole scope (the request, its headers, the URL) alive with it
    socket.on('error', destroyOnError)
    let request: UpgradeRequest
    try {
      request = this.parse(req)
    } catch (err) {
      this.refuse(socket, err)
      return
    }
    // counted from the handshake on, so slow handshakes count too; released by the TCP socket's
    // close until the upgrade, then by the WebSocket's (which follows it: SyncSocket.startSync), so
    // no path (refusal, failed handshake, close) can leak a slot. The handshake's closure goes at
    // the upgrade: an idle connection keeps neither it nor a second close listener (an array)
    const { connections } = this
    const key = request.remoteAddress
    if (!connections.take(key)) {
      this.refuse(socket, new TandemError('TANDEM_ERR_RATE_LIMITED', `more than ${this.options.maxConnectionsPerIp} connections from one address`), key)
      return
    }
    const releaseSlot = (): void => { connections.release(key) }
    socket.on('close', releaseSlot)
    this.target.admit(request).then(admission => {
      if (socket.destroyed) return
      // the 101 response and the session's greeting (sent in a microtask once the document is
      // loaded) in one write: a system call per connection less, which a connection storm feels
      socket.cork()
      try {
        this.wss.handleUpgrade(req, socket, head, websocket => {
          const ws = websocket as SyncSocket
          // ws listens for the TCP socket's errors from now on; ours would stay for the
          // connection's life (a listener array on every idle socket)
          socket.off('error', destroyOnError)
          // the socket is open (ws checked): the WebSocket gives the slot back from now on
          socket.off('close', releaseSlot)
          try {
            ws.startSync(this.syncLimits, this.syncGrants.acquire(key), key, socket)
            this.target.connect(ws, request, admission)
          } catch (err) {
            this.logger.error({ err }, 'connect failed')
            ws.close(CloseCode.TRY_AGAIN_LATER, 'internal error')
          }
        })
      } finally {
        // queued after the session's start, which connect() queued when the document is
        // loaded; never left corked, whatever handleUpgrade did
        queueMicrotask(() => socket.uncork())
      }
    }, (err: unknown) => this.refuse(socket, err, request.remoteAddress))
  }

  private parse (req: IncomingMessage): UpgradeRequest {
    const origin = req.headers.origin
    if (this.options.allowedOrigins !== undefined && (origin === undefined || !this.options.allowedOrigins.includes(origin))) {
      throw new TandemError('TANDEM_ERR_FORBIDDEN', `origin ${origin ?? '(none)'} is not allowed`)
    }
    const { path, query } = splitTarget(req.url)
    const document = documentNameFromPath(path)
    const protocol = req.headers['sec-websocket-protocol']
    const protocolToken = typeof protocol === 'string' ? protocol.split(',')[0]?.trim() : undefined
    return {
      document,
      token: query.get('token') ?? protocolToken,
      query,
      headers: req.headers,
      tandem: query.get(TANDEM_QUERY_PARAM) === '1',
      // the socket's peer, or from X-Forwarded-For when the peer is a trusted proxy
      remoteAddress: this.proxies.address(req)
    }
  }

  private refuse (socket: Duplex, err: unknown, address?: string): void {
    const code = isTandemError(err) ? err.code : undefined
    const status = isTandemError(err) ? err.httpStatus : errorStatus(err)
    const message = status >= 500 && code === undefined ? 'internal error' : err instanceof Error ? err.message : (STATUS_TEXT[status] ?? 'refused')
    if (status >= 500 && code === undefined) this.logger.error({ err, status }, 'upgrade failed')
    else this.logger.info({ status, code, reason: message, address }, 'upgrade refused')
    if (socket.destroyed) return
    const body = `${message}\n`
    socket.end(`HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}\r\nConnection: close\r\n` +
      `Content-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`)
  }

  /** Stops the WebSocket server (sockets are closed by the core). */
  close (): void {
    this.wss.close()
  }
}

/** An error's own `statusCode` when it is a refusal (4xx or 5xx), else 500: never a 1xx-3xx. */
function errorStatus (err: unknown): number {
  const status = (err as { statusCode?: unknown } | null)?.statusCode
  return typeof status === 'number' && Number.isInteger(status) && status >= 400 && status <= 599 ? status : 500
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 410: 'Gone', 429: 'Too Many Requests', 500: 'Internal Server Error', 503: 'Service Unavailable'
}

function destroyOnError (this: Duplex): void {
  this.destroy()
}
