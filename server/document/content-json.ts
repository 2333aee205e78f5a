import * as Y from 'yjs'

/** A top-level type, as `Y.Doc.share` holds it. */
type TopLevel = Y.Doc['share'] extends Map<string, infer T> ? T : never

/** What a top-level type holds, as far as its content tells. */
export type TypeKind = 'text' | 'map' | 'array' | 'xml' | 'empty'

/**
 * The kind of a top-level type. A document loaded from stored updates does not know how its
 * clients declared their types (`getText`, `getMap`...): until someone asks, each is a bare
 * AbstractType, and its kind is read from its content: keyed entries make a map; strings,
 * formatting and embeds a text; XML elements a fragment; anything else in a sequence an array.
 * Deleted content tells nothing, so a type whose content is all deleted is `empty`.
 */
export function kindOf (type: TopLevel): TypeKind {
  if (type instanceof Y.Text) return 'text'
  if (type instanceof Y.Map) return 'map'
  if (type instanceof Y.Array) return 'array'
  if (type instanceof Y.XmlFragment) return 'xml'
  for (let item = type._start; item !== null; item = item.right) {
    if (item.deleted) continue
    const content = item.content
    if (content instanceof Y.ContentString || content instanceof Y.ContentFormat || content instanceof Y.ContentEmbed) return 'text'
    if (content instanceof Y.ContentType) {
      const inner = content.type
      return inner instanceof Y.XmlElement || inner instanceof Y.XmlText || inner instanceof Y.XmlHook ? 'xml' : 'array'
    }
    return 'array'
  }
  for (const item of type._map.values()) if (!item.deleted) return 'map'
  return 'empty'
}

/**
 * The top-level type `name` of `ydoc` as the kind given (converting a bare AbstractType, which
 * changes no content). Undefined for `empty`.
 */
export function typed (ydoc: Y.Doc, name: string, kind: TypeKind): Y.Text | Y.Map<unknown> | Y.Array<unknown> | Y.XmlFragment | undefined {
  switch (kind) {
    case 'text': return ydoc.getText(name)
    case 'map': return ydoc.getMap(name)
    case 'array': return ydoc.getArray(name)
    case 'xml': return ydoc.getXmlFragment(name)
    case 'empty': return undefined
  }
}

/**
 * A document's content as JSON: `{ "<top-level type name>": value }`, text as a string, map as
 * an object, array as an array, XML as an XML string; a type with no content left is null.
 * Bare top-level types are converted to their inferred kind on `ydoc` (pass a copy of a document
 * others use).
 */
export function documentJson (ydoc: Y.Doc): Record<string, unknown> {
  const result: Record<string, unknown> = {}
  for (const [name, type] of [...ydoc.share.entries()].sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)) {
    const value = typed(ydoc, name, kindOf(type))
    result[name] = value === undefined ? null : value instanceof Y.XmlFragment || value instanceof Y.Text ? value.toString() : value.toJSON()
  }
  return result
}
