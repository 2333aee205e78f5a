import * as Y from 'yjs'
import type { Logger } from 'pino'
import type { Document } from '../document/document.js'
import type { ClientOwner } from '../document/client-owners.js'
import type { Replication } from '../document/registry.js'
import { RemoteOwner } from '../document/awareness.js'
import { CLUSTER_TOPIC, type Bus, type BusMessage } from './bus.js'
import type { Revocation } from '../store/store.js'
import { RedisBus } from './redis-bus.js'
import { redisUnreachable } from './redis-client.js'
import { writeAwareness } from '../../shared/messages.js'
import type { ResolvedOptions } from '../config/config.js'
import type { LeaveReason, PresenceEntry } from '../../shared/tandem.js'
import type { PresencePeers } from '../presence/rooms.js'
import { encodeIntegratedState } from '../document/read-only.js'

/** What the cluster needs of presence (Collaboration). */
export interface PresenceNode {
  ownPresence (doc: string): PresenceEntry[]
  peerPresence (node: string, doc: string, userId: string, entry: PresenceEntry | null, reason: LeaveReason | ''): void
  peerSnapshot (node: string, doc: string, entries: PresenceEntry[]): void
  peerDown (node: string): void
}

/** What the cluster needs of live-session policy: peers' revocations and rechecks. */
export interface LiveNode {
  peerRevoked (revocation: Revocation): void
  peerRecheck (doc: string): void
}

/** What the cluster needs of resuming (Collaboration): a session of ours resumed elsewhere. */
export interface ResumeNode {
  resumedElsewhere (sessionId: string): void
}

/** What the cluster reports (metrics). */
export interface ClusterObserver {
  /** A message went out to the peers, or came in from one `lagSeconds` after it was sent. */
  message? (direction: 'in' | 'out', lagSeconds?: number): void
  /** The bus connected again after an outage. */
  reconnected? (): void
}

/** The loaded documents, as the cluster looks them up. */
export interface LoadedDocuments {
  get (name: string): Document | undefined
  all (): Iterable<Document>
  /** Another instance deleted the document: evict it here (close its connections with 4404). */
  deleted? (name: string): void
}

/**
 * This instance's part in a group of instances sharing documents through a Bus. It publishes what
 * its sessions change (updates as soon as they are relayed here, then that they are stored; awareness with the clocks this instance assigned),
 * applies what peers publish, catches a document up from peers when it loads and every loaded
 * document when the bus reconnects, and removes the awareness states of a peer that died.
 */
export class Cluster implements Replication, PresencePeers {
  private readonly remotes = new Map<string, RemoteOwner>()
  private presenceNode: PresenceNode | undefined
  private liveNode: LiveNode | undefined
  private resumeNode: ResumeNode | undefined
  /** Peers reported down: hearing from one again means it was only cut off, so resync. */
  private readonly gone = new Set<string>()
  private closing: Promise<void> | undefined
  private connectedOnce = false
  /** Sequence number of this node's last relayed update (all documents). */
  private relaySeq = 0

  constructor (
    private readonly bus: Bus,
    private readonly docs: LoadedDocuments,
    private readonly logger: Logger,
    private readonly observer: ClusterObserver = {}
  ) {}

  /** This instance's node id on the bus. */
  get nodeId (): string {
    return this.bus.nodeId
  }

  /** True while the bus is connected. */
  get ready (): boolean {
    return this.bus.ready
  }

  /** Connects the bus and hears the cluster-wide topic; rejects when it cannot connect. */
  async start (): Promise<void> {
    await this.bus.start({
      message: (message, sentAt) => {
        // clocks of different hosts may disagree a little: never a negative lag
        this.observer.message?.('in', Math.max(0, Date.now() - sentAt) / 1000)
        this.receive(message)
      },
      ready: () => {
        if (this.connectedOnce) this.observer.reconnected?.()
        this.connectedOnce = true
        // confirmations may have been lost while the bus was down: store what waits for them
        for (const doc of this.docs.all()) doc.storeUnconfirmed(null)
        this.resync()
      },
      nodeDown: nodeId => this.nodeDown(nodeId)
    })
    await this.bus.subscribe(CLUSTER_TOPIC)
  }

  attach (name: string): Promise<void> {
    return this.bus.subscribe(name)
  }

  detach (name: string): void {
    this.bus.unsubscribe(name)
  }

  loaded (doc: Document): void {
    this.askPeers(doc, '')
  }

  relayed (doc: Document, update: Uint8Array, owners: readonly ClientOwner[]): number {
    const seq = ++this.relaySeq
    this.publish(owners.length === 0 ? { type: 'relay', from: this.nodeId, doc: doc.name, seq, update } : { type: 'relay', from: this.nodeId, doc: doc.name, seq, update, owners })
    return seq
  }

  stored (doc: Document, seq: number): void {
    this.publish({ type: 'relay', from: this.nodeId, doc: doc.name, seq, update: null })
  }

  awareness (doc: Document, update: Uint8Array): void {
    this.publish({ type: 'awareness', from: this.nodeId, doc: doc.name, update })
  }

  /** Tells every other instance that `name` was deleted (they evict it). */
  announceDeleted (name: string): void {
    this.publish({ type: 'deleted', from: this.nodeId, doc: name })
  }

  /** Where peers' presence goes (the instance's Collaboration). */
  bindPresence (node: PresenceNode): void {
    this.presenceNode = node
  }

  /** Where peers' revocations and rechecks go (the instance's live-session policy). */
  bindLive (node: LiveNode): void {
    this.liveNode = node
  }

  /** Where peers' news of resumed sessions goes (the instance's Collaboration). */
  bindResume (node: ResumeNode): void {
    this.resumeNode = node
  }

  /** Tells instance `to` that its session `sessionId` resumed here (it lets the session go). */
  publishResumed (sessionId: string, to: string): void {
    this.publish({ type: 'resumed', from: this.nodeId, doc: CLUSTER_TOPIC, to, sessionId })
  }

  /** Tells every peer about a revocation made here. */
  publishRevocation (revocation: Revocation): void {
    this.publish({ type: 'revoke', from: this.nodeId, doc: CLUSTER_TOPIC, revocation })
  }

  /** Asks the peers with the document loaded to authenticate its sessions again. */
  publishRecheck (doc: string): void {
    this.publish({ type: 'recheck', from: this.nodeId, doc })
  }

  publishPresence (doc: string, userId: string, entry: PresenceEntry | null, reason: LeaveReason | ''): void {
    this.publish({ type: 'presence', from: this.nodeId, doc, userId, entry, reason })
  }

  refreshPresence (name: string): void {
    // a document still loading asks its peers once loaded; the answers carry their presence
    const doc = this.docs.get(name)
    if (doc !== undefined && (doc.status === 'ready' || doc.status === 'unloading')) this.askPeers(doc, '')
  }

  /** Publishes to the peers, counted (a bus that is down drops the message: not counted). */
  private publish (message: BusMessage): void {
    if (this.bus.ready) this.observer.message?.('out')
    this.bus.publish(message)
  }

  /** Leaves the bus. Safe to call twice. */
  close (): Promise<void> {
    this.closing ??= this.bus.close()
    return this.closing
  }

  /** Every loaded document asks its peers for what it missed (after an outage). */
  private resync (): void {
    for (const doc of this.docs.all()) if (doc.status === 'ready' || doc.status === 'unloading') this.askPeers(doc, '')
  }

  private askPeers (doc: Document, to: string): void {
    this.publish({ type: 'sync', from: this.nodeId, doc: doc.name, to, stateVector: Y.encodeStateVector(doc.ydoc) })
  }

  private owner (nodeId: string): RemoteOwner {
    let owner = this.remotes.get(nodeId)
    if (owner === undefined) this.remotes.set(nodeId, owner = new RemoteOwner(nodeId))
    return owner
  }

  private receive (message: BusMessage): void {
    if (this.gone.delete(message.from)) {
      this.logger.info({ peer: message.from }, 'peer node is back; resynchronising')
      for (const doc of this.docs.all()) doc.storeUnconfirmed(message.from)
      this.resync()
    }
    if (message.type === 'revoke') return this.liveNode?.peerRevoked(message.revocation)
    if (message.type === 'resumed') {
      if (message.to === this.nodeId) this.resumeNode?.resumedElsewhere(message.sessionId)
      return
    }
    const doc = this.docs.get(message.doc)
    if (doc === undefined || doc.status === 'failed' || doc.status === 'unloaded') return
    try {
      this.dispatch(doc, message)
    } catch (err) {
      doc.logger.warn({ err, type: message.type, peer: message.from }, 'ignoring a bus message that cannot be applied')
    }
  }

  private dispatch (doc: Document, message: BusMessage): void {
    switch (message.type) {
      case 'update':
        // applied even while loading: Yjs merges it with the stored updates read meanwhile
        doc.applyRemote(message.update, message.owners)
        return
      case 'relay':
        // before the sender's store commit; then that it is stored (update null)
        if (message.update === null) return doc.relayStored(message.from, message.seq)
        return doc.applyRelayed(message.from, message.seq, message.update, message.owners)
      case 'awareness':
      case 'awareness-snapshot': {
        const relay = doc.awareness.applyRemote(this.owner(message.from), message.update, message.type === 'awareness-snapshot')
        if (relay !== null) doc.broadcast(writeAwareness(relay))
        return
      }
      case 'sync':
        // a node that loads the document, or lost messages, asks everyone: what it relayed before
        // and never confirmed is stored here (again, perhaps: that changes nothing)
        if (message.to === '') doc.storeUnconfirmed(message.from)
        if (message.to !== '' && message.to !== this.nodeId) return
        // a document still loading asks its peers itself once loaded
        if (doc.status === 'loading') return
        return this.answer(doc, message)
      case 'sync-reply':
        if (message.to === this.nodeId) doc.applyRemote(message.update, message.owners)
        return
      case 'presence':
        return this.presenceNode?.peerPresence(message.from, message.doc, message.userId, message.entry, message.reason)
      case 'presence-snapshot':
        return this.presenceNode?.peerSnapshot(message.from, message.doc, message.entries)
      case 'recheck':
        return this.liveNode?.peerRecheck(message.doc)
      case 'revoke':
      case 'resumed':
        return
      case 'deleted':
        return this.docs.deleted?.(message.doc)
    }
  }

  /** A peer's state vector: send it what it lacks (once stored), our awareness, and ask back. */
  private answer (doc: Document, message: Extract<BusMessage, { type: 'sync' }>): void {
    Y.decodeStateVector(message.stateVector) // throws on bad bytes before anything is sent
    if (message.to === '') this.askPeers(doc, message.from)
    this.publish({ type: 'awareness-snapshot', from: this.nodeId, doc: doc.name, update: doc.awareness.snapshotLocal() })
    this.publish({ type: 'presence-snapshot', from: this.nodeId, doc: doc.name, entries: this.presenceNode?.ownPresence(doc.name) ?? [] })
    // what we send must be stored first, as for a client's sync step 1
    doc.whenStored().then(() => {
      if (doc.status !== 'ready' && doc.status !== 'unloading') return
      const update = encodeIntegratedState(doc.ydoc, message.stateVector)
      // the owners of the ids the peer lacks content of: it may not have heard of their claims
      const theirs = Y.decodeStateVector(message.stateVector)
      const lacking: number[] = []
      for (const [client, clock] of Y.decodeStateVector(Y.encodeStateVector(doc.ydoc))) if ((theirs.get(client) ?? 0) < clock) lacking.push(client)
      const owners = doc.owners.storedOwners(lacking)
      this.publish(owners.length === 0
        ? { type: 'sync-reply', from: this.nodeId, doc: doc.name, to: message.from, update }
        : { type: 'sync-reply', from: this.nodeId, doc: doc.name, to: message.from, update, owners })
    }, () => {})
  }

  /** A peer died: the states its sessions owned go, on every document, told to local members. */
  private nodeDown (nodeId: string): void {
    const owner = this.remotes.get(nodeId)
    this.gone.add(nodeId)
    this.presenceNode?.peerDown(nodeId)
    // what it relayed and may not have stored is stored here
    for (const doc of this.docs.all()) doc.storeUnconfirmed(nodeId)
    if (owner === undefined) return
    this.remotes.delete(nodeId)
    for (const doc of this.docs.all()) {
      const relay = doc.awareness.removeOwnedBy(owner)
      if (relay !== null) doc.broadcast(writeAwareness(relay))
    }
  }
}

/**
 * Connects this instance to its peers: the Bus given in the options, or Redis at `redis`.
 * Rejects with one clear message when Redis cannot be reached.
 */
export async function openCluster (options: ResolvedOptions, docs: LoadedDocuments, logger: Logger, observer: ClusterObserver = {}): Promise<Cluster> {
  const bus = options.bus ?? new RedisBus({
    url: options.redis as string,
    prefix: options.redisPrefix,
    livenessMs: options.heartbeatTimeoutMs,
    logger
  })
  const cluster = new Cluster(bus, docs, logger.child({ node: bus.nodeId }), observer)
  try {
    await cluster.start()
  } catch (err) {
    await cluster.close().catch(() => {})
    throw redisUnreachable(options.redis ?? '', err)
  }
  return cluster
}
