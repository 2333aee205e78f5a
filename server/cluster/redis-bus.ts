import { randomUUID } from 'node:crypto'
import { Cluster, type Redis } from 'ioredis'
import type { Logger } from 'pino'
import type { Bus, BusHandlers, BusMessage, BusStatus } from './bus.js'
import { decodeBusEnvelope, encodeBusMessage } from './bus-codec.js'
import { connectPair, redisClient } from './redis-client.js'

/** Options of {@link RedisBus}. */
export interface RedisBusOptions {
  /** `redis://` or `rediss://` URL. */
  url: string
  /** Prepended to every key and channel, so several deployments (or tests) share one Redis. @default 'tandem:' */
  prefix?: string
  /** A peer silent this long (its liveness key expired) is reported down. @default 30_000 */
  livenessMs?: number
  logger: Logger
}

/**
 * The Redis Bus: one pub/sub channel per document and a liveness key per node. Names carry the
 * document in a hash tag (`tandem:{doc}:bus`) so that a Redis Cluster keeps a document's keys on
 * one shard. Two connections (a subscriber cannot publish); commands are never queued while
 * Redis is away: a publish then is dropped, and the `ready` that follows tells the node to
 * resynchronise every loaded document.
 */
export class RedisBus implements Bus {
  readonly nodeId = randomUUID()
  private status: BusStatus = 'idle'
  private readonly url: string
  private pub: Redis | Cluster
  private sub: Redis | Cluster
  private readonly prefix: string
  private readonly livenessMs: number
  private readonly logger: Logger
  private handlers: BusHandlers | undefined
  private readonly topics = new Set<string>()
  /** Peers heard from: the ones whose liveness this node watches. */
  private readonly peers = new Set<string>()
  private readySince = 0
  /** Subscriptions waiting for Redis: released when the bus goes down. */
  private readonly interrupted = new Set<() => void>()
  private timer: NodeJS.Timeout | undefined
  private closing: Promise<void> | undefined

  constructor (options: RedisBusOptions) {
    this.prefix = options.prefix ?? 'tandem:'
    this.livenessMs = options.livenessMs ?? 30_000
    this.logger = options.logger.child({ bus: 'redis', node: this.nodeId })
    this.url = options.url
    this.pub = this.connection('pub', false)
    this.sub = this.connection('sub', false)
  }

  /**
   * A connection (single Redis or cluster). A publish command unanswered for a fifth of
   * livenessMs means a half-open connection (no FIN ever came): see tick().
   */
  private connection (role: 'pub' | 'sub', cluster: boolean): Redis | Cluster {
    return redisClient({
      url: this.url,
      name: `tandem-${role}-${this.nodeId}`,
      commandTimeoutMs: role === 'pub' ? Math.max(500, Math.floor(this.livenessMs / 5)) : undefined
    }, cluster)
  }

  get ready (): boolean {
    return this.status === 'ready'
  }

  /** The pub/sub channel of a document. encodeURIComponent keeps `{` and `}` out of the tag. */
  channel (doc: string): string {
    return `${this.prefix}{${encodeURIComponent(doc)}}:bus`
  }

  /** The liveness key of a node. */
  nodeKey (nodeId: string): string {
    return `${this.prefix}node:{${nodeId}}`
  }

  private setStatus (status: BusStatus): void {
    if (status === this.status) return
    const was = this.status
    this.status = status
    if (status === 'down') this.logger.error('redis unreachable; serving local clients only until it returns')
    if (status === 'down' || status === 'closed') for (const release of [...this.interrupted]) release()
    if (status === 'ready' && was === 'down') this.logger.info('redis reachable again; resynchronising')
  }

  async start (handlers: BusHandlers): Promise<void> {
    if (this.status !== 'idle') throw new Error(`cannot start a bus that is ${this.status}`)
    this.handlers = handlers
    this.setStatus('connecting')
    const onError = (err: Error): void => {
      if (this.status === 'ready') this.logger.debug({ err: err.message }, 'redis error')
    }
    try {
      const pair = await connectPair(cluster => ({ main: this.connection('pub', cluster), sub: this.connection('sub', cluster) }), onError)
      this.pub = pair.main
      this.sub = pair.sub
      if (pair.cluster) this.logger.info('redis is a cluster; using cluster clients')
    } catch (err) {
      this.setStatus('closed')
      throw err
    }
    this.sub.on('messageBuffer', (_channel: Buffer, bytes: Buffer) => this.receive(bytes))
    for (const connection of [this.pub, this.sub]) {
      connection.on('close', () => { if (this.status === 'ready') this.setStatus('down') })
      connection.on('ready', () => { void this.connected() })
    }
    await this.connected()
    const tick = Math.max(10, Math.floor(this.livenessMs / 5))
    this.timer = setInterval(() => { void this.tick() }, tick)
  }

  /** Both connections are up (at start or after an outage): subscribe again, then report ready. */
  private async connected (): Promise<void> {
    if (this.pub.status !== 'ready' || this.sub.status !== 'ready' || this.status === 'closed') return
    try {
      if (this.topics.size > 0) await this.sub.subscribe(...[...this.topics].map(doc => this.channel(doc)))
      await this.refreshLiveness()
    } catch (err) {
      this.logger.debug({ err }, 'resubscribe failed; waiting for the next reconnect')
      return
    }
    // the status may have changed while we awaited
    const status = this.status as BusStatus
    if (this.pub.status !== 'ready' || this.sub.status !== 'ready' || status === 'closed' || status === 'ready') return
    this.readySince = Date.now()
    this.setStatus('ready')
    this.handlers?.ready()
  }

  async subscribe (doc: string): Promise<void> {
    this.topics.add(doc)
    if (this.status !== 'ready' || this.sub.status !== 'ready') return
    // done when Redis confirms, or when the bus goes down: a document must not wait for Redis to
    // load, and the reconnect that follows subscribes every topic again and resynchronises
    await new Promise<void>(resolve => {
      const done = (): void => {
        this.interrupted.delete(done)
        resolve()
      }
      this.interrupted.add(done)
      this.sub.subscribe(this.channel(doc)).then(done, done)
    })
  }

  unsubscribe (doc: string): void {
    this.topics.delete(doc)
    if (this.sub.status === 'ready') this.sub.unsubscribe(this.channel(doc)).catch(() => {})
  }

  publish (message: BusMessage): void {
    if (this.status !== 'ready' || this.pub.status !== 'ready') return
    this.publisher().publish(this.channel(message.doc), Buffer.from(encodeBusMessage(message))).catch((err: unknown) => {
      this.logger.debug({ err, type: message.type }, 'publish failed; the resync after reconnect covers it')
    })
  }

  /**
   * Where to send PUBLISH. It has no key, so a cluster client sends each one to a random node and
   * they can arrive out of order; sent through one node they stay in order (the cluster forwards
   * every message to every node).
   */
  private publisher (): Redis | Cluster {
    if (!(this.pub instanceof Cluster)) return this.pub
    return this.pub.nodes('master')[0] ?? this.pub
  }

  private receive (bytes: Buffer): void {
    let message: BusMessage
    let sentAt: number
    try {
      ({ message, sentAt } = decodeBusEnvelope(bytes))
    } catch (err) {
      this.logger.warn({ err }, 'ignoring a bus message that cannot be decoded')
      return
    }
    if (message.from === this.nodeId) return
    if (this.status === 'closed') return
    this.peers.add(message.from)
    this.handlers?.message(message, sentAt)
  }

  private refreshLiveness (): Promise<unknown> {
    // the key outlives three missed refreshes; a dead node's key is gone within 3/5 of livenessMs
    return this.pub.set(this.nodeKey(this.nodeId), '1', 'PX', Math.max(30, Math.floor(this.livenessMs * 3 / 5)))
  }

  /** Refresh our key; report peers whose key expired (not right after an outage: give them a turn). */
  private async tick (): Promise<void> {
    if (this.status !== 'ready') return
    try {
      await this.refreshLiveness()
      if (this.peers.size === 0 || Date.now() - this.readySince < this.livenessMs * 3 / 5) return
      const peers = [...this.peers]
      const alive = await Promise.all(peers.map(peer => this.pub.exists(this.nodeKey(peer))))
      if (this.status !== 'ready') return
      peers.forEach((peer, i) => {
        if (alive[i] !== 0 || !this.peers.delete(peer)) return
        this.logger.info({ peer }, 'peer node is gone')
        this.handlers?.nodeDown(peer)
      })
    } catch (err) {
      this.logger.debug({ err }, 'liveness check failed')
      if (/timed out/i.test((err as Error).message) && this.status === 'ready') {
        // Redis stopped answering without closing: treat it as an outage and reconnect both
        this.setStatus('down')
        this.pub.disconnect(true)
        this.sub.disconnect(true)
      }
    }
  }

  close (): Promise<void> {
    this.closing ??= this.shutdown()
    return this.closing
  }

  private async shutdown (): Promise<void> {
    const wasReady = this.status === 'ready'
    this.setStatus('closed')
    clearInterval(this.timer)
    this.sub.disconnect()
    if (wasReady) {
      // quit waits for the publishes still queued (the last awareness removals) to go out
      await this.pub.del(this.nodeKey(this.nodeId)).catch(() => {})
      await this.pub.quit().catch(() => {})
    }
    this.pub.disconnect()
  }
}
