import * as Y from 'yjs'
import { kindOf, typed, type ContentKind } from '../document/content-json.js'

/**
 * The update that turns a document whose state is `current` into one whose content is that of
 * `target` (both whole states, Yjs update v1), written as new changes on top of `current`: applied
 * by anyone who has `current`, stock clients included, it brings them to `target`'s content
 * without a reload. Null when the contents are already equal.
 *
 * Yjs cannot bring back deleted items (the server's documents collect garbage, so a version is a
 * whole state, not a snapshot), so what differs is deleted and inserted anew, as a fresh author:
 * - text: the common prefix and suffix are kept, the middle replaced (cursors outside it stay
 *   put); a text with formatting or embeds is replaced whole, from the target's delta;
 * - map: keys the target lacks are deleted, entries that differ are set again (nested types as
 *   copies);
 * - array and XML fragment: replaced whole, nested types as copies, unless equal;
 * - a top-level type the target lacks is emptied (a top-level type cannot be removed).
 * Bare top-level types (a document loaded from updates) take the kind their content shows.
 */
export function revertUpdate (current: Uint8Array, target: Uint8Array): Uint8Array | null {
  const doc = new Y.Doc()
  const goal = new Y.Doc()
  try {
    Y.applyUpdate(doc, current)
    Y.applyUpdate(goal, target)
    const names = new Set([...doc.share.keys(), ...goal.share.keys()])
    const kinds = new Map<string, { mine: ContentKind, theirs: ContentKind }>()
    for (const name of names) {
      const mine = doc.share.get(name)
      const theirs = goal.share.get(name)
      kinds.set(name, { mine: mine === undefined ? 'empty' : kindOf(mine), theirs: theirs === undefined ? 'empty' : kindOf(theirs) })
    }
    let update: Uint8Array | null = null
    doc.on('update', (change: Uint8Array) => { update = change })
    doc.transact(() => {
      for (const [name, { mine, theirs }] of kinds) {
        const kind = theirs !== 'empty' ? theirs : mine
        if (kind === 'empty') continue
        // a type the current document holds as another kind cannot change its kind: emptied and filled
        const from = typed(doc, name, mine === 'empty' || mine === kind ? kind : mine)
        const to = typed(goal, name, kind)
        if (from !== undefined) revertType(from, to)
      }
    })
    return update
  } finally {
    doc.destroy()
    goal.destroy()
  }
}

type Top = Y.Text | Y.Map<unknown> | Y.Array<unknown> | Y.XmlFragment

function revertType (from: Top, to: Top | undefined): void {
  if (from instanceof Y.Text) {
    if (to instanceof Y.Text) return revertText(from, to)
    from.delete(0, from.length)
  } else if (from instanceof Y.Map) {
    const entries = to instanceof Y.Map ? new Map(to.entries()) : new Map<string, unknown>()
    for (const key of [...from.keys()]) if (!entries.has(key)) from.delete(key)
    for (const [key, value] of entries) {
      if (from.has(key) && sameValue(from.get(key), value)) continue
      from.set(key, copy(value))
    }
  } else if (from instanceof Y.Array) {
    const items = to instanceof Y.Array ? to.toArray() : []
    if (sameValue(from.toArray(), items)) return
    from.delete(0, from.length)
    from.insert(0, items.map(copy))
  } else {
    const children = to instanceof Y.XmlFragment ? to.toArray() : []
    if (to instanceof Y.XmlFragment && from.toString() === to.toString()) return
    from.delete(0, from.length)
    from.insert(0, children.map(child => child.clone()) as Array<Y.XmlElement | Y.XmlText>)
  }
}

/** Plain text: replace the middle between the common prefix and suffix; otherwise the whole delta. */
function revertText (from: Y.Text, to: Y.Text): void {
  const before = from.toDelta() as Array<{ insert: unknown, attributes?: object }>
  const after = to.toDelta() as Array<{ insert: unknown, attributes?: object }>
  const plain = (delta: typeof before): boolean => delta.every(op => typeof op.insert === 'string' && op.attributes === undefined)
  if (plain(before) && plain(after)) {
    const a = from.toString()
    const b = to.toString()
    if (a === b) return
    let start = 0
    while (start < a.length && start < b.length && a[start] === b[start]) start++
    let end = 0
    while (end < a.length - start && end < b.length - start && a[a.length - 1 - end] === b[b.length - 1 - end]) end++
    // Yjs counts UTF-16 units, as these indices do; never split a surrogate pair
    if (start > 0 && isHighSurrogate(a.charCodeAt(start - 1))) start--
    if (end > 0 && isLowSurrogate(a.charCodeAt(a.length - end))) end--
    from.delete(start, a.length - start - end)
    from.insert(start, b.slice(start, b.length - end))
    return
  }
  if (JSON.stringify(before) === JSON.stringify(after)) return
  from.delete(0, from.length)
  from.applyDelta(after.map(op => op.insert instanceof Y.AbstractType ? { ...op, insert: op.insert.clone() } : op))
}

function isHighSurrogate (code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff
}

function isLowSurrogate (code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff
}

/** A value of another document, insertable into this one: nested types are copied. */
function copy (value: unknown): unknown {
  return value instanceof Y.AbstractType ? value.clone() : value
}

/**
 * True when two values are equal: plain values as JSON, nested types of the same class by their
 * JSON (a nested text's formatting is not compared: a restore may leave it as it is now).
 */
function sameValue (a: unknown, b: unknown): boolean {
  return JSON.stringify(a, typesAsJson) === JSON.stringify(b, typesAsJson)
}

function typesAsJson (_key: string, value: unknown): unknown {
  return value instanceof Y.AbstractType ? { type: value.constructor.name, json: value.toJSON() as unknown } : value
}
