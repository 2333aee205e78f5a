import { FRAME_KINDS, frameKind } from '../shared/frame-kind.js'

/**
 * Counts local changes not yet stored by the server, from what went over the socket.
 *
 * The server acknowledges sync frames (step 2 and updates) in the order it received them, each
 * once it is stored; `refused` frames (read-only access) are settled the same way. Each frame
 * sent on the current socket carries a weight: 1 for an update, and for the step 2 the client
 * sends after (re)connecting, every change made while no socket carried it. When a socket
 * drops, what it had not had acknowledged is carried again: the step 2 of the next connection
 * covers it (it holds everything the server lacks, and the server acknowledges a step 2 only
 * once everything applied before it is stored).
 */
export class UnsyncedCounter {
  /** Changes no frame on the current socket covers. */
  private carried = 0
  /** Weights of the sync frames sent on the current socket, oldest first. */
  private queue: number[] = []
  private total = 0
  /** The socket the queued frames went out on. */
  private socket: object | null = null

  /** Local changes not yet known to be stored. */
  get count (): number {
    return this.total
  }

  /** A local change that no socket carried (offline, or between sockets). */
  unsent (): void {
    this.carried++
    this.total++
  }

  /**
   * A frame went out on `socket`, as `frames` frames (a chunked sync frame): sync frames are
   * counted, settled with their last frame (a new socket carries the old one's).
   */
  frameSent (socket: object, bytes: Uint8Array, frames = 1): void {
    const kind = FRAME_KINDS[frameKind(bytes)]
    if (kind !== 'sync_step2' && kind !== 'sync_update') return
    if (socket !== this.socket) {
      this.socketClosed()
      this.socket = socket
    }
    if (kind === 'sync_step2') this.sentStep2(frames)
    else this.sentUpdate(frames)
  }

  /**
   * An update carrying one local change was sent, in `frames` frames (a chunked update): the
   * change is settled with the last of them.
   */
  sentUpdate (frames = 1): void {
    for (let i = 1; i < frames; i++) this.queue.push(0)
    this.queue.push(1)
    this.total++
  }

  /**
   * The step 2 was sent, in `frames` frames (a chunked sync): it carries every change carried
   * so far, settled with its last frame.
   */
  sentStep2 (frames = 1): void {
    for (let i = 1; i < frames; i++) this.queue.push(0)
    this.queue.push(this.carried)
    this.carried = 0
  }

  /** The server stored `count` more frames (or refused them). Returns the changes they carried. */
  settled (count: number): number {
    const done = this.queue.splice(0, count)
    let changes = 0
    for (const weight of done) changes += weight
    this.total -= changes
    return changes
  }

  /** The socket dropped: what it did not get acknowledged is carried to the next one. */
  socketClosed (): void {
    for (const weight of this.queue) this.carried += weight
    this.queue = []
    this.socket = null
  }
}
