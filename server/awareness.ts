import { readAwarenessUpdate, writeAwarenessUpdate, type AwarenessEntry } from '../shared/awareness.js'
import { TandemError } from '../shared/errors.js'

/** Awareness client ids one session may ever claim; a stock client needs one. */
export const MAX_CLIENT_IDS_PER_OWNER = 4

interface Known {
  clock: number
  /** JSON text; 'null' once removed. */
  state: string
  /** The owner's key (a session), or undefined once removed. */
  owner: object | undefined
  /** Members the server sent this state to: their echoes of it are not claims. */
  seenBy: WeakSet<object>
}

/**
 * The awareness states of one document, as the server relays them. The server is the clock
 * authority: every state it forwards carries a clock above the last it forwarded for that client.
 * That is what lets a client that reconnects (its own clock is behind the removal the server
 * broadcast when it dropped) be seen again at once instead of after its next 15 s renewal.
 */
export class AwarenessRegistry {
  private readonly known = new Map<number, Known>()
  /** Client ids each owner has ever claimed, to cap them (see MAX_CLIENT_IDS_PER_OWNER). */
  private readonly claimed = new WeakMap<object, Set<number>>()

  /**
   * Applies an awareness update sent by `owner`; returns the update to relay (clocks rewritten),
   * or null when it changes nothing. `recipients` are the members the relay goes to.
   *
   * The stock client re-sends every awareness change it receives, so entries for client ids
   * that another session controls, or that this session was sent before they were removed, are
   * echoes and are skipped. A client that reconnects claims its id again through a new session,
   * which was never sent that id's state.
   * Throws TandemError on bad bytes; nothing is applied then.
   */
  apply (owner: object, update: Uint8Array, recipients: Iterable<object>): Uint8Array | null {
    let entries: AwarenessEntry[]
    try {
      entries = readAwarenessUpdate(update)
    } catch (err) {
      throw new TandemError('TANDEM_ERR_MALFORMED_MESSAGE', `awareness: ${(err as Error).message}`, { cause: err })
    }
    const relay: AwarenessEntry[] = []
    let seenBy: WeakSet<object> | undefined
    for (const entry of entries) {
      const known = this.known.get(entry.clientId)
      if (known !== undefined && known.owner !== owner) {
        if (known.owner !== undefined || entry.state === 'null' || known.seenBy.has(owner)) continue
      }
      if (!this.claim(owner, entry.clientId)) continue
      const clock = known === undefined ? entry.clock : Math.max(entry.clock, known.clock + 1)
      const removed = entry.state === 'null'
      seenBy ??= new WeakSet(recipients)
      this.known.set(entry.clientId, { clock, state: entry.state, owner: removed ? undefined : owner, seenBy })
      relay.push({ clientId: entry.clientId, clock, state: entry.state })
    }
    return relay.length === 0 ? null : writeAwarenessUpdate(relay)
  }

  /**
   * True when `owner` may control `clientId`. A real client uses one id per document; a session
   * may claim a few, so that no one can fill the registry and every client's screen with
   * thousands of invented cursors, each kept until the session ends.
   */
  private claim (owner: object, clientId: number): boolean {
    let ids = this.claimed.get(owner)
    if (ids === undefined) {
      ids = new Set()
      this.claimed.set(owner, ids)
    }
    if (ids.has(clientId)) return true
    if (ids.size >= MAX_CLIENT_IDS_PER_OWNER) return false
    ids.add(clientId)
    return true
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

  /** Every live state, as one update for `recipient`; null when there is none. */
  encodeAll (recipient: object): Uint8Array | null {
    const entries: AwarenessEntry[] = []
    for (const [clientId, known] of this.known) {
      if (known.owner === undefined) continue
      known.seenBy.add(recipient)
      entries.push({ clientId, clock: known.clock, state: known.state })
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
