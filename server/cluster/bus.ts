import type { LeaveReason, PresenceEntry } from '../../shared/tandem.js'
import type { ClientOwner } from '../document/client-owners.js'
import type { Revocation } from '../store/store.js'

/** The topic of messages about no one document (revocations): no document name is empty. */
export const CLUSTER_TOPIC = ''

/**
 * What one instance tells the others about a document. Every message names its sender so that a
 * node drops its own echo, and the document it is about (its topic).
 * - `update`: an update this node stored; peers apply it without storing it again. `owners`: the
 *   client ids it claimed, stored with it (peers refuse other users' updates under them).
 * - `awareness`: awareness entries with the clocks the owning node assigned (removals included).
 * - `sync`: "here is my state vector, send me what I lack". Sent to everyone (`to` empty) when a
 *   node loads a document or its bus reconnects; a peer answers with `sync-reply` and a `sync` of
 *   its own addressed to the asker, so both sides catch up (y-protocols step 1 and 2, both ways).
 * - `sync-reply`: what the addressee lacked, all of it already stored by the sender, with the
 *   stored owners of the client ids the addressee lacked content of.
 * - `awareness-snapshot`: every awareness state the sender owns for the document; the receiver
 *   drops any other state it attributed to the sender (it missed the removal).
 * - `presence`: the sender's own entry of one user (made of its connections only), or null when
 *   the user's last connection there ended, with the reason; receivers merge it with theirs.
 * - `presence-snapshot`: every entry the sender has of its own for the document (sent with the
 *   answer to a `sync`); the receiver replaces what it had from the sender.
 * - `revoke`: a revocation made on the sender (topic CLUSTER_TOPIC, every node hears it): end
 *   the sessions it covers, refuse the tokens it covers, keep it.
 * - `recheck`: authenticate every session of the document again and apply the answers.
 * - `deleted`: the sender deleted the document (DELETE /api/documents/:name); receivers close
 *   their connections to it with 4404 and unload it.
 * - `resumed`: a Tandem session that was on node `to` resumed on the sender (topic
 *   CLUSTER_TOPIC: the old node may have unloaded the document); `to` lets it go without a
 *   trace: drops its half-open socket, ends its grace, stops renewing its locks, no `left`.
 * - `relay`: with an update, one the sender applied and relayed to its own clients, sent at once,
 *   before its store commit, numbered `seq` (growing across the sender's documents); peers apply
 *   and relay it, never store it, and acknowledge nothing after it until it is stored. Without
 *   (update null): the sender stored every update it relayed about the document up to `seq`. A
 *   peer that loses the sender (down, or messages lost: the bus reconnected, or the sender asks
 *   everyone with `sync`) stores what it relayed unconfirmed itself: a Yjs update applies once.
 *   (`update` is what nodes before `relay` publish, once stored.)
 */
export type BusMessage =
  | { type: 'update', from: string, doc: string, update: Uint8Array, owners?: readonly ClientOwner[] }
  | { type: 'awareness', from: string, doc: string, update: Uint8Array }
  | { type: 'sync', from: string, doc: string, to: string, stateVector: Uint8Array }
  | { type: 'sync-reply', from: string, doc: string, to: string, update: Uint8Array, owners?: readonly ClientOwner[] }
  | { type: 'awareness-snapshot', from: string, doc: string, update: Uint8Array }
  | { type: 'presence', from: string, doc: string, userId: string, entry: PresenceEntry | null, reason: LeaveReason | '' }
  | { type: 'presence-snapshot', from: string, doc: string, entries: PresenceEntry[] }
  | { type: 'revoke', from: string, doc: string, revocation: Revocation }
  | { type: 'recheck', from: string, doc: string }
  | { type: 'deleted', from: string, doc: string }
  | { type: 'resumed', from: string, doc: string, to: string, sessionId: string }
  | { type: 'relay', from: string, doc: string, seq: number, update: Uint8Array | null, owners?: readonly ClientOwner[] }

/** What a bus reports to its node. */
export interface BusHandlers {
  /** A message from another node, about a document this node subscribed to, sent at `sentAt` (ms). */
  message (message: BusMessage, sentAt: number): void
  /**
   * The bus is (again) connected and subscribed. Messages published while it was down are lost:
   * the node resynchronises every loaded document.
   */
  ready (): void
  /** A peer this bus heard from stopped without saying goodbye (its liveness record expired). */
  nodeDown (nodeId: string): void
}

/** Lifecycle of a bus, changed only by its setStatus. */
export type BusStatus = 'idle' | 'connecting' | 'ready' | 'down' | 'closed'

/**
 * The scale-out seam: how instances hear each other. Two implementations: in-process (several
 * servers in one process, tests) and Redis (pub/sub plus a liveness key per node). A message is
 * delivered at most once, in the order its sender published it; while the bus is down messages
 * are dropped, and `ready` tells the node to resynchronise.
 */
export interface Bus {
  /** This node's id, unique per process start. */
  readonly nodeId: string
  /** True while connected: what `/readyz` reports. */
  readonly ready: boolean
  /** Connects and starts reporting to `handlers`. Rejects when it cannot connect at start. */
  start (handlers: BusHandlers): Promise<void>
  /** Hears messages about `doc` from now on; resolves at once while the bus is down. */
  subscribe (doc: string): Promise<void>
  /** Stops hearing about `doc`. */
  unsubscribe (doc: string): void
  /** Sends a message to every other node subscribed to `message.doc`; dropped while down. */
  publish (message: BusMessage): void
  /** Leaves: stops timers, removes this node's liveness record. Safe to call twice. */
  close (): Promise<void>
}
