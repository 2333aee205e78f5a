import type { Needs } from './update-deps.js'

/**
 * Bounds on the updates a document holds because they depend on content it lacks. Honest
 * clients rarely need any: an edit sent in the moment between a reconnect and its sync step 2,
 * or an edit building on content a crash lost before it was stored (the step 2 brings it).
 */
export interface HeldLimits {
  /** Bytes held for one document, all sessions together. */
  documentBytes: number
  /** Frames held for one document, all sessions together. */
  documentFrames: number
  /** Bytes held for one session. */
  sessionBytes: number
  /** Frames held for one session. */
  sessionFrames: number
  /**
   * How long a session's oldest held update may wait once its sender was asked for what it
   * depends on; past it, the session is closed with 1013 (reconnecting syncs it in full).
   */
  maxAgeMs: number
}

/** Defaults: far above what an honest client holds, far below what costs the server anything. */
export const DEFAULT_HELD_LIMITS: Readonly<HeldLimits> = Object.freeze({
  documentBytes: 1024 * 1024,
  documentFrames: 1024,
  sessionBytes: 256 * 1024,
  sessionFrames: 256,
  maxAgeMs: 30_000
})

/** One held update: its bytes, who sent it, and what it waits for. */
export interface Held<Owner, Ticket> {
  readonly update: Uint8Array
  readonly owner: Owner
  /** The owner's place for this frame in its order of acknowledgements. */
  readonly ticket: Ticket
  readonly needs: Needs
  /** When it was held (ms since the epoch). */
  readonly at: number
}

interface Usage {
  bytes: number
  frames: number
}

/**
 * The updates one document holds outside Yjs until the content they depend on arrives, in
 * arrival order and within HeldLimits. Nothing held is applied, relayed, stored or acknowledged;
 * an update leaves when the document meets its needs (`takeReady`), or when its owner leaves.
 */
export class HeldUpdates<Owner, Ticket> {
  /** Each held update with its needs as a list and how many of them are known to be met. */
  /** Both made on the first update held: most documents never hold one (an empty map is ~180 bytes). */
  private entries: Map<Held<Owner, Ticket>, { needs: Array<[number, number]>, met: number }> | undefined
  private usage: Map<Owner, Usage> | undefined
  private bytes = 0

  constructor (private readonly limits: Readonly<HeldLimits>) {}

  /** Number of held updates. */
  get size (): number {
    return this.entries?.size ?? 0
  }

  /** Bytes held, all owners together. */
  get heldBytes (): number {
    return this.bytes
  }

  /** Why `owner` may not hold `bytes` more (a sentence for the log and the close reason), or null. */
  refusal (owner: Owner, bytes: number): string | null {
    const { limits } = this
    const own = this.usage?.get(owner) ?? { bytes: 0, frames: 0 }
    if (own.bytes + bytes > limits.sessionBytes || own.frames + 1 > limits.sessionFrames) {
      return `the session would hold ${own.frames + 1} updates (${own.bytes + bytes} bytes) waiting for content the server lacks (at most ${limits.sessionFrames}, ${limits.sessionBytes} bytes)`
    }
    if (this.bytes + bytes > limits.documentBytes || this.size + 1 > limits.documentFrames) {
      return `the document would hold ${this.size + 1} updates (${this.bytes + bytes} bytes) waiting for content the server lacks (at most ${limits.documentFrames}, ${limits.documentBytes} bytes)`
    }
    return null
  }

  /** Holds an update; the caller checked `refusal` first. */
  add (held: Held<Owner, Ticket>): void {
    (this.entries ??= new Map()).set(held, { needs: [...held.needs], met: 0 })
    const usage = this.usage ??= new Map()
    const own = usage.get(held.owner)
    if (own === undefined) usage.set(held.owner, { bytes: held.update.byteLength, frames: 1 })
    else {
      own.bytes += held.update.byteLength
      own.frames++
    }
    this.bytes += held.update.byteLength
  }

  /**
   * Takes out, in arrival order, the updates whose needs are met, `state(client)` being the
   * document's state. A state only grows, so a need once met stays met: each held update is
   * checked from its first unmet need, and the checks cost one look-up per held update plus one
   * per need over its whole stay. The caller asks only after the document changed.
   */
  takeReady (state: (client: number) => number): Array<Held<Owner, Ticket>> {
    const ready: Array<Held<Owner, Ticket>> = []
    if (this.entries === undefined) return ready
    for (const [held, progress] of this.entries) {
      const { needs } = progress
      while (progress.met < needs.length) {
        const [client, clock] = needs[progress.met] as [number, number]
        if (state(client) < clock) break
        progress.met++
      }
      if (progress.met < needs.length) continue
      this.remove(held)
      ready.push(held)
    }
    return ready
  }

  /** When the oldest update `owner` holds was held, or null when it holds none. */
  oldest (owner: Owner): number | null {
    if (this.entries === undefined || this.usage?.has(owner) !== true) return null
    for (const held of this.entries.keys()) if (held.owner === owner) return held.at
    return null
  }

  /** The limits in force. */
  get maxAgeMs (): number {
    return this.limits.maxAgeMs
  }

  /** Drops everything `owner` holds (it left: nothing held was acknowledged). Returns how many. */
  dropOwner (owner: Owner): number {
    if (this.entries === undefined || this.usage?.has(owner) !== true) return 0
    let dropped = 0
    for (const held of [...this.entries.keys()]) {
      if (held.owner !== owner) continue
      this.remove(held)
      dropped++
    }
    return dropped
  }

  /** Drops everything. */
  clear (): void {
    this.entries?.clear()
    this.usage?.clear()
    this.bytes = 0
  }

  private remove (held: Held<Owner, Ticket>): void {
    this.entries?.delete(held)
    this.bytes -= held.update.byteLength
    const own = this.usage?.get(held.owner)
    if (own === undefined) return
    own.bytes -= held.update.byteLength
    own.frames--
    if (own.frames === 0) this.usage?.delete(held.owner)
  }
}
