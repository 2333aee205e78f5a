/**
 * Small, transport-free building blocks for the server's limits. Each takes its clock or its
 * numbers from the caller, so it can be tested without a server.
 */

import { asSmall, ticks } from '../session/clock.js'

/** Where a token bucket's state is kept (TokenBuckets): two fields of its owner, a connection. */
export interface BucketState {
  /** Tokens held, in thousandths of a token. */
  tokens: number
  /** When they were last counted, in ms (by default ticks). */
  tokensAt: number
}

/**
 * Token buckets: each holds up to `capacity` tokens and gains `ratePerSecond` a second. Taking one
 * per message absorbs a burst of `capacity` messages; a sender that keeps going faster than the
 * rate drains it and is refused. This object is the rule, shared; each bucket is two fields of
 * its owner, whole numbers (thousandths of a token; times in ms, by default ticks of clock.ts):
 * every connection has a bucket, and an object each cost 56 bytes, its fractional tokens a heap
 * number more.
 */
export class TokenBuckets {
  constructor (
    readonly capacity: number,
    readonly ratePerSecond: number
  ) {}

  /** Makes `bucket` full, as a new bucket is. */
  fill (bucket: BucketState, now: number = ticks()): void {
    bucket.tokens = asSmall(this.capacity * 1000)
    bucket.tokensAt = now
  }

  /** Takes one token from `bucket`; false when it is empty (the message should be refused). */
  take (bucket: BucketState, now: number = ticks()): boolean {
    const elapsedMs = Math.max(0, now - bucket.tokensAt)
    bucket.tokensAt = now
    // a second at `ratePerSecond` a second gains ratePerSecond thousand thousandths
    const tokens = Math.min(this.capacity * 1000, bucket.tokens + elapsedMs * this.ratePerSecond)
    const taken = tokens >= 1000
    bucket.tokens = asSmall(taken ? tokens - 1000 : tokens)
    return taken
  }

  /** Tokens left in `bucket` now (fractional). */
  available (bucket: BucketState): number {
    return bucket.tokens / 1000
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
