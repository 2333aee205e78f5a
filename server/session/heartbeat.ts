import { ticks } from './clock.js'

/** What the heartbeat loop needs of a session. */
export interface Beating {
  /** `now` in ticks (clock.ts). */
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

/** A heartbeat tick later than this (ms) says the event loop stalled. */
const STALL_MS = 1_000

/** Keepalive period for clients (ServerOptions.keepaliveMs): well inside the stock client's 30 s watchdog. */
export const KEEPALIVE_MS = 15_000

/**
 * Ticks per ping interval. Sessions that connected together (a deploy, a connection storm) would
 * otherwise all be pinged in one tick, every interval: thousands of writes in one turn. Each
 * session pings at its own phase (Session.heartbeat), and a tick serves the sessions due then.
 */
export const TICKS_PER_PERIOD = 8

/**
 * One timer for every session: each tick, every session checks its own silence (Session.heartbeat
 * terminates a silent peer, pings a quiet one at its own phase, and sends a keepalive message to
 * a client that heard nothing for about KEEPALIVE_MS). It ticks TICKS_PER_PERIOD times per ping
 * interval (or keepalive period if that is shorter). `stop()` is safe to call twice.
 */
export class HeartbeatLoop {
  private timer: NodeJS.Timeout | undefined
  private readonly options: HeartbeatOptions
  private readonly periodMs: number
  private lastTick = 0
  /** How long the event loop stalled lately (see tick), and until when that is forgiven. */
  private stalledMs = 0
  private forgivenUntil = 0

  constructor (private readonly sessions: Iterable<Beating>, intervalMs: number, timeoutMs: number, keepaliveMs = KEEPALIVE_MS) {
    this.options = { intervalMs, timeoutMs, keepaliveMs }
    this.periodMs = Math.max(1, Math.floor(Math.min(intervalMs, keepaliveMs) / TICKS_PER_PERIOD))
  }

  start (): void {
    this.stop()
    this.lastTick = ticks()
    this.timer = setInterval(() => this.tick(), this.periodMs)
  }

  stop (): void {
    clearInterval(this.timer)
    this.timer = undefined
  }

  /**
   * A tick that comes late means the event loop was held (a big document loading, a long
   * collection): what peers sent meanwhile (pongs, messages) is still unread, and their silence
   * is this process's. For the next timeoutMs, that stall is added to the timeout.
   */
  private tick (): void {
    const now = ticks()
    const late = now - this.lastTick - this.periodMs
    this.lastTick = now
    if (late > STALL_MS) {
      this.stalledMs = now < this.forgivenUntil ? this.stalledMs + late : late
      this.forgivenUntil = now + this.options.timeoutMs + this.stalledMs
    }
    const options = now < this.forgivenUntil ? { ...this.options, timeoutMs: this.options.timeoutMs + this.stalledMs } : this.options
    for (const session of this.sessions) session.heartbeat(now, options)
  }
}
