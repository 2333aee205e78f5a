import { Registry, Counter, Gauge, Histogram, collectDefaultMetrics } from 'prom-client'
import { FRAME_KINDS, frameKind, type FrameKind } from '../../shared/frame-kind.js'

/** What the gauges read when scraped. */
export interface MetricsSource {
  connections (): number
  sessions (): number
  documents (): number
  usersPresent (): number
  locksHeld (): number
}

/** Message kinds used as the `type` label (shared/frame-kind.ts). */
export const MESSAGE_KINDS = FRAME_KINDS
/** One of MESSAGE_KINDS. */
export type MessageKind = FrameKind

/** Why an update was refused: the `reason` label of tandem_updates_refused_total. */
export type RefusalReason = 'read_only' | 'invalid' | 'incomplete' | 'locked' | 'client_id'

/** Lock events: the `event` label of tandem_lock_events_total. */
export type LockEvent = 'granted' | 'refused' | 'waited' | 'timed_out' | 'released' | 'expired' | 'force_released'

/**
 * Tandem's Prometheus metrics, on a registry of their own (so several servers can live in one
 * process). Labels have bounded values only: never a document or user name.
 */
export class Metrics {
  readonly registry = new Registry()
  /** The per-message counts the hot paths touch; read into the counters below when scraped. */
  readonly meter = new Meter()
  readonly messagesReceived: Counter<'type'>
  readonly bytesReceived: Counter<'type'>
  readonly messagesSent: Counter<'type'>
  readonly bytesSent: Counter<'type'>
  readonly updatesApplied: Counter
  readonly updatesRefused: Counter<'reason'>
  readonly updatesHeld: Counter
  readonly storeWriteSeconds: Histogram
  readonly storeBatchSize: Histogram
  readonly storeFailures: Counter
  readonly storeRetries: Counter
  readonly lockEvents: Counter<'event'>
  readonly sessionsStarted: Counter
  readonly sessionsEnded: Counter<'reason'>
  readonly sessionSeconds: Histogram<'reason'>
  readonly heartbeatTerminations: Counter
  readonly busMessages: Counter<'direction'>
  readonly busLagSeconds: Histogram
  readonly busReconnects: Counter

  constructor (source: MetricsSource) {
    const registers = [this.registry]
    collectDefaultMetrics({ register: this.registry })
    const gauge = (name: string, help: string, read: () => number): void => {
      new Gauge({ name, help, registers, collect () { this.set(read()) } })
    }
    gauge('tandem_connections_open', 'WebSocket connections open now', () => source.connections())
    gauge('tandem_sessions_open', 'Sessions open now, including those waiting to resume', () => source.sessions())
    gauge('tandem_documents_loaded', 'Documents loaded in memory now', () => source.documents())
    gauge('tandem_users_present', 'Users present across documents now (one per user per document)', () => source.usersPresent())
    gauge('tandem_locks_held', 'Edit locks held now', () => source.locksHeld())
    const meter = this.meter
    const byKind = (name: string, help: string, counts: Float64Array): Counter<'type'> => new Counter({
      name,
      help,
      labelNames: ['type'],
      registers,
      collect () {
        this.reset()
        MESSAGE_KINDS.forEach((type, i) => this.inc({ type }, counts[i] as number))
      }
    })
    this.messagesReceived = byKind('tandem_messages_received_total', 'Messages received from clients, by message type', meter.receivedMessages)
    this.bytesReceived = byKind('tandem_received_bytes_total', 'Bytes received from clients, by message type', meter.receivedBytes)
    this.messagesSent = byKind('tandem_messages_sent_total', 'Messages sent to clients, by message type (a broadcast counts once per recipient)', meter.sentMessages)
    this.bytesSent = byKind('tandem_sent_bytes_total', 'Bytes sent to clients, by message type', meter.sentBytes)
    this.updatesApplied = new Counter({ name: 'tandem_updates_applied_total', help: 'Client updates applied to documents and stored', registers })
    this.updatesRefused = new Counter({
      name: 'tandem_updates_refused_total',
      help: 'Client updates refused: read_only (a read-access session), invalid (not a valid Yjs update), incomplete (sessions closed for updates depending on content the server lacks), locked (part undone: it touched a type another session locked) or client_id (under a client id another owns)',
      labelNames: ['reason'],
      registers,
      collect () {
        this.reset()
        this.inc({ reason: 'read_only' }, meter.refusedReadOnly)
        this.inc({ reason: 'invalid' }, meter.refusedInvalid)
        this.inc({ reason: 'locked' }, meter.refusedLocked)
        this.inc({ reason: 'client_id' }, meter.refusedClientId)
        this.inc({ reason: 'incomplete' }, meter.refusedIncomplete)
      }
    })
    this.updatesHeld = new Counter({
      name: 'tandem_updates_held_total',
      help: 'Client updates held because they depend on content the document lacks (applied once it comes)',
      registers,
      collect () {
        this.reset()
        this.inc(meter.updatesHeld)
      }
    })
    this.storeWriteSeconds = new Histogram({
      name: 'tandem_store_write_seconds',
      help: 'Time to store one group-committed batch',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers
    })
    this.storeBatchSize = new Histogram({
      name: 'tandem_store_batch_updates',
      help: 'Updates per group-committed batch',
      buckets: [1, 2, 5, 10, 25, 50, 100, 250, 1000],
      registers
    })
    this.storeFailures = new Counter({ name: 'tandem_store_failures_total', help: 'Store writes that failed (each is retried)', registers })
    this.storeRetries = new Counter({ name: 'tandem_store_retries_total', help: 'Store write retries', registers })
    this.lockEvents = new Counter({
      name: 'tandem_lock_events_total',
      help: 'Edit lock events: granted, refused, waited, timed_out, released, expired, force_released',
      labelNames: ['event'],
      registers
    })
    this.sessionsStarted = new Counter({ name: 'tandem_sessions_started_total', help: 'Sessions started', registers })
    this.sessionsEnded = new Counter({ name: 'tandem_sessions_ended_total', help: 'Sessions ended, by reason', labelNames: ['reason'], registers })
    this.sessionSeconds = new Histogram({
      name: 'tandem_session_duration_seconds',
      help: 'Session duration, by end reason',
      labelNames: ['reason'],
      buckets: [1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600],
      registers
    })
    this.heartbeatTerminations = new Counter({
      name: 'tandem_heartbeat_terminations_total',
      help: 'Connections terminated for missing heartbeats',
      registers,
      collect () {
        this.reset()
        this.inc(meter.heartbeatTerminations)
      }
    })
    this.busMessages = new Counter({ name: 'tandem_bus_messages_total', help: 'Messages on the scale-out bus', labelNames: ['direction'], registers })
    this.busLagSeconds = new Histogram({
      name: 'tandem_bus_lag_seconds',
      help: 'Time from publish on one instance to receipt on another',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1],
      registers
    })
    this.busReconnects = new Counter({ name: 'tandem_bus_reconnects_total', help: 'Reconnects of the scale-out bus to Redis', registers })
  }

  /** The Prometheus text exposition. */
  text (): Promise<string> {
    return this.registry.metrics()
  }
}

/**
 * The per-message counts, kept as plain numbers: counting a message is two array additions, no
 * label hashing and no allocation (prom-client's `inc` does both). The Prometheus counters read
 * them when scraped. A document's broadcast counts once, as `copies` messages of the frame's size.
 */
export class Meter {
  readonly receivedMessages = new Float64Array(MESSAGE_KINDS.length)
  readonly receivedBytes = new Float64Array(MESSAGE_KINDS.length)
  readonly sentMessages = new Float64Array(MESSAGE_KINDS.length)
  readonly sentBytes = new Float64Array(MESSAGE_KINDS.length)
  refusedReadOnly = 0
  refusedInvalid = 0
  refusedLocked = 0
  refusedIncomplete = 0
  updatesHeld = 0
  refusedClientId = 0
  heartbeatTerminations = 0

  /** A frame arrived from a client. */
  received (frame: Uint8Array): void {
    const kind = frameKind(frame)
    this.receivedMessages[kind]! += 1
    this.receivedBytes[kind]! += frame.byteLength
  }

  /** A frame went to `copies` clients. */
  sent (frame: Uint8Array, copies = 1): void {
    const kind = frameKind(frame)
    this.sentMessages[kind]! += copies
    this.sentBytes[kind]! += copies * frame.byteLength
  }

  /** An update from a client did not reach the document. */
  refused (reason: RefusalReason): void {
    if (reason === 'read_only') this.refusedReadOnly++
    else if (reason === 'locked') this.refusedLocked++
    else if (reason === 'incomplete') this.refusedIncomplete++
    else if (reason === 'client_id') this.refusedClientId++
    else this.refusedInvalid++
  }

  /** An update was held: it depends on content the document lacks. */
  held (): void {
    this.updatesHeld++
  }

  /** A connection was terminated for missing heartbeats. */
  heartbeatTerminated (): void {
    this.heartbeatTerminations++
  }
}
