/**
 * Small, transport-free building blocks for the server's limits. Each takes its clock or its
 * numbers from the caller, so it can be tested without a server.
 */

import { ticks } from '../session/clock.js'

/**
 * A token bucket: holds up to `capacity` tokens and gains `ratePerSecond` a second. Taking one
 * per message absorbs a burst of `capacity` messages; a sender that keeps going faster than the
 * rate drains it and is refused. Times in ms, by default ticks (clock.ts: every connection has a
 * bucket, and a Date.now() time would be a heap number in each).
 */
export class TokenBucket {
  private tokens: number
  private updatedAt: number

  constructor (
    readonly capacity: number,
    readonly ratePerSecond: number,
    now: number = ticks()
  ) {
    this.tokens = capacity
    this.updatedAt = now
  }

  /** Takes one token; false when the bucket is empty (the message should be refused). */
  take (now: number = ticks()): boolean {
    const elapsedMs = Math.max(0, now - this.updatedAt)
    this.updatedAt = now
    this.tokens = Math.min(this.capacity, this.tokens + elapsedMs * this.ratePerSecond / 1000)
    if (this.tokens < 1) return false
    this.tokens -= 1
    return true
  }

  /** Tokens left now (fractional). */
  get available (): number {
    return this.tokens
  }
}

/**
 * Counts open things per key (connections per IP address). `acquire` returns a release function
 * that is safe to call twice, or null when the key is at `max`. `max` 0 means no limit.
 */
export class ConnectionCounter {
  private readonly counts = new Map<string, number>()

  constructor (private readonly max: number) {}

  /** Takes a slot for `key`; null when it has `max` already. */
  acquire (key: string): (() => void) | null {
    if (!this.take(key)) return null
    let released = false
    return () => {
      if (released) return
      released = true
      this.release(key)
    }
  }

  /**
   * Takes a slot for `key` without making a release function (`release` gives it back, once per
   * take: the caller keeps the key); false when it has `max` already.
   */
  take (key: string): boolean {
    const count = this.counts.get(key) ?? 0
    if (this.max > 0 && count >= this.max) return false
    this.counts.set(key, count + 1)
    return true
  }

  /** Gives back a slot `take` took for `key`. */
  release (key: string): void {
    const left = (this.counts.get(key) ?? 1) - 1
    // keys are dropped at zero, so the map holds only addresses with open connections
    if (left <= 0) this.counts.delete(key)
    else this.counts.set(key, left)
  }

  /** Open slots held by `key`. */
  count (key: string): number {
    return this.counts.get(key) ?? 0
  }

  /** Number of keys holding at least one slot. */
  get size (): number {
    return this.counts.size
  }
}

/**
 * Settles like `work`, or rejects with `onTimeout()` after `ms`; the timer is always cleared, so
 * a settled race leaves nothing behind. `ms` 0 means no limit. One promise and one timer (no
 * Promise.race, no async frame): every connection's authentication goes through here.
 */
export function withTimeout<T> (work: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  if (ms <= 0) return work
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(onTimeout()), ms)
    work.then(value => {
      clearTimeout(timer)
      resolve(value)
    }, (err: unknown) => {
      clearTimeout(timer)
      reject(err)
    })
  })
}
