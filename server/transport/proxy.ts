import type { IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import proxyAddr from 'proxy-addr'
import type { Logger } from 'pino'

/** Finds a request's client address (see `clientAddress.compile`). */
export interface TrustProxy {
  /** The client's address: the socket's peer, or X-Forwarded-For's when the peer is trusted. */
  address (req: IncomingMessage): string
}

/**
 * The client address of a request behind reverse proxies (`--trust-proxy`). X-Forwarded-For is
 * read only from a peer in the trusted list, from the right, hop by hop while each hop is
 * trusted too (proxy-addr, as Express does); from anyone else the header is ignored, since any
 * client can send one. Per-address limits and log lines use this address.
 */
export const clientAddress = {
  /**
   * @param trusted - addresses or CIDRs (`10.0.0.0/8`, `::1`), or proxy-addr's names
   *   `loopback`, `linklocal`, `uniquelocal`; empty: trust no one
   * @param perAddressLimit - the per-address connection limit: with one on, the first request
   *   that carries X-Forwarded-For or Forwarded from a peer not in `trusted` logs a warning
   *   (everyone behind that proxy shares its address, and so its limit)
   */
  compile (trusted: readonly string[], perAddressLimit: number, logger: Logger): TrustProxy {
    const trust = proxyAddr.compile([...trusted])
    let warned = perAddressLimit === 0
    return {
      address (req) {
        const peer = peerAddress(req.socket)
        if (!warned) warned = warnUntrusted(req, peer, () => trusted.length > 0 && trust(peer, 0), perAddressLimit, logger)
        if (trusted.length === 0 || peer === '') return peer
        return proxyAddr(req, trust)
      }
    }
  }
}

/**
 * The socket's peer address, read from its handle without Node's cache: `remoteAddress` keeps an
 * `{ address, family, port }` object on the socket for its whole life (56 bytes of every idle
 * connection). Falls back to `remoteAddress` where the handle cannot tell.
 */
export function peerAddress (socket: Socket): string {
  const handle = (socket as unknown as { _handle?: { getpeername?: (out: { address?: string }) => number } | null })._handle
  if (typeof handle?.getpeername === 'function' && !socket.connecting) {
    const out: { address?: string } = {}
    if (handle.getpeername(out) === 0 && typeof out.address === 'string') return out.address
  }
  return socket.remoteAddress ?? ''
}

/**
 * Logs one warning when `req` came through what looks like a proxy that is not trusted; true
 * once it did. A client can send these headers too, so this only warns: the address stays the
 * peer's.
 */
function warnUntrusted (req: IncomingMessage, peer: string, trusted: () => boolean, perAddressLimit: number, logger: Logger): boolean {
  const header = req.headers['x-forwarded-for'] !== undefined ? 'X-Forwarded-For' : req.headers.forwarded !== undefined ? 'Forwarded' : undefined
  if (header === undefined || trusted()) return false
  logger.warn({ peer, perAddressLimit }, `connections arrive through a proxy (${header} from ${peer}, which --trust-proxy does not list): every client behind it shares one address and its limit of ${perAddressLimit} connections (set --trust-proxy to the proxy's address, or --max-connections-per-ip 0)`)
  return true
}
