import * as Y from 'yjs'

/**
 * Stored updates as one: applied to a fresh document and encoded, as the registry makes its
 * snapshots (deleted content collected). Linear in the rows, where one Y.mergeUpdates over n
 * updates costs about n² log n. Content whose dependencies the rows lack is left out (Yjs keeps
 * it pending): only for rows stored in causal order, as one instance stores them.
 */
export function snapshotOf (updates: readonly Uint8Array[]): Uint8Array {
  const doc = new Y.Doc()
  Y.transact(doc, () => {
    for (const update of updates) Y.applyUpdate(doc, update)
  })
  const snapshot = Y.encodeStateAsUpdate(doc)
  doc.destroy()
  return snapshot
}
