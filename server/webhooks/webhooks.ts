import { createHmac } from 'node:crypto'
import type { Logger } from 'pino'
import type { OutboxEntry, OutboxEvent, Store, VersionInfo } from '../store/store.js'
import { randomId } from '../session/ids.js'
import type { EndReason, LockReleaseReason } from '../../shared/reasons.js'

/** Options of {@link Webhooks}. */
export interface WebhooksOptions {
  /** Receivers: every event is POSTed to each. */
  webhookUrls: readonly string[]
  /** HMAC-SHA256 key of the `Tandem-Signature` header. */
  webhookSecret: string
  /** `document.updated` goes out at most once per this long per document. */
  webhookDebounceMs: number
  /** First retry delay; it doubles up to 5 minutes. */
  webhookBackoffMs: number
  /** A receiver that has not answered after this long has failed this attempt. */
  webhookTimeoutMs: number
}

/** Event types and their `data`. */
export interface WebhookEvents {
  'document.updated': { authors: string[] }
  'document.deleted': Record<string, never>
  'version.created': { version: { id: string, label: string | null, createdAt: number, authors: string[], automatic: boolean } }
  'session.ended': { userId: string, sessionId: string, reason: EndReason, durationMs: number }
  'lock.acquired': { resource: string, userId: string, token: number, reason: 'granted' }
  'lock.released': { resource: string, userId: string, token: number, reason: LockReleaseReason }
}

/** What deliveries report (metrics); must not throw. */
export interface WebhooksHooks {
  delivered? (): void
  retried? (): void
  failed? (): void
}

/** The longest retry delay. */
const MAX_BACKOFF_MS = 5 * 60_000
/** An event not delivered this long after it happened is given up. */
const MAX_AGE_MS = 24 * 60 * 60_000
/** Events emitted but not yet in the outbox, at most: past this (the store is down), new ones are dropped. */
const MAX_BUFFERED = 10_000
/** Events claimed and sent at once. */
const CLAIM_BATCH = 32
/** How often the outbox is looked at when nothing wakes it (events of other instances, retries due). */
const MAX_POLL_MS = 1_000

/** The `Tandem-Signature` header of `body` sent at `seconds` (unix time). */
export function signature (secret: string, body: string, seconds: number): string {
  const mac = createHmac('sha256', secret).update(`${seconds}.${body}`).digest('hex')
  return `t=${seconds},v1=${mac}`
}

/**
 * Signed webhooks, delivered at least once and in order per document from an outbox in the
 * store. `emit` only queues in memory (the editing path never waits on a receiver, nor on the
 * store); the queue goes to the outbox in batches, and a delivery loop claims, per receiver and
 * document, the oldest event due (with a lease, so one instance of a cluster sends it), POSTs it,
 * and deletes it on a 2xx or reschedules it with backoff (1 s doubling to 5 min, for up to 24 h).
 * An event whose instance died while sending it is sent again when its lease ends, with the same
 * `id`: receivers deduplicate by `id`.
 */
export class Webhooks {
  private buffer: OutboxEntry[] = []
  private flushing = false
  private flushTimer: NodeJS.Timeout | undefined
  private pollTimer: NodeJS.Timeout | undefined
  private pumping = false
  private wakeAgain = false
  private closed = false
  private readonly owner = randomId()
  /** document.updated waiting for the end of its document's debounce window: its authors. */
  private readonly updated = new Map<string, Set<string>>()
  private readonly debounceTimers = new Map<string, NodeJS.Timeout>()
  private readonly inflight = new Set<Promise<void>>()

  constructor (
    private readonly store: Store,
    private readonly options: WebhooksOptions,
    private readonly logger: Logger,
    private readonly hooks: WebhooksHooks = {}
  ) {}

  /** Starts delivering what the outbox holds (a restart's pending events too). */
  start (): void {
    this.wake()
  }

  /** Queues an event for every receiver. Never throws, never waits. */
  emit<Type extends keyof WebhookEvents> (type: Type, document: string, data: WebhookEvents[Type]): void {
    if (this.closed) return
    if (this.buffer.length >= MAX_BUFFERED) {
      this.hooks.failed?.()
      this.logger.error({ type, document }, 'webhook event dropped: the outbox cannot be written and its buffer is full')
      return
    }
    const createdAt = Date.now()
    const body = JSON.stringify({ id: randomId(), type, createdAt, document, data })
    for (const target of this.options.webhookUrls) this.buffer.push({ target, document, body, createdAt })
    this.scheduleFlush(0)
  }

  /** Updates of `document` by `authors` were stored: `document.updated`, at most once per debounce window. */
  documentUpdated (document: string, authors: Iterable<string>): void {
    if (this.closed) return
    let pending = this.updated.get(document)
    if (pending === undefined) this.updated.set(document, pending = new Set())
    for (const author of authors) pending.add(author)
    if (this.debounceTimers.has(document)) return
    const timer = setTimeout(() => this.sendUpdated(document), this.options.webhookDebounceMs)
    timer.unref()
    this.debounceTimers.set(document, timer)
  }

  /** The document was deleted (the document API calls this). */
  documentDeleted (document: string): void {
    this.emit('document.deleted', document, {})
  }

  /** A version was saved. */
  versionCreated (document: string, version: VersionInfo): void {
    const { id, label, createdAt, authors, automatic } = version
    this.emit('version.created', document, { version: { id, label, createdAt, authors, automatic } })
  }

  /**
   * Stops: pending document.updated events and the in-memory queue go to the outbox, deliveries
   * under way are awaited, for up to a second (a delivery cut short is sent again when its lease
   * ends). Safe to call twice.
   */
  async close (): Promise<void> {
    if (this.closed) return
    for (const [document, timer] of this.debounceTimers) {
      clearTimeout(timer)
      this.sendUpdated(document)
    }
    this.closed = true
    clearTimeout(this.pollTimer)
    clearTimeout(this.flushTimer)
    const deadline = new Promise(resolve => setTimeout(resolve, 1_000).unref())
    await Promise.race([Promise.all([this.flush(), ...this.inflight]), deadline])
  }

  private sendUpdated (document: string): void {
    this.debounceTimers.delete(document)
    const authors = this.updated.get(document)
    this.updated.delete(document)
    this.emit('document.updated', document, { authors: [...authors ?? []].sort() })
  }

  private scheduleFlush (delayMs: number): void {
    if (this.flushTimer !== undefined || this.flushing) return
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined
      void this.flush()
    }, delayMs)
  }

  /** Moves the in-memory queue to the outbox; on failure it stays, and is tried again in a second. */
  private async flush (): Promise<void> {
    if (this.flushing || this.buffer.length === 0) return
    this.flushing = true
    const batch = this.buffer
    this.buffer = []
    try {
      await this.store.enqueueEvents(batch)
      this.wake()
    } catch (err) {
      this.buffer = batch.concat(this.buffer)
      this.logger.error({ err, events: batch.length }, 'webhook events not written to the outbox; retrying')
    } finally {
      this.flushing = false
      if (this.buffer.length > 0 && !this.closed) this.scheduleFlush(this.buffer.length > batch.length ? 0 : 1_000)
    }
  }

  /** Runs the delivery loop now (or again once the current round ends). */
  private wake (): void {
    if (this.closed) return
    if (this.pumping) {
      this.wakeAgain = true
      return
    }
    clearTimeout(this.pollTimer)
    this.pollTimer = undefined
    void this.pump()
  }

  private async pump (): Promise<void> {
    this.pumping = true
    try {
      for (;;) {
        this.wakeAgain = false
        const leaseMs = this.options.webhookTimeoutMs + 5_000
        const events = await this.store.claimEvents(this.owner, leaseMs, CLAIM_BATCH)
        if (events.length === 0 || this.closed) break
        const round = Promise.all(events.map(event => this.deliver(event)))
        const tracked = round.then(() => {})
        this.inflight.add(tracked)
        await tracked.finally(() => this.inflight.delete(tracked))
      }
    } catch (err) {
      this.logger.error({ err }, 'webhook outbox unavailable; retrying')
    } finally {
      this.pumping = false
    }
    if (this.closed) return
    if (this.wakeAgain) {
      this.wake()
      return
    }
    this.pollTimer = setTimeout(() => this.wake(), Math.min(MAX_POLL_MS, this.options.webhookBackoffMs))
    this.pollTimer.unref()
  }

  /** One attempt at one event; the outcome is written to the outbox. */
  private async deliver (event: OutboxEvent): Promise<void> {
    let outcome: string
    try {
      const response = await fetch(event.target, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'tandem-webhooks',
          'tandem-signature': signature(this.options.webhookSecret, event.body, Math.floor(Date.now() / 1000))
        },
        body: event.body,
        signal: AbortSignal.timeout(this.options.webhookTimeoutMs),
        redirect: 'manual'
      })
      await response.body?.cancel().catch(() => {})
      if (response.status >= 200 && response.status < 300) {
        await this.store.settleEvent(event.seq, null)
        this.hooks.delivered?.()
        return
      }
      outcome = `HTTP ${response.status}`
    } catch (err) {
      outcome = (err as Error).name === 'TimeoutError' ? `no answer within ${this.options.webhookTimeoutMs} ms` : (err as Error).message
    }
    const now = Date.now()
    const delay = Math.min(MAX_BACKOFF_MS, this.options.webhookBackoffMs * 2 ** Math.min(event.attempts, 30))
    if (now + delay - event.createdAt > MAX_AGE_MS) {
      await this.store.settleEvent(event.seq, null)
      this.hooks.failed?.()
      this.logger.error({ target: redact(event.target), document: event.document, attempts: event.attempts + 1, outcome }, 'webhook event given up after 24 h')
      return
    }
    await this.store.settleEvent(event.seq, now + delay)
    this.hooks.retried?.()
    this.logger.warn({ target: redact(event.target), attempts: event.attempts + 1, retryInMs: delay, outcome }, 'webhook delivery failed; retrying')
  }
}

/** A receiver's URL for logs: without credentials or query (which may hold a token). */
function redact (url: string): string {
  try {
    const parsed = new URL(url)
    return `${parsed.protocol}//${parsed.host}${parsed.pathname}`
  } catch {
    return '(invalid url)'
  }
}
