import { describe, expect, test } from 'vitest'
import * as Y from 'yjs'
import { isTypeResource, parseTypeResource, resolveTypeResource, typeResource } from '../../shared/type-resource.js'

describe('resource names of shared types', () => {
  test('top-level and nested types, both ways', () => {
    const doc = new Y.Doc()
    const text = doc.getText('notes')
    const map = doc.getMap('sections')
    const inner = new Y.XmlElement('p')
    const fragment = doc.getXmlFragment('body')
    fragment.insert(0, [inner])
    map.set('one', new Y.Array())
    const array = map.get('one') as Y.Array<unknown>
    expect(typeResource(text)).toBe('y:notes')
    expect(typeResource(map)).toBe('y:sections')
    expect(typeResource(inner)).toBe(`y:${inner._item!.id.client}:${inner._item!.id.clock}`)
    for (const type of [text, map, inner, fragment, array]) {
      const target = parseTypeResource(typeResource(type))
      expect(target).not.toBeNull()
      expect(resolveTypeResource(doc, target!)).toBe(type)
    }
  })

  test('other resources are not types; unknown types resolve to null; nothing is created', () => {
    const doc = new Y.Doc()
    expect(isTypeResource('block:1')).toBe(false)
    expect(parseTypeResource('block:1')).toBeNull()
    expect(parseTypeResource('y:a:b')).toEqual({ kind: 'root', name: 'a:b' })
    expect(parseTypeResource('y:12:34')).toEqual({ kind: 'item', client: 12, clock: 34 })
    expect(parseTypeResource('y:99999999999999999:1')).toEqual({ kind: 'root', name: '99999999999999999:1' })
    expect(resolveTypeResource(doc, { kind: 'root', name: 'missing' })).toBeNull()
    expect(doc.share.has('missing')).toBe(false)
    doc.getText('t').insert(0, 'abc')
    const client = doc.clientID
    // an id that holds text, not a type, and one past the document's state
    expect(resolveTypeResource(doc, { kind: 'item', client, clock: 0 })).toBeNull()
    expect(resolveTypeResource(doc, { kind: 'item', client, clock: 99 })).toBeNull()
  })

  test('a type that is not in a document has no name', () => {
    expect(() => typeResource(new Y.Map())).toThrow(RangeError)
  })
})
