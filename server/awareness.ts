import { readAwarenessUpdate, writeAwarenessUpdate, type AwarenessEntry } from '../shared/awareness.js'
import { TandemError } from '../shared/errors.js'

interface Known {
  clock: number
  /** JSON text; 'null' once removed. */
  state: string
  /** The owner's key (a session), or undefined once removed. */
  owner: object | undefined
}

/**
 * The awareness states of one document, as the server relays them. The server is the clock
 * authority: every state it forwards carries a clock above the last it forwarded for that client.
 * That is what lets a client that reconnects (its own clock is behind the removal the server
 * broadcast when it dropped) be seen again at once instead of after its next 15 s renewal.
 */
export class AwarenessRegistry {
  private readonly known = new Map<number, Known>()

  /**
   * Applies an awareness update sent by `owner`; returns the update to relay (clocks rewritten),
   * or null when it changes nothing. Throws TandemError on bad bytes; nothing is applied then.
   *
   * The stock y-websocket provider re-broadcasts every awareness change it receives, so a
   * session routinely sends states it does not own. Those entries are ignored, never applied:
   * a state owned by another session, and a removed state sent again with a clock at or below
   * the removal by a session that already owns a state (a late relay; a fresh connection whose
   * clock is behind the removal is its owner coming back, and is accepted).
   */
  apply (owner: object, update: Uint8Array): Uint8Array | null {
    let entries: AwarenessEntry[]
    try {
      entries = readAwarenessUpdate(update)
    } catch (err) {
      throw new TandemError('TANDEM_ERR_MALFORMED_MESSAGE', `awareness: ${(err as Error).message}`, { cause: err })
    }
    const ownsOne = this.ownsAny(owner)
    const relay: AwarenessEntry[] = []
    for (const entry of entries) {
      const known = this.known.get(entry.clientId)
      if (known?.owner !== undefined && known.owner !== owner) continue
      if (known !== undefined && known.owner === undefined) {
        if (entry.state === 'null') continue
        if (ownsOne && entry.clock <= known.clock) continue
      }
      const clock = known === undefined ? entry.clock : Math.max(entry.clock, known.clock + 1)
      const removed = entry.state === 'null'
      this.known.set(entry.clientId, { clock, state: entry.state, owner: removed ? undefined : owner })
      relay.push({ clientId: entry.clientId, clock, state: entry.state })
    }
    return relay.length === 0 ? null : writeAwarenessUpdate(relay)
  }

  private ownsAny (owner: object): boolean {
    for (const known of this.known.values()) if (known.owner === owner) return true
    return false
  }

  /**
   * True when applying `owner`'s `update` would change some state's content, not only its clock (the
   * stock client renews an unchanged state every 15 s). False for bytes that do not decode.
   */
  changesState (owner: object, update: Uint8Array): boolean {
    let entries: AwarenessEntry[]
    try {
      entries = readAwarenessUpdate(update)
    } catch {
      return false
    }
    return entries.some(entry => {
      const known = this.known.get(entry.clientId)
      return (known?.owner === undefined || known.owner === owner) && known?.state !== entry.state
    })
  }

  /** Removes every state `owner` controls; returns the removal to relay, or null if none. */
  removeOwnedBy (owner: object): Uint8Array | null {
    const relay: AwarenessEntry[] = []
    for (const [clientId, known] of this.known) {
      if (known.owner !== owner) continue
      known.clock++
      known.state = 'null'
      known.owner = undefined
      relay.push({ clientId, clock: known.clock, state: 'null' })
    }
    return relay.length === 0 ? null : writeAwarenessUpdate(relay)
  }

  /** Client ids whose state `owner` controls. */
  ownedBy (owner: object): number[] {
    const ids: number[] = []
    for (const [clientId, known] of this.known) if (known.owner === owner) ids.push(clientId)
    return ids
  }

  /** Every live state, as one update for a joining client; null when there is none. */
  encodeAll (): Uint8Array | null {
    const entries: AwarenessEntry[] = []
    for (const [clientId, known] of this.known) {
      if (known.owner !== undefined) entries.push({ clientId, clock: known.clock, state: known.state })
    }
    return entries.length === 0 ? null : writeAwarenessUpdate(entries)
  }

  /** Number of live states. */
  get size (): number {
    let n = 0
    for (const known of this.known.values()) if (known.owner !== undefined) n++
    return n
  }
}
