import * as Y from 'yjs'

/** How many updates one Y.mergeUpdates call takes at most. */
const FAN_IN = 16

/**
 * Merges updates into one, as Y.mergeUpdates does, in rounds of at most 16 at a time. Yjs sorts
 * every input's reader again for each run of structs it writes, so one call over n updates costs
 * about n² log n: 5,000 one-edit updates (a busy document's turn under overload) took seconds,
 * each slow turn gathered more for the next, and the server never caught up. In rounds, the
 * cost grows with n log n.
 */
export function mergeUpdates (updates: readonly Uint8Array[]): Uint8Array {
  if (updates.length === 0) throw new Error('no updates to merge')
  let round = updates
  while (round.length > 1) {
    const next: Uint8Array[] = []
    for (let i = 0; i < round.length; i += FAN_IN) {
      const group = round.slice(i, i + FAN_IN)
      next.push(group.length === 1 ? group[0] as Uint8Array : Y.mergeUpdates(group))
    }
    round = next
  }
  return round[0] as Uint8Array
}
