import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises'

/** What a paced send needs of its receiver (a session). */
export interface PacedReceiver {
  send (frame: Uint8Array): void
  /** Bytes queued on its socket, not yet written to the network. */
  queuedBytes (): number
  /** False once its socket closed: the send stops. */
  connected (): boolean
}

/** Told when a receiver's socket has not drained for `afterMs`, and when it drains again. */
export interface StallWatch {
  readonly afterMs: number
  stalled (): void
  resumed (): void
}

/** How often a full socket is looked at again (ms). */
const DRAIN_POLL_MS = 5

/**
 * Sends a big reply frame by frame (a big document's first sync): each frame once the receiver's
 * socket holds at most `maxQueued` bytes not yet written, with a turn of the event loop after
 * each. The client applies each frame as it comes and its watchdog hears each one; other
 * documents keep flowing; frames are taken from `frames` only when they can go, so a lazy
 * source holds no more than a frame or two of the reply. Resolves true once every frame went,
 * false when the receiver disconnected or `wanted` turned false first.
 */
export async function sendPaced (receiver: PacedReceiver, frames: Iterator<Uint8Array>, maxQueued: number, options: { wanted?: () => boolean, stall?: StallWatch } = {}): Promise<boolean> {
  const { wanted = () => true, stall } = options
  const going = (): boolean => receiver.connected() && wanted()
  for (;;) {
    await drained(receiver, maxQueued, going, stall)
    if (!going()) return false
    const next = frames.next()
    if (next.done === true) return true
    receiver.send(next.value)
    await nextTurn()
  }
}

/** Resolves once `receiver`'s socket holds at most `maxQueued` bytes, or `going` is false. */
async function drained (receiver: PacedReceiver, maxQueued: number, going: () => boolean, stall: StallWatch | undefined): Promise<void> {
  const since = performance.now()
  let stalled = false
  try {
    while (going() && receiver.queuedBytes() > maxQueued) {
      if (!stalled && stall !== undefined && performance.now() - since > stall.afterMs) {
        stalled = true
        stall.stalled()
      }
      await sleep(DRAIN_POLL_MS)
    }
  } finally {
    if (stalled) stall?.resumed()
  }
}
