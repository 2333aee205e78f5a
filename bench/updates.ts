import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import { prng } from './stats.js'

/**
 * Yjs updates for the load generator. A fan-out client only ever appends to its own text, so its
 * k-th update is known in advance: one Item with ContentString whose left origin is the last
 * character of its previous insert. Encoding that by hand costs about a microsecond, where a Y.Doc
 * per client would cost the load generator far more; `checkInsertEncoding` proves at start-up that
 * the bytes equal what a real Y.Doc emits.
 *
 * Yjs update v1 layout for one struct (yjs src/utils/encoding.js, src/structs/Item.js):
 *   varUint clients=1, varUint structs=1, varUint client, varUint clock,
 *   uint8 info (4 = ContentString, | 0x80 when a left origin follows),
 *   [varUint originClient, varUint originClock]          when k > 0
 *   [varUint 1 (parent is a root type), varString name]  when k = 0
 *   varString text, varUint 0 (empty delete set)
 */

/** Name of the shared Y.Text every load-generator client edits. */
export const TEXT_NAME = 'text'

/** Every inserted edit is a marker of this many ASCII characters: `~` + 5 digits client + 7 digits seq. */
export const MARKER_LENGTH = 13
const TILDE = 0x7e

/** The marker text for client `client` (0..99999), sequence `seq` (0..9999999). */
export function marker (client: number, seq: number): string {
  return `~${String(client).padStart(5, '0')}${String(seq).padStart(7, '0')}`
}

/** The update by which client `clientId` appends its `seq`-th marker to its own text. */
export function insertUpdate (clientId: number, seq: number, text: string): Uint8Array {
  const clock = seq * MARKER_LENGTH
  const encoder = encoding.createEncoder()
  encoding.writeVarUint(encoder, 1)
  encoding.writeVarUint(encoder, 1)
  encoding.writeVarUint(encoder, clientId)
  encoding.writeVarUint(encoder, clock)
  if (seq > 0) {
    encoding.writeUint8(encoder, 4 | 0x80)
    encoding.writeVarUint(encoder, clientId)
    encoding.writeVarUint(encoder, clock - 1)
  } else {
    encoding.writeUint8(encoder, 4)
    encoding.writeVarUint(encoder, 1)
    encoding.writeVarString(encoder, TEXT_NAME)
  }
  encoding.writeVarString(encoder, text)
  encoding.writeVarUint(encoder, 0)
  return encoding.toUint8Array(encoder)
}

/** Throws unless the hand-made updates are byte for byte what Yjs itself produces. */
export function checkInsertEncoding (): void {
  const doc = new Y.Doc()
  doc.clientID = 123456789
  const produced: Uint8Array[] = []
  doc.on('update', (update: Uint8Array) => produced.push(update))
  const text = doc.getText(TEXT_NAME)
  for (let seq = 0; seq < 4; seq++) text.insert(text.length, marker(7, seq))
  produced.forEach((update, seq) => {
    const mine = insertUpdate(doc.clientID, seq, marker(7, seq))
    if (Buffer.compare(Buffer.from(update), Buffer.from(mine)) !== 0) {
      throw new Error(`hand-encoded update ${seq} differs from Yjs: ${Buffer.from(mine).toString('hex')} vs ${Buffer.from(update).toString('hex')}`)
    }
  })
  doc.destroy()
}

/** One marker found in a received frame. */
export interface Found { client: number, seq: number }

/**
 * Calls `found` for every marker in `data`. Yjs writes string content as raw UTF-8, so the marker
 * text appears verbatim in any update that carries it, however a server re-encodes or merges it.
 */
export function scanMarkers (data: Uint8Array, found: (client: number, seq: number) => void): void {
  const end = data.length - MARKER_LENGTH
  for (let i = 0; i <= end; i++) {
    if (data[i] !== TILDE) continue
    let client = 0
    let seq = 0
    let ok = true
    for (let j = 1; j < MARKER_LENGTH; j++) {
      const d = (data[i + j] as number) - 0x30
      if (d < 0 || d > 9) { ok = false; break }
      if (j <= 5) client = client * 10 + d
      else seq = seq * 10 + d
    }
    if (!ok) continue
    found(client, seq)
    i += MARKER_LENGTH - 1
  }
}

/**
 * A document of about `bytes` encoded bytes, built the way people write: seeded inserts of
 * paragraphs at random places, with some deletions, by a few authors.
 */
export function bigDocument (bytes: number, seed: number): Uint8Array {
  const random = prng(seed)
  const doc = new Y.Doc()
  const text = doc.getText(TEXT_NAME)
  const words = ['tandem', 'document', 'edit', 'presence', 'lock', 'yjs', 'sync', 'update', 'server', 'client', 'the', 'a', 'of', 'and']
  let size = 0
  let round = 0
  while (size < bytes) {
    doc.clientID = 1000 + (round % 7)
    for (let i = 0; i < 200; i++) {
      let paragraph = ''
      const n = 20 + Math.floor(random() * 60)
      for (let w = 0; w < n; w++) paragraph += words[Math.floor(random() * words.length)] + ' '
      text.insert(Math.floor(random() * (text.length + 1)), paragraph + '\n')
      if (random() < 0.1 && text.length > 100) text.delete(Math.floor(random() * (text.length - 50)), 1 + Math.floor(random() * 40))
    }
    round++
    size = Y.encodeStateAsUpdate(doc).byteLength
  }
  const update = Y.encodeStateAsUpdate(doc)
  doc.destroy()
  return update
}
