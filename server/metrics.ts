import { Registry, Counter, Gauge, Histogram, collectDefaultMetrics } from 'prom-client'

/** What the gauges read when scraped. */
export interface MetricsSource {
  connections (): number
  sessions (): number
  documents (): number
  usersPresent (): number
  locksHeld (): number
}

/** Message kinds used as the `type` label: a fixed, bounded set. */
export type MessageKind = 'sync_step1' | 'sync_step2' | 'sync_update' | 'awareness' | 'query_awareness' | 'auth' | 'tandem' | 'keepalive'

/**
 * Tandem's Prometheus metrics, on a registry of their own (so several servers can live in one
 * process). Labels have bounded values only: never a document or user name.
 */
export class Metrics {
  readonly registry = new Registry()
  readonly messagesReceived: Counter<'type'>
  readonly bytesReceived: Counter<'type'>
  readonly messagesSent: Counter<'type'>
  readonly bytesSent: Counter<'type'>
  readonly updatesApplied: Counter
  readonly updatesRefused: Counter<'reason'>
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
    this.messagesReceived = new Counter({ name: 'tandem_messages_received_total', help: 'Messages received from clients', labelNames: ['type'], registers })
    this.bytesReceived = new Counter({ name: 'tandem_received_bytes_total', help: 'Bytes received from clients', labelNames: ['type'], registers })
    this.messagesSent = new Counter({ name: 'tandem_messages_sent_total', help: 'Messages sent to clients', labelNames: ['type'], registers })
    this.bytesSent = new Counter({ name: 'tandem_sent_bytes_total', help: 'Bytes sent to clients', labelNames: ['type'], registers })
    this.updatesApplied = new Counter({ name: 'tandem_updates_applied_total', help: 'Document updates applied', registers })
    this.updatesRefused = new Counter({ name: 'tandem_updates_refused_total', help: 'Document updates refused', labelNames: ['reason'], registers })
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
    this.heartbeatTerminations = new Counter({ name: 'tandem_heartbeat_terminations_total', help: 'Connections terminated for missing heartbeats', registers })
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
