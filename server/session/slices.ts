/** How often a slice looks at the clock: every this many pieces of work. */
const CLOCK_EVERY = 8
/** Done pieces are dropped from the queue's head once there are this many (not one shift each). */
const COMPACT_AT = 4_096

/**
 * Work that may wait, run oldest first in slices of at most `sliceMs` of event-loop time, each
 * slice in a setImmediate of its own: the I/O that arrives meanwhile (updates to relay) runs
 * between two slices, never behind the whole queue. No timer, and nothing scheduled when empty.
 */
export class Slices {
  private queue: Array<() => void> = []
  private next = 0
  private immediate: NodeJS.Immediate | undefined

  constructor (private readonly sliceMs = 1) {}

  /** Queues `work`; it runs in a later turn of the event loop. */
  run (work: () => void): void {
    this.queue.push(work)
    this.immediate ??= setImmediate(() => this.slice())
  }

  /** Runs everything queued now, in this turn (at close). */
  flush (): void {
    if (this.immediate !== undefined) clearImmediate(this.immediate)
    this.immediate = undefined
    const { queue } = this
    this.queue = []
    for (let i = this.next; i < queue.length; i++) (queue[i] as () => void)()
    this.next = 0
  }

  private slice (): void {
    this.immediate = undefined
    const until = performance.now() + this.sliceMs
    const { queue } = this
    let i = this.next
    while (i < queue.length) {
      (queue[i++] as () => void)()
      if (i % CLOCK_EVERY === 0 && performance.now() >= until) break
    }
    if (i < queue.length) {
      if (i >= COMPACT_AT) {
        this.queue = queue.slice(i)
        i = 0
      }
      this.next = i
      this.immediate = setImmediate(() => this.slice())
    } else {
      this.queue = []
      this.next = 0
    }
  }
}
