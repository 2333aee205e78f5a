import WebSocket from 'ws'
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import { writeAwareness, writeSyncUpdate, writeTandem } from '../shared/messages.js'
import { writeAwarenessUpdate } from '../shared/awareness.js'
import { MESSAGE_AWARENESS } from '../shared/constants.js'
import { insertUpdate, marker, MARKER_LENGTH, TEXT_NAME } from './updates.js'
import { cpuMicros } from './procfs.js'
import type { FanoutResult } from './workloads.js'

/**
 * The cost bench (issue 23): for each family of hostile (or merely unusual) input, the server CPU
 * it costs per KiB and what it does to an unrelated document's fan-out p99, beside ordinary edits
 * of about the same size and beside no input at all.
 *
 * Per family, on a fresh Tandem server (loopback, default limits except the per-address
 * connection cap, since every socket comes from 127.0.0.1):
 *   cost phase       the attacking connections open (their handshakes are not counted, except
 *                    where the handshake is the input) and the server goes quiet; the input is
 *                    sent to its own document(s); the server's CPU (/proc) is read from before
 *                    the first byte until each attacking connection's round trip
 *                    (query-awareness answered, or the socket closed) and the server's CPU has
 *                    been flat for QUIET_MS; capped at maxWaitMs (then marked "unfinished").
 *   bystander phase  the load generator runs a 1 doc x 10 clients fan-out at 5 edits/s; once
 *                    its measured window starts, the same input is sent again to fresh
 *                    documents (its connections open inside the window); the bystander's p99
 *                    over its window is the figure.
 * Everything is bounded: counts are fixed by the scale, every wait has a deadline.
 */

/** Sizes of one bench invocation. */
export interface AdversarialOptions {
  /** Multiplies every family's count; 1 is the size of the issue's reproductions. */
  scale: number
  /** Bystander fan-out window and its warm-up and drain, ms. */
  warmupMs: number
  durationMs: number
  drainMs: number
  /** The longest one cost phase may take. */
  maxWaitMs: number
  /** How long tiny-lease locks are held in their phase. */
  holdMs: number
}

/** One family's result. */
export interface FamilyResult {
  family: string
  description: string
  inputBytes: number
  cpuMs: number
  finished: boolean
  bystanderP99: number
  bystanderLost: number
  bystanderMax: number
  /** Set when the family's run failed (e.g. the bystander could not even connect). */
  failure?: string
}

/** An attack: the frames each connection sends, by document, and what to do after. */
interface Attack {
  /** One entry per connection: its document, query and frames. */
  connections: Array<{ doc: string, tandem?: boolean, frames: Uint8Array[], resetAfterHandshake?: boolean }>
  /** Bytes the input is counted as (frames, plus a nominal handshake for connection floods). */
  bytes: number
  /** Keep the connections open this long after the round trip (locks with tiny leases). */
  holdMs?: number
}

interface Family {
  key: string
  description: (scale: number) => string
  build: (scale: number, prefix: string) => Attack
}

const QUIET_MS = 300
/** What a connection's handshake is counted as, for the floods of connections. */
const HANDSHAKE_BYTES = 300
const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))
const n = (base: number, scale: number): number => Math.max(1, Math.round(base * scale))

/** Splits frames over connections of at most `perConnection` frames (the default burst is 1,000). */
function spread (doc: string, frames: Uint8Array[], perConnection = 900): Attack['connections'] {
  const connections: Attack['connections'] = []
  for (let i = 0; i < frames.length; i += perConnection) connections.push({ doc, frames: frames.slice(i, i + perConnection) })
  return connections
}

const total = (frames: Uint8Array[]): number => frames.reduce((sum, f) => sum + f.byteLength, 0)

/** `count` markers appended by one client, as one hand-encoded update (they chain on each other). */
function chainedUpdate (clientId: number, firstSeq: number, count: number): Uint8Array {
  const encoder = encoding.createEncoder()
  encoding.writeVarUint(encoder, 1)
  encoding.writeVarUint(encoder, count)
  encoding.writeVarUint(encoder, clientId)
  encoding.writeVarUint(encoder, firstSeq * MARKER_LENGTH)
  for (let i = 0; i < count; i++) {
    const clock = (firstSeq + i) * MARKER_LENGTH
    encoding.writeUint8(encoder, 4 | 0x80)
    encoding.writeVarUint(encoder, clientId)
    encoding.writeVarUint(encoder, clock - 1)
    encoding.writeVarString(encoder, marker(0, firstSeq + i))
  }
  encoding.writeVarUint(encoder, 0)
  return encoding.toUint8Array(encoder)
}

/** Ordinary edits: `bytes` of marker appends by authors of at most 900 edits each. */
function ordinary (bytes: number, doc: string, firstId: number): Attack {
  const frames: Uint8Array[] = []
  let size = 0
  for (let i = 0; size < bytes; i++) {
    const frame = writeSyncUpdate(insertUpdate(firstId + Math.floor(i / 900), i % 900, marker(1, i)))
    frames.push(frame)
    size += frame.byteLength
  }
  return { connections: spread(doc, frames), bytes: size }
}

/** Families in table order; the first two are the baselines. */
export const FAMILIES: Family[] = [
  {
    key: 'none',
    description: () => 'baseline: no input',
    build: () => ({ connections: [], bytes: 0 })
  },
  {
    key: 'ordinary',
    // never below 32 KiB: the CPU clock ticks in 10 ms, and this is every ratio's denominator
    description: s => `baseline: ${n(64, Math.max(s, 0.5))} KiB of ordinary edits (13-character appends, 900 per connection)`,
    build: (s, prefix) => ordinary(n(64, Math.max(s, 0.5)) * 1024, `${prefix}-ordinary`, 1_000)
  },
  {
    key: 'large-update',
    description: s => `one update of ${n(10_000, s)} one-character inserts at position 0 (one transaction)`,
    build: (s, prefix) => {
      const doc = new Y.Doc()
      const text = doc.getText(TEXT_NAME)
      doc.transact(() => { for (let i = 0; i < n(10_000, s); i++) text.insert(0, 'x') })
      const frames = [writeSyncUpdate(Y.encodeStateAsUpdate(doc))]
      return { connections: [{ doc: `${prefix}-large`, frames }], bytes: total(frames) }
    }
  },
  {
    key: 'pending-tiny',
    description: s => `6 connections x ${n(990, s)} tiny updates depending on content never sent`,
    build: (s, prefix) => {
      const connections: Attack['connections'] = []
      for (let c = 0; c < 6; c++) {
        const frames: Uint8Array[] = []
        // seq 0 is never sent: every later marker's left origin is missing
        for (let i = 1; i <= n(990, s); i++) frames.push(writeSyncUpdate(insertUpdate(7_000 + c, i, marker(c, i))))
        connections.push({ doc: `${prefix}-pending-tiny`, frames })
      }
      return { connections, bytes: connections.reduce((sum, c) => sum + total(c.frames), 0) }
    }
  },
  {
    key: 'pending-big',
    description: s => `one frame of ${n(60_000, s)} items depending on content never sent`,
    build: (s, prefix) => {
      const frames = [writeSyncUpdate(chainedUpdate(8_000, 1, n(60_000, s)))]
      return { connections: [{ doc: `${prefix}-pending-big`, frames }], bytes: total(frames) }
    }
  },
  {
    key: 'deep-nesting',
    description: s => `one update of maps nested ${n(5_000, s)} deep`,
    build: (s, prefix) => {
      const doc = new Y.Doc()
      doc.transact(() => {
        let map = doc.getMap('root')
        for (let i = 0; i < n(5_000, s); i++) {
          const child = new Y.Map<unknown>()
          map.set('k', child)
          map = child
        }
      })
      const frames = [writeSyncUpdate(Y.encodeStateAsUpdate(doc))]
      return { connections: [{ doc: `${prefix}-deep`, frames }], bytes: total(frames) }
    }
  },
  {
    key: 'huge-awareness',
    description: s => `4 awareness states of ${n(1024, s)} KiB each from one connection, with 9 others in the document`,
    build: (s, prefix) => {
      const doc = `${prefix}-awareness`
      const state = JSON.stringify({ user: { name: 'x' }, blob: 'y'.repeat(n(1024, s) * 1024) })
      const frames = [1, 2, 3, 4].map(clock => writeAwareness(writeAwarenessUpdate([{ clientId: 9_000, clock, state }])))
      const watchers = Array.from({ length: 9 }, () => ({ doc, frames: [] as Uint8Array[] }))
      return { connections: [...watchers, { doc, frames }], bytes: total(frames) }
    }
  },
  {
    key: 'tiny-leases',
    description: s => `10 connections x ${n(990, s)} locks with ttlMs 10, held for the phase`,
    build: (s, prefix) => {
      const connections: Attack['connections'] = []
      for (let c = 0; c < 10; c++) {
        const frames: Uint8Array[] = []
        for (let i = 0; i < n(990, s); i++) frames.push(writeTandem({ type: 'lock-acquire', id: i + 1, resource: `r-${c}-${i}`, ttlMs: 10, waitMs: 0 }))
        connections.push({ doc: `${prefix}-locks-${c}`, tandem: true, frames })
      }
      return { connections, bytes: connections.reduce((sum, c) => sum + total(c.frames), 0) }
    }
  },
  {
    key: 'many-documents',
    description: s => `${n(300, s)} connections to distinct documents, each reset after the handshake (counted as ${HANDSHAKE_BYTES} bytes each)`,
    build: (s, prefix) => {
      const connections = Array.from({ length: n(300, s) }, (_, i) => ({ doc: `${prefix}-many-${i}`, frames: [] as Uint8Array[], resetAfterHandshake: true }))
      return { connections, bytes: connections.length * HANDSHAKE_BYTES }
    }
  },
  {
    key: 'victim-clock',
    description: s => `${n(900, s)} updates at another writer's next clocks`,
    build: (s, prefix) => {
      const doc = `${prefix}-victim`
      const victim = [0, 1, 2].map(seq => writeSyncUpdate(insertUpdate(10_000, seq, marker(2, seq))))
      const frames: Uint8Array[] = []
      for (let i = 0; i < n(900, s); i++) frames.push(writeSyncUpdate(insertUpdate(10_000, 3 + i, marker(3, i))))
      return { connections: [{ doc, frames: victim }, ...spread(doc, frames)], bytes: total(frames) }
    }
  }
]

/**
 * Opens an attack's connections and waits for each one's first frame from the server (its sync
 * step 1), so that the handshakes are not counted as the input's cost, except where the
 * handshake is the input (resetAfterHandshake). `fire` then sends every frame and resolves once
 * each connection's round trip came back (or it closed) and `holdMs` passed; false when the
 * deadline passed first.
 */
async function open (url: string, attack: Attack, deadline: number): Promise<{ fire: (deadline: number) => Promise<boolean>, close: () => void }> {
  const sockets: WebSocket[] = []
  const close = (): void => { for (const socket of sockets) socket.terminate() }
  const waits: Array<Promise<void>> = []
  const fires: Array<() => Promise<void>> = []
  const flood = attack.connections.filter(c => c.resetAfterHandshake === true)
  for (const connection of attack.connections) {
    if (connection.resetAfterHandshake === true) continue
    const query = connection.tandem === true ? '?tandem=1' : ''
    const socket = new WebSocket(`${url}/${encodeURIComponent(connection.doc)}${query}`, { perMessageDeflate: false, maxPayload: 512 * 1024 * 1024 })
    sockets.push(socket)
    let greeted: () => void = () => {}
    let answered: () => void = () => {}
    let asked = false
    const ended = new Promise<void>(resolve => { socket.on('close', () => resolve()); socket.on('error', () => resolve()) })
    waits.push(Promise.race([ended, new Promise<void>(resolve => { greeted = resolve })]))
    socket.on('message', (data: Buffer) => {
      greeted()
      if (asked && data[0] === MESSAGE_AWARENESS) answered()
    })
    fires.push(() => {
      if (socket.readyState !== WebSocket.OPEN) return Promise.resolve()
      for (const frame of connection.frames) socket.send(frame)
      // frames are handled in order: the answer to this comes after all of them
      asked = true
      socket.send(Uint8Array.of(3))
      return Promise.race([ended, new Promise<void>(resolve => { answered = resolve })])
    })
  }
  await Promise.race([Promise.all(waits), sleep(Math.max(0, deadline - Date.now()))])
  const fire = async (fireDeadline: number): Promise<boolean> => {
    const resets = flood.map(connection => new Promise<void>(resolve => {
      const socket = new WebSocket(`${url}/${encodeURIComponent(connection.doc)}`, { perMessageDeflate: false })
      sockets.push(socket)
      socket.on('message', () => { socket.terminate(); resolve() })
      socket.on('close', () => resolve())
      socket.on('error', () => resolve())
    }))
    const all = Promise.all([...fires.map(f => f()), ...resets]).then(() => true)
    const finished = await Promise.race([all, sleep(Math.max(0, fireDeadline - Date.now())).then(() => false)])
    if (attack.holdMs !== undefined) await sleep(attack.holdMs)
    return finished
  }
  return { fire, close }
}

/** Resolves once process `pid` used no CPU for QUIET_MS (or at `deadline`); false at the deadline. */
async function quiescent (pid: number, deadline: number): Promise<boolean> {
  let last = cpuMicros(pid)
  while (Date.now() < deadline) {
    await sleep(QUIET_MS)
    const now = cpuMicros(pid)
    if (now === last) return true
    last = now
  }
  return false
}

/** What the runner lends this bench: a fresh Tandem server per family and the load generator. */
export interface AdversarialHost {
  withTandem: <T>(work: (server: { url: string, pid: number }) => Promise<T>) => Promise<T>
  fanout: (url: string, pid: number, spec: { docs: number, perDoc: number, rate: number, warmupMs: number, durationMs: number, drainMs: number, seed: number, prefix: string }) => Promise<FanoutResult>
  log: (line: string) => void
}

/** Runs every family in `keys` (all when empty). */
export async function runAdversarial (host: AdversarialHost, options: AdversarialOptions, keys: string[], seed: number): Promise<FamilyResult[]> {
  const results: FamilyResult[] = []
  for (const family of FAMILIES.filter(f => keys.length === 0 || keys.includes(f.key) || f.key === 'none' || f.key === 'ordinary')) {
    host.log(`adversarial ${family.key}: ${family.description(options.scale)}`)
    let cost: Pick<FamilyResult, 'inputBytes' | 'cpuMs' | 'finished'> | undefined
    const result = await host.withTandem(async ({ url, pid }) => {
      const costAttack = family.build(options.scale, `cost-${family.key}`)
      if (family.key === 'tiny-leases') costAttack.holdMs = options.holdMs
      const opened = await open(url, costAttack, Date.now() + options.maxWaitMs)
      await quiescent(pid, Date.now() + options.maxWaitMs)
      const before = cpuMicros(pid)
      const deadline = Date.now() + options.maxWaitMs
      const fired = await opened.fire(deadline)
      const settled = await quiescent(pid, deadline)
      const cpuMs = (cpuMicros(pid) - before) / 1000
      cost = { inputBytes: costAttack.bytes, cpuMs, finished: fired && settled }
      opened.close()
      await quiescent(pid, Date.now() + options.maxWaitMs)

      // the bystander: its window opens after warmupMs (+20 ms of scheduling)
      const bystander = host.fanout(url, pid, { docs: 1, perDoc: 10, rate: 5, warmupMs: options.warmupMs, durationMs: options.durationMs, drainMs: options.drainMs, seed, prefix: `bystander-${family.key}` })
      await sleep(options.warmupMs + 400)
      const attack = family.build(options.scale, `during-${family.key}`)
      if (family.key === 'tiny-leases') attack.holdMs = Math.max(0, options.durationMs - 600)
      const during = await open(url, attack, Date.now() + options.durationMs)
      await during.fire(Date.now() + options.durationMs + options.drainMs)
      const fan = await bystander
      during.close()
      return {
        family: family.key,
        description: family.description(options.scale),
        inputBytes: costAttack.bytes,
        cpuMs,
        finished: fired && settled,
        bystanderP99: fan.p99,
        bystanderLost: fan.lost,
        bystanderMax: fan.max
      }
    }).catch((err: unknown): FamilyResult => ({
      // a failure is a result too: a server that stalls past the bystander's 30 s handshake
      family: family.key,
      description: family.description(options.scale),
      inputBytes: cost?.inputBytes ?? NaN,
      cpuMs: cost?.cpuMs ?? NaN,
      finished: cost?.finished ?? false,
      bystanderP99: NaN,
      bystanderLost: NaN,
      bystanderMax: NaN,
      failure: (err as Error).message.split('\n')[0]
    }))
    host.log(`  ${result.family}: ${(result.inputBytes / 1024).toFixed(1)} KiB, CPU ${result.cpuMs.toFixed(0)} ms${result.finished ? '' : ' (unfinished)'}, bystander p99 ${result.bystanderP99.toFixed(2)} ms, lost ${result.bystanderLost}`)
    results.push(result)
  }
  return results
}

/** The markdown table of the results, with the ratios to the baselines and the goals of issue 23. */
export function renderAdversarial (results: FamilyResult[]): string[] {
  const none = results.find(r => r.family === 'none')
  const ordinaryResult = results.find(r => r.family === 'ordinary')
  const perKiB = (r: FamilyResult): number => r.inputBytes > 0 ? r.cpuMs / (r.inputBytes / 1024) : NaN
  const ordinaryPerKiB = ordinaryResult === undefined ? NaN : perKiB(ordinaryResult)
  const fixed = (value: number, digits: number): string => Number.isFinite(value) ? value.toFixed(digits) : '–'
  const lines = [
    'Adversarial inputs (issue 23): server CPU per KiB of input, and an unrelated document\'s fan-out p99 (1 doc x 10 clients, 5 edits/s) while the input arrives. Goals: CPU per KiB at most 10x ordinary edits\', bystander p99 at most 2x the baseline\'s.',
    '',
    '| family | input | input KiB | server CPU, ms | CPU ms per KiB | ÷ ordinary edits | bystander p99, ms | ÷ no input | bystander lost / max ms |',
    '|---|---|---|---|---|---|---|---|---|'
  ]
  const failures: string[] = []
  for (const r of results) {
    const ratio = perKiB(r) / ordinaryPerKiB
    const p99Ratio = none === undefined ? NaN : r.bystanderP99 / none.bystanderP99
    const flag = (value: number, limit: number): string => Number.isFinite(value) ? `${value.toFixed(2)}x${value > limit ? ' **over**' : ''}` : '–'
    if (r.failure !== undefined) failures.push(`${r.family}: ${r.failure}`)
    lines.push(`| ${r.family} | ${r.description} | ${fixed(r.inputBytes / 1024, 1)} | ${fixed(r.cpuMs, 0)}${r.finished ? '' : ' (unfinished)'} | ${fixed(perKiB(r), 3)} | ${r.family === 'none' ? '–' : flag(ratio, 10)} | ${fixed(r.bystanderP99, 2)} | ${flag(p99Ratio, 2)} | ${r.failure === undefined ? `${r.bystanderLost} / ${fixed(r.bystanderMax, 0)}` : 'failed (below)'} |`)
  }
  lines.push('')
  for (const failure of failures) lines.push(`- failed: ${failure}`)
  if (failures.length > 0) lines.push('')
  const worst = results.filter(r => r.family !== 'none' && r.family !== 'ordinary' && Number.isFinite(perKiB(r)))
    .sort((a, b) => perKiB(b) - perKiB(a))[0]
  if (worst !== undefined) lines.push(`Worst family by CPU per KiB: ${worst.family}, ${(perKiB(worst) / ordinaryPerKiB).toFixed(1)}x ordinary edits.`, '')
  return lines
}
