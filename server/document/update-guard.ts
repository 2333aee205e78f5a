import * as Y from 'yjs'

/**
 * Where an item lives: its parent type and, in a map, its key. A root type the document has is
 * the type itself (an incoming item names it, `ydoc.share` gives it); a root the document lacks
 * is `root:<name>`; a nested type is `item:<client>:<clock>`, the id of the item holding it.
 */
interface Place {
  parent: object | string
  sub: string | null
}

type Decoded = ReturnType<typeof Y.decodeUpdate>
type DecodedStruct = Decoded['structs'][number]
type ItemRef = { client: number, clock: number }

/** An update's items of each client, in clock order (as Y.decodeUpdate reads them). */
export type ItemIndex = Map<number, Y.Item[]>

/** Indexes the update's items by client; each list is in clock order. */
export function indexItems (decoded: Decoded): ItemIndex {
  const byClient: ItemIndex = new Map()
  for (const struct of decoded.structs) {
    if (!(struct instanceof Y.Item)) continue
    let list = byClient.get(struct.id.client)
    if (list === undefined) byClient.set(struct.id.client, list = [])
    list.push(struct)
  }
  // a client's items are in clock order unless the update repeats a client (forged); sort then
  for (const list of byClient.values()) {
    for (let i = 1; i < list.length; i++) {
      if ((list[i] as Y.Item).id.clock < (list[i - 1] as Y.Item).id.clock) {
        list.sort((a, b) => a.id.clock - b.id.clock)
        break
      }
    }
  }
  return byClient
}

/** The item of `list` (in clock order) that holds `clock`, by binary search; undefined if none. */
export function findItem (list: readonly Y.Item[] | undefined, clock: number): Y.Item | undefined {
  if (list === undefined) return undefined
  let low = 0
  let high = list.length - 1
  while (low <= high) {
    const middle = (low + high) >>> 1
    const item = list[middle] as Y.Item
    if (clock < item.id.clock) high = middle - 1
    else if (clock >= item.id.clock + item.length) low = middle + 1
    else return item
  }
  return undefined
}

/** Marks an item whose place is being resolved: meeting it again means the references loop. */
const RESOLVING = Symbol('resolving')

/**
 * Finds an update item whose references contradict each other or the document, which Yjs does
 * not check: it trusts its peers. A forged item whose left neighbour lives in another type (or
 * another map key) than its right neighbour or its parent gets linked into two lists at once;
 * the document is then corrupt, and each client resolves it differently. Returns what is wrong,
 * or null. References it cannot resolve (content the document does not have yet) are left to
 * the caller (see update-deps.ts); honest clients' updates always pass.
 *
 * Cost: O(n log n) in the update's items, plus a document look-up (Y.findIndexSS) per reference.
 * Each item's place is resolved once and remembered, so a chain of references (10,000 inserts at
 * the start of a text, each pointing at the one before) is walked once, not once per item.
 */
export function findInconsistency (ydoc: Y.Doc, decoded: Decoded, byClient: ItemIndex = indexItems(decoded)): string | null {
  const places = new Map<Y.Item, Place | null | typeof RESOLVING>()

  // no walk over ydoc.share: a document with many root types costs each update nothing more
  const typeKey = (type: { _item: Y.Item | null }): object | string => {
    const item = type._item
    return item === null ? type : `item:${item.id.client}:${item.id.clock}`
  }
  const rootKey = (name: string): object | string => ydoc.share.get(name) ?? `root:${name}`

  const storedPlace = (stored: DecodedStruct): Place | null => {
    if (!(stored instanceof Y.Item) || stored.parent === null) return null
    return { parent: typeKey(stored.parent as { _item: Y.Item | null }), sub: stored.parentSub }
  }

  /** The place of the item holding `id`, from the document or from the update; null if unknown. */
  const placeOf = (id: ItemRef): Place | null => {
    const stored = storedStruct(ydoc, id)
    if (stored !== undefined) return storedPlace(stored)
    const incoming = findItem(byClient.get(id.client), id.clock)
    return incoming === undefined ? null : placeOfIncoming(incoming)
  }

  /**
   * The place an update item claims, from its parent field or else its neighbours, following a
   * chain of neighbours in the update without recursion; every item on the chain gets the
   * chain's answer. A loop of references resolves to null (unknown).
   */
  const placeOfIncoming = (first: Y.Item): Place | null => {
    const chain: Y.Item[] = []
    let item: Y.Item | undefined = first
    let place: Place | null = null
    while (item !== undefined) {
      const known = places.get(item)
      if (known !== undefined) {
        place = known === RESOLVING ? null : known
        break
      }
      places.set(item, RESOLVING)
      chain.push(item)
      const parent = item.parent as unknown
      if (typeof parent === 'string') { place = { parent: rootKey(parent), sub: item.parentSub }; break }
      if (parent instanceof Y.ID) { place = { parent: `item:${parent.client}:${parent.clock}`, sub: item.parentSub }; break }
      const next = item.origin ?? item.rightOrigin
      if (next === null) break
      const stored = storedStruct(ydoc, next)
      if (stored !== undefined) { place = storedPlace(stored); break }
      item = findItem(byClient.get(next.client), next.clock)
    }
    for (const resolved of chain) places.set(resolved, place)
    return place
  }

  for (const list of byClient.values()) {
    for (const item of list) {
      const left = item.origin === null ? null : placeOf(item.origin)
      const right = item.rightOrigin === null ? null : placeOf(item.rightOrigin)
      const own = placeOfIncoming(item)
      if (left !== null && right !== null && !samePlace(left, right)) {
        return `item ${item.id.client}:${item.id.clock} has neighbours in different types`
      }
      // Yjs integrates the part of an item the document lacks next to the document's own item
      // before it, keeping the parent the item claims: both must agree
      const state = Y.getState(ydoc.store, item.id.client)
      if (own !== null && item.id.clock < state && state < item.id.clock + item.length) {
        const before = placeOf({ client: item.id.client, clock: state - 1 })
        if (before !== null && !samePlace(before, own)) {
          return `item ${item.id.client}:${item.id.clock} overlaps the document's items with other content`
        }
      }
    }
  }
  return null
}

function samePlace (a: Place, b: Place): boolean {
  return a.parent === b.parent && a.sub === b.sub
}

/** The document's struct holding `id`, or undefined when the document does not have it. */
function storedStruct (ydoc: Y.Doc, id: ItemRef): DecodedStruct | undefined {
  const structs = ydoc.store.clients.get(id.client)
  if (structs === undefined || id.clock >= Y.getState(ydoc.store, id.client)) return undefined
  return structs[Y.findIndexSS(structs, id.clock)]
}
