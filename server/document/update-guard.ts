import * as Y from 'yjs'

/** Where an item lives: its parent type and, in a map, its key. */
interface Place {
  parent: string
  sub: string | null
}

type Decoded = ReturnType<typeof Y.decodeUpdate>
type DecodedStruct = Decoded['structs'][number]
type ItemRef = { client: number, clock: number }

/** How deep a chain of references inside one update is followed before giving up (unknown). */
const MAX_DEPTH = 64

/**
 * Finds an update item whose references contradict each other or the document, which Yjs does
 * not check: it trusts its peers. A forged item whose left neighbour lives in another type (or
 * another map key) than its right neighbour or its parent gets linked into two lists at once;
 * the document is then corrupt, and each client resolves it differently. Returns what is wrong,
 * or null. References it cannot resolve (content the document does not have yet) are left to
 * Yjs, which keeps such items pending; honest clients' updates always pass.
 */
export function findInconsistency (ydoc: Y.Doc, decoded: Decoded): string | null {
  const roots = new Map<object, string>()
  for (const [name, type] of ydoc.share) roots.set(type, name)
  const byClient = new Map<number, Y.Item[]>()
  for (const struct of decoded.structs) {
    if (!(struct instanceof Y.Item)) continue
    let list = byClient.get(struct.id.client)
    if (list === undefined) byClient.set(struct.id.client, list = [])
    list.push(struct)
  }

  const typeKey = (type: { _item: Y.Item | null }): string => {
    const item = type._item
    return item === null ? `root:${roots.get(type) ?? '?'}` : `item:${item.id.client}:${item.id.clock}`
  }

  /** The place of the item holding `id`, from the document or from the update; null if unknown. */
  const placeOf = (id: ItemRef, depth: number): Place | null => {
    const stored = storedStruct(ydoc, id)
    if (stored !== undefined) {
      if (!(stored instanceof Y.Item) || stored.parent === null) return null
      return { parent: typeKey(stored.parent as { _item: Y.Item | null }), sub: stored.parentSub }
    }
    const incoming = byClient.get(id.client)?.find(s => s.id.clock <= id.clock && id.clock < s.id.clock + s.length)
    return incoming === undefined ? null : placeOfIncoming(incoming, depth + 1)
  }

  /** The place an update item claims, from its parent field or else its neighbours. */
  const placeOfIncoming = (item: Y.Item, depth: number): Place | null => {
    if (depth > MAX_DEPTH) return null
    const parent = item.parent as unknown
    if (typeof parent === 'string') return { parent: `root:${parent}`, sub: item.parentSub }
    if (parent instanceof Y.ID) return { parent: `item:${parent.client}:${parent.clock}`, sub: item.parentSub }
    if (item.origin !== null) return placeOf(item.origin, depth)
    if (item.rightOrigin !== null) return placeOf(item.rightOrigin, depth)
    return null
  }

  for (const list of byClient.values()) {
    for (const item of list) {
      const left = item.origin === null ? null : placeOf(item.origin, 0)
      const right = item.rightOrigin === null ? null : placeOf(item.rightOrigin, 0)
      const own = placeOfIncoming(item, 0)
      if (left !== null && right !== null && !samePlace(left, right)) {
        return `item ${item.id.client}:${item.id.clock} has neighbours in different types`
      }
      // Yjs integrates the part of an item the document lacks next to the document's own item
      // before it, keeping the parent the item claims: both must agree
      const state = Y.getState(ydoc.store, item.id.client)
      if (own !== null && item.id.clock < state && state < item.id.clock + item.length) {
        const before = placeOf({ client: item.id.client, clock: state - 1 }, 0)
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
