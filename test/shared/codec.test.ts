import { describe, expect, test } from 'vitest'
import * as Y from 'yjs'
import * as prng from 'lib0/prng'
import {
  readFrame, writeSyncStep1, writeSyncStep2, writeSyncUpdate, writeAwareness, writeAuthDenied,
  writeQueryAwareness, writeTandem, KEEPALIVE_FRAME
} from '../../shared/messages.js'
import { readAwarenessUpdate, writeAwarenessUpdate, type AwarenessEntry } from '../../shared/awareness.js'
import { documentNameFromPath } from '../../shared/document-name.js'
import { isTandemError } from '../../shared/errors.js'

/** Runs `check` with a seeded generator; the seed is printed when it fails. */
function seeded (runs: number, check: (gen: prng.PRNG) => void): void {
  const base = Number(process.env.TANDEM_SEED ?? Date.now() % 1_000_000)
  for (let i = 0; i < runs; i++) {
    const seed = base + i
    try {
      check(prng.create(seed))
    } catch (err) {
      throw new Error(`failed with seed ${seed} (rerun with TANDEM_SEED=${seed}): ${(err as Error).message}`, { cause: err })
    }
  }
}

describe('y-websocket frames', () => {
  test('fixed byte vectors', () => {
    expect(writeSyncStep1(Uint8Array.of(1, 2))).toEqual(Uint8Array.of(0, 0, 2, 1, 2))
    expect(writeSyncStep2(Uint8Array.of(0, 0))).toEqual(Uint8Array.of(0, 1, 2, 0, 0))
    expect(writeSyncUpdate(Uint8Array.of(9))).toEqual(Uint8Array.of(0, 2, 1, 9))
    expect(writeAwareness(Uint8Array.of(0))).toEqual(Uint8Array.of(1, 1, 0))
    expect(writeAuthDenied('no')).toEqual(Uint8Array.of(2, 0, 2, 110, 111))
    expect(writeQueryAwareness()).toEqual(Uint8Array.of(3))
    expect(writeTandem({ type: 'ack', count: 300 })).toEqual(Uint8Array.of(100, 0, 0xac, 0x02))
    expect(KEEPALIVE_FRAME).toEqual(Uint8Array.of(1, 1, 0))
    expect(writeAwarenessUpdate([{ clientId: 1, clock: 2, state: '{}' }])).toEqual(Uint8Array.of(1, 1, 2, 2, 123, 125))
  })

  test('round trips', () => {
    const doc = new Y.Doc()
    doc.getText('t').insert(0, 'hello')
    const update = Y.encodeStateAsUpdate(doc)
    const sv = Y.encodeStateVector(doc)
    expect(readFrame(writeSyncStep1(sv))).toEqual({ type: 'sync-step1', stateVector: sv })
    expect(readFrame(writeSyncStep2(update))).toEqual({ type: 'sync-step2', update })
    expect(readFrame(writeSyncUpdate(update))).toEqual({ type: 'sync-update', update })
    expect(readFrame(writeAuthDenied('why'))).toEqual({ type: 'auth-denied', reason: 'why' })
    expect(readFrame(writeQueryAwareness())).toEqual({ type: 'query-awareness' })
    expect(readFrame(writeTandem({ type: 'ack', count: 7 }))).toEqual({ type: 'tandem', message: { type: 'ack', count: 7 } })
  })

  test('the stock encoders and ours agree', async () => {
    const { Awareness, encodeAwarenessUpdate } = await import('y-protocols/awareness')
    const doc = new Y.Doc()
    const awareness = new Awareness(doc)
    awareness.setLocalState({ user: { name: 'Ada' }, cursor: null })
    const stock = encodeAwarenessUpdate(awareness, [doc.clientID])
    const [entry] = readAwarenessUpdate(stock)
    expect(entry).toEqual({ clientId: doc.clientID, clock: 1, state: JSON.stringify(awareness.getLocalState()) })
    expect(writeAwarenessUpdate([entry!])).toEqual(stock)
    awareness.destroy()
  })

  test('seeded random awareness entries round trip', () => {
    seeded(200, gen => {
      const entries: AwarenessEntry[] = Array.from({ length: prng.uint32(gen, 0, 6) }, () => ({
        clientId: prng.uint32(gen, 0, 2 ** 32 - 1),
        clock: prng.uint32(gen, 0, 2 ** 31),
        state: JSON.stringify({ name: prng.utf16String(gen, 12), n: prng.int31(gen, -100, 100) })
      }))
      expect(readAwarenessUpdate(writeAwarenessUpdate(entries))).toEqual(entries)
    })
  })

  test('seeded random bytes decode or fail with a coded error, never anything else', () => {
    seeded(2_000, gen => {
      const bytes = prng.uint8Array(gen, prng.uint32(gen, 0, 24))
      try {
        readFrame(bytes)
      } catch (err) {
        expect(isTandemError(err, 'TANDEM_ERR_MALFORMED_MESSAGE')).toBe(true)
      }
    })
  })

  test('truncations of valid frames fail with a coded error', () => {
    const doc = new Y.Doc()
    doc.getText('t').insert(0, 'abc')
    const frame = writeSyncUpdate(Y.encodeStateAsUpdate(doc))
    for (let len = 0; len < frame.length; len++) {
      expect(() => readFrame(frame.subarray(0, len))).toThrow(expect.objectContaining({ code: 'TANDEM_ERR_MALFORMED_MESSAGE' }))
    }
  })
})

describe('document names', () => {
  test('percent-decoded, may contain slashes', () => {
    expect(documentNameFromPath('/a%2Fb/c%20d')).toBe('a/b/c d')
    expect(documentNameFromPath('/x'.padEnd(513, 'y'))).toHaveLength(512)
  })
  test.each([['/'], ['/%0A'], ['/a%00b'], ['/%E0%A4%A'], ['/' + 'x'.repeat(513)]])('%s is refused', path => {
    expect(() => documentNameFromPath(path)).toThrow(expect.objectContaining({ code: 'TANDEM_ERR_INVALID_DOCUMENT_NAME' }))
  })
})
