import { describe, expect, test } from 'vitest'
import * as Y from 'yjs'
import { documentJson, inferKind } from '../../server/document/content-json.js'

/** A document as the server has it: built from a client's update, its top-level types untyped. */
function asServer (client: Y.Doc): Y.Doc {
  const server = new Y.Doc()
  Y.applyUpdate(server, Y.encodeStateAsUpdate(client))
  return server
}

function client (): Y.Doc {
  const doc = new Y.Doc()
  doc.getText('text').insert(0, 'hello world')
  doc.getText('text').format(0, 5, { bold: true })
  doc.getText('text').delete(5, 1)
  const map = doc.getMap<unknown>('map')
  map.set('n', 1)
  map.set('s', 'two')
  map.set('gone', true)
  map.delete('gone')
  const nested = new Y.Text('inner')
  map.set('nested', nested)
  const array = doc.getArray<unknown>('array')
  array.insert(0, [1, 'b', { c: [3] }, null])
  const item = new Y.Map<unknown>()
  array.push([item])
  item.set('k', 'v')
  array.delete(1, 1)
  const xml = doc.getXmlFragment('xml')
  const p = new Y.XmlElement('p')
  p.setAttribute('class', 'x')
  p.insert(0, [new Y.XmlText('para')])
  xml.insert(0, [p, new Y.XmlText('tail')])
  return doc
}

const EXPECTED = {
  text: 'helloworld',
  map: { n: 1, s: 'two', nested: 'inner' },
  array: [1, { c: [3] }, null, { k: 'v' }],
  xml: '<p class="x">para</p>tail'
}

describe('documentJson', () => {
  test('renders each kind of top-level type of a document built from updates (untyped)', () => {
    const server = asServer(client())
    for (const type of server.share.values()) expect(type.constructor).toBe(Y.AbstractType)
    expect(documentJson(server)).toEqual(EXPECTED)
    expect(JSON.parse(JSON.stringify(documentJson(server)))).toEqual(EXPECTED)
  })

  test('does not define the types it reads: the server document stays as it was', () => {
    const server = asServer(client())
    const before = Y.encodeStateAsUpdate(server)
    documentJson(server)
    for (const type of server.share.values()) expect(type.constructor).toBe(Y.AbstractType)
    expect(Y.encodeStateAsUpdate(server)).toEqual(before)
    // and the kinds the content tells are the ones the client used
    expect(server.getText('text').toString()).toBe('helloworld')
  })

  test('renders typed top-level types the same way', () => {
    expect(documentJson(client())).toEqual(EXPECTED)
  })

  test('infers each kind from the content', () => {
    const server = asServer(client())
    const kinds = Object.fromEntries([...server.share].map(([name, type]) => [name, inferKind(type)]))
    expect(kinds).toEqual({ text: 'text', map: 'map', array: 'array', xml: 'xml' })
  })

  test('a text with attributes is a text; an XML element at the top is XML; embeds make a text; binary makes an array', () => {
    const doc = new Y.Doc()
    doc.getText('t').insert(0, 'x')
    doc.getText('t').setAttribute('lang', 'en')
    doc.getText('e').insertEmbed(0, { image: 'a.png' })
    doc.getArray('b').insert(0, [Uint8Array.of(1, 2)])
    const element = doc.get('el', Y.XmlElement) as Y.XmlElement
    element.setAttribute('id', '1')
    element.insert(0, [new Y.XmlElement('br')])
    const json = documentJson(asServer(doc))
    expect(json.t).toBe('x')
    expect(json.e).toBe('')
    expect(json.b).toEqual([Uint8Array.of(1, 2)])
    expect(json.el).toBe('<br></br>')
  })

  test('a type whose content was all deleted renders as an empty text; an emptied map as {}', () => {
    const doc = new Y.Doc()
    doc.getText('t').insert(0, 'abc')
    doc.getText('t').delete(0, 3)
    doc.getMap('m').set('k', 1)
    doc.getMap('m').delete('k')
    expect(documentJson(asServer(doc))).toEqual({ t: '', m: {} })
  })

  test('an empty document is {}', () => {
    expect(documentJson(new Y.Doc())).toEqual({})
  })
})
