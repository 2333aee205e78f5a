// A small HTTP and WebSocket balancer for the tests and the bench (http-proxy): round-robin per
// new connection over a list of targets that may change, and a network drop on demand.
//   node bench/dist/bench/balancer.js [--port P] [--host H] [--xfwd] http://127.0.0.1:A http://127.0.0.1:B
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { pathToFileURL } from 'node:url'
import httpProxy from 'http-proxy'

/** Options of `startBalancer`. */
export interface BalancerOptions {
  /** Add X-Forwarded-For/-Port/-Proto (appended to any the client sent), as a real proxy does. @default false */
  xfwd?: boolean
  /** @default '127.0.0.1' */
  host?: string
  /** @default 0 (a free port) */
  port?: number
}

/** A running balancer. */
export interface Balancer {
  /** `ws://HOST:PORT` */
  readonly url: string
  /** `http://HOST:PORT` */
  readonly http: string
  readonly port: number
  /** The targets new connections go to, in round-robin order. */
  readonly targets: readonly string[]
  /** Replaces the targets; open connections stay where they are. */
  setTargets (targets: readonly string[]): void
  /** Sends the next WebSocket connection to `target` (one of the targets or not), then round-robin again. */
  pick (target: string): void
  /** Destroys every proxied WebSocket pair at once, both sides, with no closing handshake (a network drop); returns how many. */
  dropAll (): number
  /** Open proxied WebSocket connections. */
  readonly connections: number
  /** How many WebSocket connections went to each target so far. */
  readonly routed: ReadonlyMap<string, number>
  /** Stops listening and destroys every connection; safe to call twice. */
  close (): Promise<void>
}

/** A client socket and, once the target answered the upgrade, the socket to the target. */
interface Pair {
  client: Duplex
  upstream?: Socket
}

/** Destroys a socket at once, with a TCP reset where the platform has one (a drop, not a close). */
function drop (socket: Duplex): void {
  const reset = (socket as Partial<Socket>).resetAndDestroy
  if (typeof reset === 'function' && !socket.destroyed) reset.call(socket)
  else socket.destroy()
}

/**
 * Starts a balancer in front of `targets` (`http://127.0.0.1:PORT`): every new WebSocket
 * connection goes to the next target in turn (or to the one `pick` named), plain HTTP requests
 * take turns the same way on their own counter. A target that does not answer gets a 502 for
 * HTTP and a destroyed socket for an upgrade, as a balancer without health checks does.
 */
export async function startBalancer (targets: readonly string[], options: BalancerOptions = {}): Promise<Balancer> {
  let list = [...targets]
  let nextSocket = 0
  let nextRequest = 0
  let picked: string | undefined
  let closing: Promise<void> | undefined
  const pairs = new Set<Pair>()
  const routed = new Map<string, number>()
  const proxy = httpProxy.createProxyServer({ xfwd: options.xfwd ?? false, ws: true })

  const roundRobin = (counter: number): string => {
    if (list.length === 0) throw new Error('no targets')
    return list[counter % list.length] as string
  }

  proxy.on('error', (_err: Error, _req: IncomingMessage, res: ServerResponse | Socket) => {
    if ('writeHead' in res) {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' })
      res.end('bad gateway\n')
    } else {
      res.destroy()
    }
  })

  const server = createServer((req, res) => {
    let target: string
    try {
      target = roundRobin(nextRequest++)
    } catch {
      res.writeHead(503).end('no targets\n')
      return
    }
    proxy.web(req, res, { target })
  })

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    let target: string
    try {
      target = picked ?? roundRobin(nextSocket++)
    } catch {
      socket.destroy()
      return
    }
    picked = undefined
    routed.set(target, (routed.get(target) ?? 0) + 1)
    const pair: Pair = { client: socket }
    pairs.add(pair)
    // either side gone: the other goes too, so no half-open pair outlives it
    socket.once('close', () => {
      pairs.delete(pair)
      if (pair.upstream !== undefined) drop(pair.upstream)
    })
    socket.on('error', () => {})
    proxy.ws(req, socket, head, { target })
  })

  proxy.on('proxyReqWs', (proxyReq, _req, socket) => {
    proxyReq.on('upgrade', (_res, upstream: Socket) => {
      const pair = [...pairs].find(p => p.client === socket)
      if (pair === undefined) return drop(upstream)
      pair.upstream = upstream
      upstream.on('error', () => {})
      upstream.once('close', () => drop(socket))
    })
  })

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
      server.off('error', reject)
      resolve()
    })
  })
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('balancer has no port')
  const host = options.host ?? '127.0.0.1'
  const base = `${host.includes(':') ? `[${host}]` : host}:${address.port}`

  const dropAll = (): number => {
    const all = [...pairs]
    for (const pair of all) {
      drop(pair.client)
      if (pair.upstream !== undefined) drop(pair.upstream)
    }
    pairs.clear()
    return all.length
  }

  return {
    url: `ws://${base}`,
    http: `http://${base}`,
    port: address.port,
    get targets () { return list },
    setTargets (next) { list = [...next] },
    pick (target) { picked = target },
    dropAll,
    get connections () { return pairs.size },
    routed,
    close () {
      closing ??= new Promise<void>(resolve => {
        dropAll()
        server.close(() => resolve())
        server.closeAllConnections()
        proxy.close()
      })
      return closing
    }
  }
}

/** The CLI: `balancer.js [--port P] [--host H] [--xfwd] TARGET...`; runs until SIGINT/SIGTERM. */
async function main (argv: readonly string[]): Promise<void> {
  const targets: string[] = []
  const options: BalancerOptions = {}
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string
    if (arg === '--port') options.port = Number(argv[++i])
    else if (arg === '--host') options.host = argv[++i]
    else if (arg === '--xfwd') options.xfwd = true
    else if (/^https?:\/\//.test(arg)) targets.push(arg)
    else throw new Error(`unknown argument ${arg}: balancer.js [--port P] [--host H] [--xfwd] http://HOST:PORT...`)
  }
  if (targets.length === 0) throw new Error('no targets: balancer.js [--port P] [--host H] [--xfwd] http://HOST:PORT...')
  if (options.port !== undefined && !Number.isInteger(options.port)) throw new Error('--port takes a number')
  const balancer = await startBalancer(targets, options)
  console.log(`balancer listening on ${balancer.url} -> ${targets.join(' ')}`)
  const stop = (): void => { void balancer.close().then(() => process.exit(0)) }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    console.error((err as Error).message)
    process.exit(1)
  })
}
