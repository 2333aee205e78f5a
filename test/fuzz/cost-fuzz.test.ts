/**
 * A fuzzer that looks for cost, not only crashes (issue 23). Seeded random and structured Yjs
 * updates go through the server's real update path (Document.applyUpdate: decoding, the update
 * guard, integration); each input's CPU time is compared with the CPU time of the same number
 * of bytes of ordinary edits (13-character appends, one update each, as the cost bench's
 * baseline), measured in the same process. An input fails when it costs more than
 * FLOOR_MS + FACTOR x that: generous, so that a noisy shared machine does not fail it, and
 * still far below what a super-linear path costs at the larger sizes.
 *
 * `npm test` runs a small pass (a few seconds); COST_FUZZ_SCALE=10 (or more) makes every input
 * larger, COST_FUZZ_RUNS more of them, and COST_FUZZ_SEED replays a failure (the seed is printed
 * with every failure). Each figure is the least of REPEATS measurements.
 */
import { describe, expect, test } from 'vitest'
import * as fc from 'fast-check'
import * as Y from 'yjs'
import { Document, type DocumentMember } from '../../server/document/document.js'
import { splitUpdate } from '../../client/split-update.js'
import { testLogger } from '../support/helpers.js'

const SCALE = Number(process.env.COST_FUZZ_SCALE ?? 1)
const RUNS = Number(process.env.COST_FUZZ_RUNS ?? 25)
const SEED = Number(process.env.COST_FUZZ_SEED ?? (process.env.COST_FUZZ_SCALE !== undefined ? Date.now() % 2 ** 31 : 20_261_206))
const FACTOR = 50
const FLOOR_MS = 25
const REPEATS = 3

/** A member that ignores what the document sends it (nothing is relayed: it is the only one). */
const member: DocumentMember = { send () {}, relay () {}, acknowledge () {}, hold: () => ({ done: false }), settle () {}, fail () {}, clientOwner: 'user', durableOwner: true }

/**
 * CPU time (user + system) of `work`, in ms: the least of up to REPEATS runs, each on fresh
 * state. It stops early once a run is within `limitMs` (the input passes), or is past four
 * times it (no noise explains that, and a slow input should not be run three times).
 */
function cpuMs (prepare: () => () => void, limitMs?: number): number {
  let best = Infinity
  for (let i = 0; i < REPEATS; i++) {
    const work = prepare()
    const before = process.cpuUsage()
    work()
    const used = process.cpuUsage(before)
    const ms = (used.user + used.system) / 1000
    best = Math.min(best, ms)
    if (limitMs !== undefined && (best <= limitMs || ms > 4 * limitMs)) break
  }
  return best
}

/** Applies updates in order to a fresh Document, as a session would. */
function applyAll (updates: Uint8Array[]): () => () => void {
  return () => {
    const doc = new Document('cost-fuzz', testLogger, () => {})
    doc.setStatus('ready')
    return () => {
      for (const update of updates) {
        try {
          doc.applyUpdate(update, member)
        } catch {
          // refused inputs cost what they cost: the figure is the CPU either way
        }
      }
    }
  }
}

/** Ordinary edits of about `bytes` bytes: 13-character appends by a few authors, one update each. */
function ordinaryUpdates (bytes: number): Uint8Array[] {
  const updates: Uint8Array[] = []
  const docs = [1, 2, 3].map(id => { const d = new Y.Doc(); d.clientID = 100 + id; return d })
  let size = 0
  for (let i = 0; size < bytes; i++) {
    const doc = docs[i % docs.length] as Y.Doc
    const text = doc.getText(`t${i % docs.length}`)
    const before = Y.encodeStateVector(doc)
    text.insert(text.length, `~${String(i).padStart(12, '0')}`)
    const update = Y.encodeStateAsUpdate(doc, before)
    updates.push(update)
    size += update.byteLength
  }
  return updates
}

/** ms of CPU per byte of ordinary edits, from a 32 KiB sample. */
const ORDINARY_MS_PER_BYTE = ((): number => {
  const updates = ordinaryUpdates(32 * 1024)
  const bytes = updates.reduce((sum, u) => sum + u.byteLength, 0)
  return cpuMs(applyAll(updates)) / bytes
})()

function bound (bytes: number): number {
  return FLOOR_MS + FACTOR * ORDINARY_MS_PER_BYTE * bytes
}

// ---- structured inputs -----------------------------------------------------------------------

type Op =
  | { kind: 'insert', at: number, text: string }
  | { kind: 'insert-front', count: number }
  | { kind: 'delete', at: number, length: number }
  | { kind: 'map', key: string, value: unknown }
  | { kind: 'nest', depth: number }
  | { kind: 'array', at: number, values: unknown[] }
  | { kind: 'exchange' }

const size = (n: number): number => Math.max(1, Math.round(n * SCALE))

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), text: fc.string({ minLength: 1, maxLength: 12 }) }),
  fc.record({ kind: fc.constant('insert-front' as const), count: fc.integer({ min: 1, max: size(300) }) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 40 }) }),
  fc.record({ kind: fc.constant('map' as const), key: fc.string({ maxLength: 6 }), value: fc.jsonValue({ maxDepth: 3 }) }),
  // deeper, Yjs's own gc of a replaced nest overflows the stack (ContentType.gc recursion at
  // about 8,000 levels): the generator's Y.Doc would fail before the server sees anything
  fc.record({ kind: fc.constant('nest' as const), depth: fc.integer({ min: 1, max: Math.min(size(200), 1_500) }) }),
  fc.record({ kind: fc.constant('array' as const), at: fc.nat(), values: fc.array(fc.oneof(fc.integer(), fc.string({ maxLength: 8 })), { minLength: 1, maxLength: 8 }) }),
  fc.record({ kind: fc.constant('exchange' as const) })
)

/** How the edits reach the server. */
type Delivery = 'one-update' | 'per-transaction' | 'missing-head' | 'parts-reversed'

interface Input {
  clients: number
  ops: Op[]
  delivery: Delivery
}

const input: fc.Arbitrary<Input> = fc.record({
  clients: fc.integer({ min: 1, max: 3 }),
  // the scale grows each step, not their number: an input's size grows linearly with it
  ops: fc.array(op, { minLength: 1, maxLength: 40 }),
  delivery: fc.constantFrom<Delivery>('one-update', 'per-transaction', 'missing-head', 'parts-reversed')
})

/** Runs the edit script on `clients` peers; returns the updates the server is sent. */
function updatesOf ({ clients, ops, delivery }: Input): Uint8Array[] {
  const docs = Array.from({ length: clients }, (_, i) => { const d = new Y.Doc(); d.clientID = 1_000 + i; return d })
  const transactions: Uint8Array[] = []
  for (const doc of docs) doc.on('update', (u: Uint8Array, origin: unknown) => { if (origin !== 'exchange') transactions.push(u) })
  ops.forEach((step, i) => {
    const doc = docs[i % clients] as Y.Doc
    const text = doc.getText('t')
    switch (step.kind) {
      case 'insert': text.insert(step.at % (text.length + 1), step.text); break
      case 'insert-front': doc.transact(() => { for (let k = 0; k < step.count; k++) text.insert(0, 'x') }); break
      case 'delete': if (text.length > 0) text.delete(step.at % text.length, Math.min(step.length, text.length - step.at % text.length)); break
      case 'map': doc.getMap('m').set(step.key, step.value); break
      case 'nest': doc.transact(() => {
        let map = doc.getMap('n')
        for (let k = 0; k < step.depth; k++) { const child = new Y.Map<unknown>(); map.set('k', child); map = child }
      }); break
      case 'array': { const array = doc.getArray('a'); array.insert(step.at % (array.length + 1), step.values); break }
      case 'exchange': for (const other of docs) if (other !== doc) Y.applyUpdate(doc, Y.encodeStateAsUpdate(other, Y.encodeStateVector(doc)), 'exchange')
    }
  })
  for (const doc of docs.slice(1)) Y.applyUpdate(docs[0] as Y.Doc, Y.encodeStateAsUpdate(doc), 'exchange')
  const whole = Y.encodeStateAsUpdate(docs[0] as Y.Doc)
  switch (delivery) {
    case 'one-update': return [whole]
    case 'per-transaction': return transactions
    // the first half of one author's history is never sent: the rest waits for it for ever
    case 'missing-head': {
      const sv = new Map([...Y.decodeStateVector(Y.encodeStateVector(docs[0] as Y.Doc))].map(([client, clock]) => [client, Math.floor(clock / 2)]))
      return [Y.diffUpdate(whole, encodeStateVector(sv))]
    }
    // dependencies arrive last: every part but the first waits
    case 'parts-reversed': return splitUpdate(whole, 512).reverse()
  }
}

function encodeStateVector (clocks: Map<number, number>): Uint8Array {
  const bytes: number[] = []
  const varUint = (n: number): void => {
    while (n > 0x7f) { bytes.push(0x80 | (n & 0x7f)); n = Math.floor(n / 128) }
    bytes.push(n)
  }
  varUint(clocks.size)
  for (const [client, clock] of clocks) { varUint(client); varUint(clock) }
  return Uint8Array.from(bytes)
}

describe('cost fuzzer', () => {
  test('ordinary edits are calibrated', () => {
    expect(ORDINARY_MS_PER_BYTE).toBeGreaterThan(0)
    expect(Number.isFinite(ORDINARY_MS_PER_BYTE)).toBe(true)
  })

  test(`no input costs more than ${FLOOR_MS} ms + ${FACTOR}x ordinary edits of its size`, () => {
    let worst = { ratio: 0, bytes: 0, ms: 0, delivery: '' }
    const result = fc.check(fc.property(input, value => {
      const updates = updatesOf(value)
      const bytes = updates.reduce((sum, u) => sum + u.byteLength, 0)
      const ms = cpuMs(applyAll(updates), bound(bytes))
      const ratio = ms / (ORDINARY_MS_PER_BYTE * bytes)
      // tiny inputs are all fixed cost: their ratio says nothing
      if (bytes >= 512 && ratio > worst.ratio) worst = { ratio, bytes, ms, delivery: value.delivery }
      if (process.env.COST_FUZZ_VERBOSE !== undefined) console.info(`${value.delivery} ${bytes} bytes ${ms.toFixed(1)} ms (${ratio.toFixed(1)}x ordinary)`)
      return ms <= bound(bytes)
    }), { seed: SEED, numRuns: RUNS, endOnFailure: true }) // no shrinking: every try re-runs a costly input
    // the figures a run reports, failing or not: CPU per byte against ordinary edits
    console.info(`cost fuzzer: seed ${SEED}, scale ${SCALE}, ${result.numRuns} inputs; ordinary edits ${(ORDINARY_MS_PER_BYTE * 1e6).toFixed(0)} ns/byte; ` +
      `worst ${worst.ratio.toFixed(1)}x ordinary (${worst.bytes} bytes, ${worst.ms.toFixed(1)} ms, ${worst.delivery})`)
    if (result.failed) {
      const counterexample = result.counterexample?.[0]
      const updates = counterexample === undefined ? [] : updatesOf(counterexample)
      const bytes = updates.reduce((sum, u) => sum + u.byteLength, 0)
      throw new Error(`cost fuzzer: an input of ${bytes} bytes cost more than ${bound(bytes).toFixed(1)} ms ` +
        `(${FLOOR_MS} ms + ${FACTOR}x ordinary edits); replay with COST_FUZZ_SEED=${SEED} COST_FUZZ_SCALE=${SCALE} COST_FUZZ_RUNS=${RUNS}\n` +
        `${fc.defaultReportMessage(result) ?? ''}`.slice(0, 2_000))
    }
  }, 600_000)
})
