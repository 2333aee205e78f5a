import { describe, expect, test } from 'vitest'
import * as Y from 'yjs'
import { checkInsertEncoding, insertUpdate, marker, scanMarkers, TEXT_NAME } from '../../bench/updates.js'
import { Codec } from '../../bench/wire.js'
import { readFrame } from '../../shared/messages.js'

/** The load generator's codecs: if these are wrong, every bench figure is wrong. */
describe('bench load-generator codecs', () => {
  const found = (data: Uint8Array): string[] => {
    const out: string[] = []
    scanMarkers(data, (client, seq) => out.push(`${client}:${seq}`))
    return out
  }

  test('hand-encoded inserts equal what Yjs emits, and apply in order', () => {
    expect(() => checkInsertEncoding()).not.toThrow()
    const doc = new Y.Doc()
    for (let seq = 0; seq < 5; seq++) Y.applyUpdate(doc, insertUpdate(99, seq, marker(3, seq)))
    expect(doc.getText(TEXT_NAME).toString()).toBe([0, 1, 2, 3, 4].map(seq => marker(3, seq)).join(''))
  })

  test('markers survive the re-encoding and merging a server may do', () => {
    const updates = [0, 1, 2].map(seq => insertUpdate(7, seq, marker(12, seq)))
    const other = insertUpdate(8, 0, marker(40, 9_999_999))
    expect(found(Y.mergeUpdates([...updates, other])).sort()).toEqual(['12:0', '12:1', '12:2', '40:9999999'])
    const doc = new Y.Doc()
    const emitted: Uint8Array[] = []
    doc.on('update', (update: Uint8Array) => emitted.push(update))
    for (const update of updates) Y.applyUpdate(doc, update)
    expect(emitted.flatMap(found)).toEqual(['12:0', '12:1', '12:2'])
    expect(found(Y.encodeStateAsUpdate(doc))).toEqual(['12:0', '12:1', '12:2'])
  })

  test('frames of each dialect carry the update and classify the handshake', () => {
    const update = insertUpdate(5, 0, marker(1, 2))
    const plain = new Codec('y-websocket', 'doc/a')
    const frame = readFrame(plain.update(update))
    expect(frame).toEqual({ type: 'sync-update', update })
    expect(plain.hello().map(f => readFrame(f).type)).toEqual(['sync-step1'])
    expect(plain.classify(plain.step2Empty())).toBe('step2')
    const hocuspocus = new Codec('hocuspocus', 'doc/a')
    expect(hocuspocus.hello()).toHaveLength(2)
    expect(hocuspocus.classify(hocuspocus.hello()[1] as Uint8Array)).toBe('step1')
    expect(found(hocuspocus.update(update))).toEqual(['1:2'])
    expect(new Codec('raw', 'doc/a').hello()).toEqual([])
  })

  test('bytes that only look like a marker are not taken for one', () => {
    expect(found(new TextEncoder().encode(`~1234 ~12345678901x ${marker(1, 2)}`))).toEqual(['1:2'])
  })
})
