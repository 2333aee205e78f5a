import type { Logger } from 'pino'
import type { LockInfo } from '../../shared/tandem.js'
import type { LockReleaseReason } from '../../shared/reasons.js'

/** An announcement, as published by the scripts. */
export interface Announcement {
  doc: string
  event: 'acquired' | 'released'
  lock: LockInfo
  reason: LockReleaseReason | ''
  node: string
  waiter: string
  seq: number
}

/** How long an announcement of ours may take to come back through the channel. */
const HEARD_WITHIN_MS = 1_000
/** Remembered sequence numbers, per resource, before the memory is cleared. */
const MAX_SEQS = 50_000

/**
 * The lock scripts announce every change on one channel with a sequence number per resource.
 * An announcement arrives on the channel and, for the instance whose script made it, in the
 * script's reply too; this hands each change on once, in order per resource (the sequence
 * number drops echoes and stale ones). A change of ours is delivered when the channel brings it,
 * so that listeners see every change of a resource in order whoever made it; if the channel has
 * not brought it after a moment (the subscription is reconnecting), it is delivered from the reply.
 */
export class Announcements {
  /** Last sequence number delivered, per document and resource. */
  private readonly seqs = new Map<string, number>()
  /** Our own announcements waiting to come through the channel. */
  private readonly hearing = new Map<string, Set<{ seq: number, done: () => void }>>()

  constructor (private readonly onChange: (change: Announcement) => void, private readonly logger: Logger) {}

  /** Resolves once an announcement a script of ours made was delivered (see the class comment). */
  heard (payload: string): Promise<void> {
    const { doc, lock, seq } = JSON.parse(payload) as Announcement
    const key = JSON.stringify([doc, lock.resource])
    if ((this.seqs.get(key) ?? 0) >= seq) return Promise.resolve()
    return new Promise(resolve => {
      const waiter = { seq, done: (): void => {
        clearTimeout(timer)
        this.hearing.get(key)?.delete(waiter)
        if (this.hearing.get(key)?.size === 0) this.hearing.delete(key)
        resolve()
      } }
      const timer = setTimeout(() => {
        this.deliver(payload)
        waiter.done()
      }, HEARD_WITHIN_MS)
      let waiters = this.hearing.get(key)
      if (waiters === undefined) this.hearing.set(key, waiters = new Set())
      waiters.add(waiter)
    })
  }

  /** An announcement from the channel or a script's reply: handed on once, in order. */
  deliver (payload: string): void {
    let change: Announcement
    try {
      change = JSON.parse(payload) as Announcement
    } catch (err) {
      this.logger.warn({ err }, 'ignoring a lock announcement that cannot be parsed')
      return
    }
    const key = JSON.stringify([change.doc, change.lock.resource])
    const last = this.seqs.get(key) ?? 0
    if (change.seq <= last) return
    if (this.seqs.size >= MAX_SEQS) this.seqs.clear()
    this.seqs.set(key, change.seq)
    this.onChange(change)
    for (const waiter of [...this.hearing.get(key) ?? []]) if (waiter.seq <= change.seq) waiter.done()
  }
}
