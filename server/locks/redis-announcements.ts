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
  /** When the document's counters started in Redis (microseconds, as a string): a later one after Redis lost its data. */
  epoch: string
}

/** Where the announcements of a resource stand: its epoch (as a number) and sequence number. */
interface Position {
  epoch: number
  seq: number
}

/** True when `change` comes after `last`: a later epoch, or the same one and a higher number. */
function after (change: Position, last: Position | undefined): boolean {
  if (last === undefined) return true
  return change.epoch > last.epoch || (change.epoch === last.epoch && change.seq > last.seq)
}

function positionOf (change: Announcement): Position {
  return { epoch: Number(change.epoch ?? 0), seq: change.seq }
}

/** How long an announcement of ours may take to come back through the channel. */
const HEARD_WITHIN_MS = 1_000
/** Remembered sequence numbers, per resource, before the memory is cleared. */
const MAX_SEQS = 50_000

/**
 * The lock scripts announce every change on one channel with a sequence number per resource,
 * counted within an epoch (a new one when Redis lost its data, see redis-scripts.ts).
 * An announcement arrives on the channel and, for the instance whose script made it, in the
 * script's reply too; this hands each change on once, in order per resource (the sequence
 * number drops echoes and stale ones). A change of ours is delivered when the channel brings it,
 * so that listeners see every change of a resource in order whoever made it; if the channel has
 * not brought it after a moment (the subscription is reconnecting), it is delivered from the reply.
 */
export class Announcements {
  /** Last position delivered, per document and resource. */
  private readonly seqs = new Map<string, Position>()
  /** Our own announcements waiting to come through the channel. */
  private readonly hearing = new Map<string, Set<{ position: Position, done: () => void }>>()

  constructor (private readonly onChange: (change: Announcement) => void, private readonly logger: Logger) {}

  /** Resolves once an announcement a script of ours made was delivered (see the class comment). */
  heard (payload: string): Promise<void> {
    const change = JSON.parse(payload) as Announcement
    const key = JSON.stringify([change.doc, change.lock.resource])
    const position = positionOf(change)
    if (!after(position, this.seqs.get(key))) return Promise.resolve()
    return new Promise(resolve => {
      const waiter = { position, done: (): void => {
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
    const position = positionOf(change)
    if (!after(position, this.seqs.get(key))) return
    if (this.seqs.size >= MAX_SEQS) this.seqs.clear()
    this.seqs.set(key, position)
    this.onChange(change)
    // delivered, or passed by a later change (of this epoch or a later one)
    for (const waiter of [...this.hearing.get(key) ?? []]) if (!after(waiter.position, position)) waiter.done()
  }
}
