import { randomUUID } from 'node:crypto'
import type { Bus, BusHandlers, BusMessage, BusStatus } from './bus.js'
import { decodeBusEnvelope, encodeBusMessage } from './bus-codec.js'

/**
 * Connects the buses of several servers in one process. Messages go through the same codec as
 * over Redis and are delivered on a later turn, in order, as a network would.
 */
export class LocalHub {
  private readonly buses = new Set<LocalBus>()

  /** A new bus (one per server) on this hub. */
  bus (): LocalBus {
    return new LocalBus(this)
  }

  /** @internal */
  join (bus: LocalBus): void {
    this.buses.add(bus)
  }

  /** @internal A bus left: every other bus that heard from it reports the node down. */
  leave (bus: LocalBus): void {
    this.buses.delete(bus)
    for (const other of this.buses) other.peerLeft(bus.nodeId)
  }

  /** @internal */
  send (from: LocalBus, message: BusMessage): void {
    const bytes = encodeBusMessage(message)
    for (const bus of this.buses) {
      if (bus !== from) setImmediate(() => bus.deliver(message.doc, bytes))
    }
  }
}

/** The in-process Bus: for several servers embedded in one process, and for tests. */
export class LocalBus implements Bus {
  readonly nodeId = randomUUID()
  private status: BusStatus = 'idle'
  private handlers: BusHandlers | undefined
  private readonly topics = new Set<string>()
  private readonly peers = new Set<string>()

  constructor (private readonly hub: LocalHub) {}

  get ready (): boolean {
    return this.status === 'ready'
  }

  async start (handlers: BusHandlers): Promise<void> {
    if (this.status !== 'idle') throw new Error(`cannot start a bus that is ${this.status}`)
    this.handlers = handlers
    this.hub.join(this)
    this.status = 'ready'
    handlers.ready()
  }

  async subscribe (doc: string): Promise<void> {
    this.topics.add(doc)
  }

  unsubscribe (doc: string): void {
    this.topics.delete(doc)
  }

  publish (message: BusMessage): void {
    if (this.status === 'ready') this.hub.send(this, message)
  }

  async close (): Promise<void> {
    if (this.status === 'closed') return
    const started = this.status !== 'idle'
    this.status = 'closed'
    if (started) this.hub.leave(this)
  }

  /** @internal */
  deliver (doc: string, bytes: Uint8Array): void {
    if (this.status !== 'ready' || !this.topics.has(doc)) return
    const { message, sentAt } = decodeBusEnvelope(bytes)
    this.peers.add(message.from)
    this.handlers?.message(message, sentAt)
  }

  /** @internal */
  peerLeft (nodeId: string): void {
    if (this.peers.delete(nodeId) && this.status === 'ready') this.handlers?.nodeDown(nodeId)
  }
}
