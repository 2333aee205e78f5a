import * as Y from 'yjs'

/**
 * True when applying `update` to `ydoc` would change it: it carries an item the document lacks,
 * or deletes something not yet deleted there. A read-only session's frames that change nothing
 * (the stock client's sync step 2 on connect, typically) are acknowledged rather than refused.
 * The update must already have passed Y.decodeUpdate.
 */
export function changesDocument (ydoc: Y.Doc, update: Uint8Array): boolean {
  const { structs, ds } = Y.decodeUpdate(update)
  for (const struct of structs) {
    if (struct instanceof Y.Skip) continue
    if (struct.id.clock + struct.length > Y.getState(ydoc.store, struct.id.client)) return true
  }
  for (const [client, ranges] of ds.clients) {
    const state = Y.getState(ydoc.store, client)
    const known = ydoc.store.clients.get(client)
    for (const { clock, len } of ranges) {
      if (len <= 0) continue
      if (known === undefined || clock + len > state) return true
      // walk the document's structs over [clock, clock + len): each must be deleted already
      for (let i = Y.findIndexSS(known, clock); i < known.length; i++) {
        const struct = known[i] as Y.Item | Y.GC
        if (struct.id.clock >= clock + len) break
        if (!struct.deleted) return true
      }
    }
  }
  return false
}

/**
 * The document's state as an update for a client with `stateVector`, without the structs and
 * deletions Yjs keeps pending (waiting for content the server does not have). Y.encodeStateAsUpdate
 * includes them; a client that receives them in one piece may integrate what the server never
 * did, and would then see a document no other client sees and the store never got. Hostile
 * updates can leave such content behind, so the server only ever hands out what it integrated;
 * pending content that resolves later is relayed and stored then, like any update.
 */
export function encodeIntegratedState (ydoc: Y.Doc, stateVector?: Uint8Array): Uint8Array {
  const { store } = ydoc
  const { pendingStructs, pendingDs } = store
  if (pendingStructs === null && pendingDs === null) return Y.encodeStateAsUpdate(ydoc, stateVector)
  // synchronous: nothing can observe the store while the pending fields are set aside
  store.pendingStructs = null
  store.pendingDs = null
  try {
    return Y.encodeStateAsUpdate(ydoc, stateVector)
  } finally {
    store.pendingStructs = pendingStructs
    store.pendingDs = pendingDs
  }
}

/**
 * True when `update` integrates whole into `ydoc`: every item continues its author where the
 * document (or the update itself) stands, and everything it references or deletes is in the
 * document or the update. Nothing of it would be left pending, waiting to integrate later under
 * someone else's update. An honest client's edit always does. Must have passed Y.decodeUpdate.
 */
export function integratesWhole (ydoc: Y.Doc, update: Uint8Array): boolean {
  const { structs, ds } = Y.decodeUpdate(update)
  const ends = new Map<number, number>()
  for (const struct of structs) {
    if (struct instanceof Y.Skip) return false
    const { client, clock } = struct.id
    const end = ends.get(client) ?? Y.getState(ydoc.store, client)
    if (clock > end) return false
    ends.set(client, Math.max(end, clock + struct.length))
  }
  const known = (id: { client: number, clock: number } | null): boolean =>
    id === null || id.clock < (ends.get(id.client) ?? Y.getState(ydoc.store, id.client))
  for (const struct of structs) {
    if (!(struct instanceof Y.Item)) continue
    const parent = struct.parent as unknown
    if (!known(struct.origin) || !known(struct.rightOrigin) || (parent instanceof Y.ID && !known(parent))) return false
  }
  for (const [client, ranges] of ds.clients) {
    const end = ends.get(client) ?? Y.getState(ydoc.store, client)
    for (const { clock, len } of ranges) if (clock + len > end) return false
  }
  return true
}
