import * as Y from 'yjs'

/** A top-level type, typed or not. */
type Shared = Y.Doc['share'] extends Map<string, infer T> ? T : never

/** How a top-level type is rendered: what its content says it is. */
export type TypeKind = 'text' | 'map' | 'array' | 'xml'

/**
 * A document as JSON: `{ "<top-level type name>": value }`, each type rendered by its kind: text
 * as a string, map as an object, array as an array, XML as an XML string. Nested types are
 * rendered by their own `toJSON()`.
 *
 * A document built from updates (as the server's are) does not know the kinds of its top-level
 * types: an update names a root only by its name, and Yjs keeps it as an untyped AbstractType
 * until someone calls `ydoc.get(name, Kind)`. The kind is then read from the content (see
 * {@link inferKind}) and rendered without defining the type, so the document is not changed.
 */
export function documentJson (ydoc: Y.Doc): Record<string, unknown> {
  const json: Record<string, unknown> = {}
  for (const [name, type] of ydoc.share) json[name] = renderType(type)
  return json
}

/** One top-level type rendered by its kind. */
function renderType (type: Shared): unknown {
  if (type instanceof Y.Text) return type.toString()
  if (type instanceof Y.Map) return type.toJSON()
  if (type instanceof Y.Array) return type.toJSON()
  if (type instanceof Y.XmlFragment || type instanceof Y.XmlText) return type.toString()
  if (type.constructor !== Y.AbstractType) return type.toJSON()
  switch (inferKind(type)) {
    case 'text': return liveItems(type).map(item => item.content instanceof Y.ContentString ? item.content.str : '').join('')
    case 'map': return renderMap(type)
    case 'xml': return liveItems(type).map(item => (item.content as Y.ContentType).type.toString()).join('')
    case 'array': return liveItems(type).flatMap(item => item.content.getContent().map(toJson))
  }
}

/**
 * The kind of an untyped top-level type, from what its items hold: characters or formatting
 * marks (ContentString, ContentFormat, ContentEmbed) make a text; XML elements or XML text make
 * an XML fragment; entries under keys (items with a parentSub) make a map; anything else in the
 * list (JSON values, binary, nested types, sub-documents) makes an array. A type whose content
 * is all deleted (and collected) says nothing of its kind: it is rendered as an empty text.
 */
export function inferKind (type: Shared): TypeKind {
  for (let item = type._start; item !== null; item = item.right) {
    const content = item.content
    if (content instanceof Y.ContentString || content instanceof Y.ContentFormat || content instanceof Y.ContentEmbed) return 'text'
    if (content instanceof Y.ContentType) {
      return content.type instanceof Y.XmlElement || content.type instanceof Y.XmlText || content.type instanceof Y.XmlHook ? 'xml' : 'array'
    }
    if (content instanceof Y.ContentAny || content instanceof Y.ContentBinary || content instanceof Y.ContentDoc || content instanceof Y.ContentJSON) return 'array'
  }
  if (type._map.size > 0) return 'map'
  return 'text'
}

/** The list items of a type that are not deleted and count towards its length. */
function liveItems (type: Shared): Y.Item[] {
  const items: Y.Item[] = []
  for (let item = type._start; item !== null; item = item.right) if (!item.deleted && item.countable) items.push(item)
  return items
}

/** An untyped map's entries: the last live value under each key, as Y.Map.toJSON renders them. */
function renderMap (type: Shared): Record<string, unknown> {
  const json: Record<string, unknown> = {}
  for (const [key, item] of type._map) {
    if (item.deleted) continue
    const values = item.content.getContent()
    json[key] = toJson(values[values.length - 1])
  }
  return json
}

function toJson (value: unknown): unknown {
  return value instanceof Y.AbstractType ? value.toJSON() : value
}

/** What a top-level type holds for a restore: its kind, or `empty` when all its content is deleted. */
export type ContentKind = TypeKind | 'empty'

/**
 * The kind of a top-level type. A document loaded from stored updates does not know how its
 * clients declared their types (`getText`, `getMap`...): until someone asks, each is a bare
 * AbstractType, and its kind is read from its content: keyed entries make a map; strings,
 * formatting and embeds a text; XML elements a fragment; anything else in a sequence an array.
 * Deleted content tells nothing, so a type whose content is all deleted is `empty`.
 */
export function kindOf (type: Shared): ContentKind {
  if (type instanceof Y.Text) return 'text'
  if (type instanceof Y.Map) return 'map'
  if (type instanceof Y.Array) return 'array'
  if (type instanceof Y.XmlFragment) return 'xml'
  // what is left is read as the JSON rendering reads it (inferKind); nothing live left: `empty`
  const live = liveItems(type).length > 0 || [...type._map.values()].some(item => !item.deleted)
  return live ? inferKind(type) : 'empty'
}

/**
 * The top-level type `name` of `ydoc` as the kind given (converting a bare AbstractType, which
 * changes no content). Undefined for `empty`.
 */
export function typed (ydoc: Y.Doc, name: string, kind: ContentKind): Y.Text | Y.Map<unknown> | Y.Array<unknown> | Y.XmlFragment | undefined {
  switch (kind) {
    case 'text': return ydoc.getText(name)
    case 'map': return ydoc.getMap(name)
    case 'array': return ydoc.getArray(name)
    case 'xml': return ydoc.getXmlFragment(name)
    case 'empty': return undefined
  }
}
