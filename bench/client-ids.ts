import * as Y from 'yjs'
import { pino } from 'pino'
import { Document, type DocumentMember } from '../server/document/document.js'

/**
 * `npm run build && tsc -p bench/tsconfig.json && node bench/dist/bench/client-ids.js [ROUNDS]`:
 * what the client id ownership check (server/document/client-owners.ts, Document.newClients) costs on the
 * update path. Two shapes of 10,000 structs: one author inserting at the start (the shape of a
 * big offline edit), and 10,000 authors of one struct each (the worst case: a look-up per
 * struct). For each, the time to decode the update, and the time to decode and check it, taken
 * from an update the check refuses at its last author (so the check has walked every struct and
 * nothing is applied); their difference is the check. Medians of ROUNDS alternated rounds.
 */

const logger = pino({ level: 'silent' })

function member (user: string): DocumentMember {
  return { send () {}, relay () {}, acknowledge () {}, hold: () => ({ done: false }), settle () {}, fail () {}, clientOwner: user, durableOwner: true }
}

function median (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)] as number
}

/** 10,000 one-character inserts at position 0 by one author, and one struct by `last` (Yjs writes higher ids first). */
function oneAuthor (last: number): Uint8Array {
  const doc = new Y.Doc()
  doc.transact(() => { for (let i = 0; i < 10_000; i++) doc.getText('t').insert(0, 'x') })
  const tail = new Y.Doc()
  tail.clientID = last
  tail.getText('u').insert(0, 'y')
  return Y.mergeUpdates([Y.encodeStateAsUpdate(doc), Y.encodeStateAsUpdate(tail)])
}

/** One struct by each of 10,000 authors, ids 1..10,000 (id 1 written last). */
function manyAuthors (): Uint8Array {
  const parts: Uint8Array[] = []
  for (let i = 1; i <= 10_000; i++) {
    const doc = new Y.Doc()
    doc.clientID = i
    doc.getText('t').insert(0, 'x')
    parts.push(Y.encodeStateAsUpdate(doc))
  }
  return Y.mergeUpdates(parts)
}

function measure (label: string, update: Uint8Array, owned: number, rounds: number): void {
  const doc = new Document('bench', logger, () => {})
  doc.owners.claim(owned, 'victim', true)
  const attacker = member('mallory')
  const decode = (): void => { Y.decodeUpdate(update) }
  const refuse = (): void => {
    try {
      doc.applyUpdate(update, attacker)
    } catch {
      // refused at the last author, as intended
    }
  }
  decode()
  refuse()
  // alternated, each round measured on its own: drift on a shared machine hits both alike
  const decodes: number[] = []
  const refusals: number[] = []
  const differences: number[] = []
  for (let i = 0; i < rounds; i++) {
    let started = performance.now()
    decode()
    const d = performance.now() - started
    started = performance.now()
    refuse()
    const r = performance.now() - started
    decodes.push(d)
    refusals.push(r)
    differences.push(r - d)
  }
  const structs = Y.decodeUpdate(update).structs.length
  const check = median(differences)
  console.log(`${label}: ${structs} structs, ${update.byteLength} bytes; decode ${median(decodes).toFixed(2)} ms, decode + check ${median(refusals).toFixed(2)} ms, check ${check.toFixed(2)} ms (${(1e6 * check / structs).toFixed(0)} ns per struct)`)
  doc.destroy()
}

const rounds = Number(process.argv[2] ?? '30')
// the refused author is the one Yjs writes last: the check walks every struct before it
const LAST = 1
measure('one author', oneAuthor(LAST), LAST, rounds)
measure('10,000 authors', manyAuthors(), LAST, rounds)
