// Enforced locks: what they cost the server. `npm run bench:locks` (or `node
// bench/dist/bench/enforced-locks.js [--docs 10] [--clients 20] [--edits 40] [--runs 5] [--seed 7]`).
//
// D documents with C members each, in one process, driven through Document.applyUpdate (the path
// every WebSocket update takes), one update per event-loop turn so that each is relayed on its
// own. Each document has 5 guarded top-level texts, each held by one of the first five members,
// and 5 free ones; every member appends to one of the ten, picked by a seeded generator, so half
// the edits touch a guarded type and most of those come from a non-holder (undone, and relayed to
// the author too). The updates are made beforehand by real Y.Docs, so the figure is the server's
// CPU time (process.cpuUsage: user + system) per delivered update: one update relayed to one
// member. The same updates are applied again with no lock held, for the ratio. At the end, every
// guarded text must hold exactly what its holder wrote: no refused change lasted.
import * as Y from 'yjs'
import { pino } from 'pino'
import { Document, type DocumentMember } from '../server/document/document.js'
import type { SharedFrame } from '../server/transport/socket.js'
import type { AckTicket } from '../server/session/ack-order.js'
import type { LockInfo } from '../shared/tandem.js'
import { prng } from './stats.js'

interface Options { docs: number, clients: number, edits: number, runs: number, seed: number }

function parse (argv: string[]): Options {
  const options: Options = { docs: 10, clients: 20, edits: 40, runs: 5, seed: 7 }
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i]?.replace(/^--/, '') as keyof Options
    const value = Number(argv[i + 1])
    if (!(key in options) || !Number.isInteger(value) || value <= 0) throw new Error(`bad option ${argv[i]} ${argv[i + 1]}`)
    options[key] = value
  }
  return options
}

const GUARDED = ['g0', 'g1', 'g2', 'g3', 'g4']
const FREE = ['f0', 'f1', 'f2', 'f3', 'f4']

/** A member that counts what it is sent. */
class Member implements DocumentMember {
  delivered = 0
  /** Each member its own user: the client-id check runs as it does for authenticated sessions. */
  readonly durableOwner = true
  constructor (readonly id: string) {}
  get clientOwner (): string { return this.id }
  send (): void {}
  relay (_frame: SharedFrame): void { this.delivered++ }
  acknowledge (): void {}
  // every update is made whole beforehand: nothing is held
  hold (): AckTicket { return { done: false } }
  settle (): void {}
  fail (): void {}
}

interface Workload {
  /** Per document: the updates in the order they are applied, with their author's index. */
  docs: Array<Array<{ author: number, update: Uint8Array }>>
  /** Per document and guarded text: what its holder wrote (the expected content). */
  expected: Array<Map<string, string>>
}

/**
 * `blind`: every member writes wherever the generator says, so most guarded edits come from
 * non-holders and are undone (the worst case: clients that ignore the locks). `polite`: a
 * non-holder drawn to a guarded text writes to a free one instead, as an editor that makes
 * guarded types read-only does; the guard then only checks.
 */
type Mode = 'blind' | 'polite'

function workload (options: Options, mode: Mode): Workload {
  const random = prng(options.seed)
  const docs: Workload['docs'] = []
  const expected: Workload['expected'] = []
  for (let d = 0; d < options.docs; d++) {
    const clients = Array.from({ length: options.clients }, () => new Y.Doc())
    const queues = clients.map((doc) => {
      const updates: Uint8Array[] = []
      doc.on('update', (update: Uint8Array) => updates.push(update))
      return updates
    })
    const written = new Map<string, string>(GUARDED.map(name => [name, '']))
    for (let e = 0; e < options.edits; e++) {
      for (let c = 0; c < options.clients; c++) {
        let name = random() < 0.5 ? GUARDED[Math.floor(random() * 5)]! : FREE[Math.floor(random() * 5)]!
        if (mode === 'polite' && GUARDED.includes(name) && GUARDED.indexOf(name) !== c) name = FREE[GUARDED.indexOf(name)]!
        const text = `[${c}.${e}]`
        const doc = clients[c]!
        doc.getText(name).insert(doc.getText(name).length, text)
        // a holder's own text: each holder is alone in it (the others' edits are undone)
        if (GUARDED.indexOf(name) === c) written.set(name, written.get(name)! + text)
      }
    }
    const order: Workload['docs'][number] = []
    for (let e = 0; e < options.edits; e++) {
      for (let c = 0; c < options.clients; c++) order.push({ author: c, update: queues[c]![e]! })
    }
    docs.push(order)
    expected.push(written)
  }
  return { docs, expected }
}

const logger = pino({ level: 'silent' })
const turn = (): Promise<void> => new Promise(resolve => setImmediate(resolve))

async function run (work: Workload, options: Options, locked: boolean): Promise<{ cpuMs: number, delivered: number, undone: number, wrong: number }> {
  const docs = work.docs.map((_, d) => new Document(`doc-${d}`, logger, () => {}))
  const members = docs.map(doc => Array.from({ length: options.clients }, (_, c) => {
    const member = new Member(`session-${c}`)
    doc.addMember(member)
    return member
  }))
  if (locked) {
    for (const doc of docs) {
      GUARDED.forEach((name, holder) => doc.guards.acquired(lockOn(name, `session-${holder}`)))
    }
  }
  let undone = 0
  const longest = Math.max(...work.docs.map(order => order.length))
  const started = process.cpuUsage()
  for (let i = 0; i < longest; i++) {
    for (let d = 0; d < docs.length; d++) {
      const step = work.docs[d]![i]
      if (step === undefined) continue
      if (docs[d]!.applyUpdate(step.update, members[d]![step.author]!) !== null) undone++
    }
    await turn()
  }
  await turn()
  const used = process.cpuUsage(started)
  let delivered = 0
  for (const list of members) for (const member of list) delivered += member.delivered
  let wrong = 0
  if (locked) {
    docs.forEach((doc, d) => {
      for (const [name, text] of work.expected[d]!) if (doc.ydoc.getText(name).toString() !== text) wrong++
    })
  }
  for (const doc of docs) doc.destroy()
  return { cpuMs: (used.user + used.system) / 1000, delivered, undone, wrong }
}

function lockOn (name: string, sessionId: string): LockInfo {
  return { resource: `y:${name}`, token: 1, sessionId, userId: sessionId, name: sessionId, color: '', acquiredAt: 0, expiresAt: 0 }
}

function median (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]!
}

async function main (): Promise<void> {
  const options = parse(process.argv.slice(2))
  console.log(`enforced locks: ${options.docs} docs x ${options.clients} clients, ${options.docs * options.clients * options.edits} updates, 5 guarded + 5 free texts per doc, ${options.runs} runs (median)`)
  console.log('| workload | no lock held | 5 guarded types held per doc | ratio | updates partly undone | guarded texts with a change their holder did not write |')
  console.log('|---|---|---|---|---|---|')
  for (const mode of ['polite', 'blind'] as const) {
    const work = workload(options, mode)
    const perUpdate = { free: [] as number[], locked: [] as number[] }
    let last = { undone: 0, wrong: 0, delivered: 0 }
    // a warm-up of each, then alternating runs so that drift in the machine falls on both
    await run(work, options, false)
    await run(work, options, true)
    for (let r = 0; r < options.runs; r++) {
      const free = await run(work, options, false)
      const locked = await run(work, options, true)
      perUpdate.free.push(free.cpuMs * 1000 / free.delivered)
      perUpdate.locked.push(locked.cpuMs * 1000 / locked.delivered)
      last = locked
      if (locked.wrong > 0) throw new Error(`${locked.wrong} guarded texts hold changes their holder did not write`)
    }
    const free = median(perUpdate.free)
    const locked = median(perUpdate.locked)
    console.log(`| ${mode} | ${free.toFixed(2)} µs | ${locked.toFixed(2)} µs | ${(locked / free).toFixed(2)}x | ${last.undone} | ${last.wrong} |`)
  }
  console.log('CPU time (user + system) per delivered update: one update relayed to one member; members do not send (no sockets), so this is the document\'s share only.')
}

await main()
