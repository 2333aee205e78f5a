import { mergeUpdates } from './merge.js'
import { writeSyncUpdate } from '../../shared/messages.js'

/** An applied update waiting for the end of the event-loop turn to be relayed. */
interface Queued<M> {
  update: Uint8Array
  origin: M | null
}

/**
 * A document's relays within one turn of the event loop: the first update of a turn goes out at
 * once; the ones after it in the same turn are merged into one frame at the turn's end, so a busy
 * document sends each member at most two frames per turn.
 */
export class TurnRelay<M> {
  /** A relay went out this turn; later ones wait in `queue` for the turn's end. */
  private relayedThisTurn = false
  private queue: Array<Queued<M>> = []

  /** `broadcast(frame, except)` sends a frame to every member but `except`. */
  constructor (private readonly broadcast: (frame: Uint8Array, except: M | null) => void) {}

  /** Relays an applied update to every member but its origin: now, or merged at the turn's end. */
  relay (update: Uint8Array, origin: M | null): void {
    if (this.relayedThisTurn) {
      this.queue.push({ update, origin })
      return
    }
    this.relayedThisTurn = true
    setImmediate(this.endTurn)
    this.broadcast(writeSyncUpdate(update), origin)
  }

  /**
   * Relays what waited this turn as one frame: a lone update to everyone but its sender, several
   * merged into one for everyone, senders too (Yjs ignores what it already has).
   */
  private readonly endTurn = (): void => {
    this.relayedThisTurn = false
    const queue = this.queue
    if (queue.length === 0) return
    this.queue = []
    if (queue.length === 1) {
      const { update, origin } = queue[0] as Queued<M>
      this.broadcast(writeSyncUpdate(update), origin)
    } else {
      this.broadcast(writeSyncUpdate(mergeUpdates(queue.map(item => item.update))), null)
    }
  }
}
