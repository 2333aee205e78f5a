import * as Y from 'yjs'
import { validateResourceName } from './resource-name.js'

/** Any shared type: Y.Text, Y.Map, Y.Array, Y.XmlFragment, Y.XmlElement, Y.XmlText. */
// `any`, not YEvent<any>: each type's event handler takes its own event class (YTextEvent…), so
// under strictFunctionTypes a Y.Text is not an AbstractType<YEvent<any>>
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- any event class
export type SharedType = Y.AbstractType<any>

/** Lock resource names that name a shared type start with this; the server enforces them. */
export const TYPE_RESOURCE_PREFIX = 'y:'

/** A type a `y:` resource names: a top-level type by name, or a nested one by its item's id. */
export type TypeTarget =
  | { kind: 'root', name: string }
  | { kind: 'item', client: number, clock: number }

const ITEM_NAME = /^y:(\d{1,16}):(\d{1,16})$/

/** True when `resource` names a shared type (`y:…`): the server enforces such locks. */
export function isTypeResource (resource: string): boolean {
  return resource.startsWith(TYPE_RESOURCE_PREFIX)
}

/**
 * The resource name of a shared type: `y:<name>` for a top-level type, `y:<client>:<clock>` for
 * a nested one (the id of the item that holds it). Throws a RangeError when the type is not part
 * of a document yet (a nested type must be inserted first: its id is given then), and
 * TANDEM_ERR_INVALID_RESOURCE when the name fails validateResourceName (a top-level type whose
 * name is too long cannot be locked).
 */
export function typeResource (type: SharedType): string {
  const resource = unvalidatedTypeResource(type)
  validateResourceName(resource)
  return resource
}

function unvalidatedTypeResource (type: SharedType): string {
  const doc = type.doc
  if (doc === null) throw new RangeError('the type is not part of a document yet')
  const item = type._item
  if (item !== null) return `${TYPE_RESOURCE_PREFIX}${item.id.client}:${item.id.clock}`
  for (const [name, shared] of doc.share) if (shared === type) return `${TYPE_RESOURCE_PREFIX}${name}`
  throw new RangeError('the type is not part of its document')
}

/**
 * What a `y:` resource names, or null for any other resource (and for a name that fails
 * validateResourceName, which no lock table grants). `y:<digits>:<digits>` is a nested type's id;
 * anything else after `y:` is the name of a top-level type (a top-level type whose name is two
 * numbers joined by `:` cannot be named, and so cannot be guarded).
 */
export function parseTypeResource (resource: string): TypeTarget | null {
  if (!isTypeResource(resource)) return null
  try {
    validateResourceName(resource)
  } catch {
    return null
  }
  const match = ITEM_NAME.exec(resource)
  if (match !== null) {
    const client = Number(match[1])
    const clock = Number(match[2])
    if (Number.isSafeInteger(client) && Number.isSafeInteger(clock)) return { kind: 'item', client, clock }
  }
  return { kind: 'root', name: resource.slice(TYPE_RESOURCE_PREFIX.length) }
}

/**
 * The type a resource names in `doc`, or null when the document does not have it (yet). A nested
 * type the server re-created after a forbidden deletion is followed to its copy (`redone`).
 * A top-level type is looked up, never created.
 */
export function resolveTypeResource (doc: Y.Doc, target: TypeTarget): SharedType | null {
  if (target.kind === 'root') return doc.share.get(target.name) ?? null
  let id: Y.ID | null = Y.createID(target.client, target.clock)
  for (let hops = 0; id !== null && hops < 64; hops++) {
    if (id.clock >= Y.getState(doc.store, id.client)) return null
    const structs = doc.store.clients.get(id.client)
    if (structs === undefined) return null
    const struct: Y.Item | Y.GC | undefined = structs[Y.findIndexSS(structs, id.clock)]
    // only the item's first clock holds the type
    if (!(struct instanceof Y.Item) || struct.id.clock !== id.clock) return null
    // deleted and re-created: its content may be gone already (garbage-collected)
    if (struct.deleted && struct.redone !== null) {
      id = struct.redone
      continue
    }
    return struct.content instanceof Y.ContentType ? struct.content.type : null
  }
  return null
}
