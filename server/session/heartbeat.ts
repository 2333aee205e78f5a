/** What the heartbeat loop needs of a session. */
export interface Beating {
  heartbeat (now: number, options: HeartbeatOptions): void
}

/** Timings of the heartbeat, in ms. */
export interface HeartbeatOptions {
  /** Ping a connection this often. */
  intervalMs: number
  /** A connection silent this long is terminated (session end reason `timeout`). */
  timeoutMs: number
  /** A client that received nothing this long gets a keepalive message. */
  keepaliveMs: number
}

/** Keepalive period for clients: well inside the stock client's 30 s watchdog. */
export const KEEPALIVE_MS = 15_000

/**
 * One timer for every session: each tick, every session checks its own silence (Session.heartbeat
 * terminates a silent peer, pings a quiet one, and sends a keepalive message to a client that
 * heard nothing for KEEPALIVE_MS). It ticks at the ping interval, or at the keepalive period if
 * that is shorter. `stop()` is safe to call twice.
 */
export class HeartbeatLoop {
  private timer: NodeJS.Timeout | undefined
  private readonly options: HeartbeatOptions

  constructor (private readonly sessions: Iterable<Beating>, intervalMs: number, timeoutMs: number) {
    this.options = { intervalMs, timeoutMs, keepaliveMs: KEEPALIVE_MS }
  }

  start (): void {
    this.stop()
    this.timer = setInterval(() => this.tick(), Math.min(this.options.intervalMs, KEEPALIVE_MS))
  }

  stop (): void {
    clearInterval(this.timer)
    this.timer = undefined
  }

  private tick (): void {
    const now = Date.now()
    for (const session of this.sessions) session.heartbeat(now, this.options)
  }
}
