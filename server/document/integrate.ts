import * as Y from 'yjs'
import * as decoding from 'lib0/decoding'
import { encodeIntegratedState } from './read-only.js'
import { mergeUpdates } from './merge.js'

type Struct = ReturnType<typeof Y.decodeUpdate>['structs'][number]

/**
 * Applies `update` to `ydoc` and returns what the document integrated from it, as an update to
 * relay and store, or null when it changed nothing. Content Yjs keeps pending (waiting for
 * content the document lacks) is never part of the result: it is relayed and stored when it
 * integrates, with the update that completes it.
 *
 * The common case costs no encoding: an update whose structs continue every author exactly
 * where the document stands, with nothing pending before or after, integrates whole, and its own
 * bytes (up to the end of its delete set) are the result, where an `update` listener would have
 * Yjs encode every transaction again. Any other update is applied with such a listener, and the
 * result is what Yjs emits.
 *
 * @param structs - the update's decoded structs, or null to go the listener's way
 */
export function integrate (ydoc: Y.Doc, update: Uint8Array, structs: readonly Struct[] | null, origin: unknown): Uint8Array | null {
  if (structs === null || !continuesAuthors(ydoc.store, structs)) return applyListening(ydoc, update, origin)
  let transaction: Y.Transaction | undefined
  const decoder = decoding.createDecoder(update)
  Y.transact(ydoc, tr => {
    transaction = tr
    Y.readUpdate(decoder, ydoc, origin)
  }, origin)
  const { beforeState, afterState, deleteSet } = transaction as Y.Transaction
  const { pendingStructs, pendingDs } = ydoc.store
  // what Yjs read, in its own copy: bytes after the delete set are ignored by every reader, so
  // they are not relayed or stored; `update` may be a view into a larger receive buffer
  if (pendingStructs === null && pendingDs === null) return new Uint8Array(update.subarray(0, decoder.pos))
  let advanced = false
  for (const [client, clock] of afterState) if (beforeState.get(client) !== clock) advanced = true
  if (!advanced && deleteSet.clients.size === 0) return null
  // part of it went pending: what integrated is everything past the state before it
  return encodeIntegratedState(ydoc, Y.encodeStateVector(beforeState))
}

/**
 * True when the update continues every author of `structs` exactly where the document stands,
 * one run per author, and nothing is pending: then it integrates whole, or leaves some pending.
 */
function continuesAuthors (store: Y.Doc['store'], structs: readonly Struct[]): boolean {
  if (structs.length === 0 || store.pendingStructs !== null || store.pendingDs !== null) return false
  const seen = new Set<number>()
  let client = -1
  for (const struct of structs) {
    if (struct instanceof Y.Skip) return false
    if (struct.id.client === client) continue
    client = struct.id.client
    // a second run of an author, or one that does not start where the document stands
    if (seen.has(client) || struct.id.clock !== Y.getState(store, client)) return false
    seen.add(client)
  }
  return true
}

/** Applies `update` and returns what Yjs emitted for it, merged, or null when nothing changed. */
function applyListening (ydoc: Y.Doc, update: Uint8Array, origin: unknown): Uint8Array | null {
  const emitted: Uint8Array[] = []
  const listener = (change: Uint8Array): void => { emitted.push(change) }
  ydoc.on('update', listener)
  try {
    Y.applyUpdate(ydoc, update, origin)
  } finally {
    ydoc.off('update', listener)
  }
  if (emitted.length <= 1) return emitted[0] ?? null
  return mergeUpdates(emitted)
}
