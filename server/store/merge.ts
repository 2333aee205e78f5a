import * as Y from 'yjs'

/** Merges stored updates into one, for compaction. */
export function mergeStoredUpdates (updates: readonly Uint8Array[]): Uint8Array {
  return updates.length === 1 ? updates[0] as Uint8Array : Y.mergeUpdates(updates as Uint8Array[])
}
