interface Entry { held: boolean, done: boolean, refused?: string }

/** The empty queue every AckOrder starts with and returns to: never pushed to (holdLast swaps it). */
const NONE: Entry[] = []

/** A held sync frame's place in its session's order of acknowledgements. */
export interface AckTicket {
  done: boolean
}

/**
 * Keeps a session's acknowledgements in the order its sync frames came (the client counts them:
 * PROTOCOL.md `ack`), though a frame the document holds (it depends on content the server lacks)
 * is settled after frames that came later and were stored first. The document acknowledges the
 * frames it did not hold in their order, and settles each held frame by its ticket; an `ack`
 * goes out for the longest run of settled frames from the oldest. Without a held frame, every
 * acknowledgement goes straight out.
 */
export class AckOrder<T = unknown> {
  /** Frames not held and not yet acknowledged, while nothing is held. */
  private unacked = 0
  /** Frames acknowledged straight out: the ones that came before the oldest held frame. */
  private ahead = 0
  /** From the oldest held frame on, every frame; entries before `head` are gone. NONE while empty. */
  private queue: Entry[] = NONE
  private head = 0
  /** The oldest frame in `queue` that is not held and not acknowledged. */
  private nextPlain = 0

  /**
   * `emit(count, null)` sends an `ack`, `emit(count, code)` a `refused` with that code; called
   * on `owner` when given, so that a session passes one shared function, not a closure of its
   * own (an idle connection keeps its AckOrder).
   */
  constructor (
    private readonly emitter: (this: T, count: number, refused: string | null) => void,
    private readonly owner?: T
  ) {}

  private emit (count: number, refused: string | null): void {
    this.emitter.call(this.owner as T, count, refused)
  }

  /** A sync frame goes to the document. */
  frame (): void {
    if (this.head === this.queue.length) this.unacked++
    else this.queue.push({ held: false, done: false })
  }

  /** The document holds the frame that came last; returns its ticket. */
  holdLast (): AckTicket {
    if (this.head === this.queue.length) {
      this.unacked--
      this.ahead += this.unacked
      this.unacked = 0
      const ticket = { held: true, done: false }
      if (this.queue === NONE) this.queue = []
      this.queue.push(ticket)
      return ticket
    }
    const ticket = this.queue[this.queue.length - 1] as { held: boolean, done: boolean }
    ticket.held = true
    return ticket
  }

  /** The document stored `count` more frames it did not hold (or they were no-ops). */
  acknowledge (count: number): void {
    let out = 0
    for (let i = 0; i < count; i++) {
      if (this.ahead > 0) {
        this.ahead--
        out++
      } else if (this.head < this.queue.length) {
        while (this.nextPlain < this.queue.length && (this.queue[this.nextPlain] as { held: boolean }).held) this.nextPlain++
        const entry = this.queue[this.nextPlain]
        if (entry !== undefined) {
          entry.done = true
          this.nextPlain++
        }
      } else {
        this.unacked--
        out++
      }
    }
    if (out > 0) this.emit(out, null)
    this.flush()
  }

  /**
   * Settles the frame that came last here, not through the document: refused with `code`, or
   * acknowledged (null) when it changed nothing (a read-only session's frame). It goes out in
   * its place among the frames.
   */
  settleLast (code: string | null): void {
    if (this.head === this.queue.length) {
      this.unacked--
      this.emit(1, code)
      return
    }
    const entry = this.queue[this.queue.length - 1] as { held: boolean, done: boolean, refused?: string }
    // not an acknowledgement the document will send: settled here, in its place
    entry.held = true
    entry.done = true
    if (code !== null) entry.refused = code
    this.flush()
  }

  /** The document stored a held frame (or it turned out a no-op). */
  settle (ticket: AckTicket): void {
    ticket.done = true
    this.flush()
  }

  private flush (): void {
    if (this.ahead > 0) return
    let out = 0
    let refused: string | null = null
    while (this.head < this.queue.length && (this.queue[this.head] as { done: boolean }).done) {
      const code = (this.queue[this.head] as { refused?: string }).refused ?? null
      if (code !== refused && out > 0) {
        this.emit(out, refused)
        out = 0
      }
      refused = code
      this.head++
      out++
    }
    if (this.head === this.queue.length) {
      this.queue = NONE
      this.head = 0
      this.nextPlain = 0
    } else if (this.nextPlain < this.head) {
      this.nextPlain = this.head
    }
    if (out > 0) this.emit(out, refused)
  }
}
