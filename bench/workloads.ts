import { LoadClient, inBatches } from './client.js'
import { insertUpdate, marker, bigDocument } from './updates.js'
import { percentile, prng } from './stats.js'
import type { Dialect } from './wire.js'
import { cpuMicros, hostTimes, stolenBetween } from './procfs.js'

/** Where the load generator points its clients. */
export interface Target {
  url: string
  dialect: Dialect
  /** The server's process id, to read its CPU time over measured windows; none when in-process. */
  pid?: number
  /** The server acknowledges each update to its sender once durably stored (Tandem). */
  acks?: boolean
  /**
   * Several instances of one server (a cluster): client `i` connects to `urls[i % urls.length]`,
   * and latencies are also split into same-instance and cross-instance deliveries.
   */
  urls?: string[]
  /**
   * `url` is a balancer that gives new connections to this many instances in turn: the clients
   * connect one at a time, so that client `i` lands on instance `i % instances`, and latencies
   * are split as with `urls`.
   */
  instances?: number
  /** The processes of a cluster's instances: their CPU time is summed (instead of `pid`'s). */
  pids?: number[]
}

const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))
const CONNECT_CONCURRENCY = 64

/** Resolves once `last()` (a performance.now time) is `quietMs` in the past, or after `maxMs`. */
async function quiet (last: () => number, quietMs: number, maxMs: number): Promise<void> {
  const deadline = performance.now() + maxMs
  while (performance.now() < deadline && performance.now() - last() < quietMs) await sleep(20)
}

/**
 * The CPU time process `pid` uses between two performance.now() times, in µs; resolves after
 * `end` (NaN without a pid).
 */
function cpuWindow (pid: number | readonly number[] | undefined, start: number, end: number): Promise<{ cpu: number, steal: number }> {
  // several processes (a cluster's instances): their sum
  // NaN once a process is gone (it exited mid-window): the run reports that server's failure
  const one = (id: number): number => { try { return cpuMicros(id) } catch { return NaN } }
  const read = (): number => pid === undefined ? NaN : typeof pid === 'number' ? one(pid) : pid.reduce((sum, id) => sum + one(id), 0)
  return new Promise(resolve => {
    setTimeout(() => {
      const before = read()
      const host = hostTimes()
      setTimeout(() => resolve({
        cpu: read() - before,
        steal: stolenBetween(host, hostTimes())
      }), Math.max(0, end - performance.now()))
    }, Math.max(0, start - performance.now()))
  })
}

/** Distinct non-zero Yjs client ids, seeded. */
function clientIds (count: number, seed: number): number[] {
  const random = prng(seed)
  const seen = new Set<number>()
  const ids: number[] = []
  while (ids.length < count) {
    const id = 1 + Math.floor(random() * 0x3fffffff)
    if (seen.has(id)) continue
    seen.add(id)
    ids.push(id)
  }
  return ids
}

/**
 * Send times and receipts of every marker of one fan-out: the only state the receive path
 * touches (two typed-array lookups and a push per delivery).
 */
class Ledger {
  readonly sendTimes: Float64Array[] = []
  latencies: number[] = []
  /** With several instances: the measured latencies from a sender on another instance than the receiver's. */
  cross: number[] = []
  /** With several instances: the measured latencies within one instance. */
  same: number[] = []
  windowStart = Infinity
  windowEnd = Infinity
  deliveredInWindow = 0
  deliveredTotal = 0
  duplicates = 0
  private readonly counts: Uint16Array[] = []

  /** `instances` > 1: client i is on instance i % instances, and latencies are split. */
  constructor (clients: number, private readonly recipients: number, private readonly instances = 1) {
    for (let i = 0; i < clients; i++) {
      this.sendTimes.push(new Float64Array(1024))
      this.counts.push(new Uint16Array(1024))
    }
  }

  sent (client: number, seq: number, now: number): void {
    let times = this.sendTimes[client] as Float64Array
    if (seq >= times.length) {
      const grown = new Float64Array(times.length * 2)
      grown.set(times)
      this.sendTimes[client] = times = grown
      const counts = new Uint16Array(times.length)
      counts.set(this.counts[client] as Uint16Array)
      this.counts[client] = counts
    }
    times[seq] = now
  }

  readonly delivered = (sender: number, seq: number, receiver: number, now: number): void => {
    const times = this.sendTimes[sender]
    const counts = this.counts[sender]
    if (times === undefined || counts === undefined || seq >= times.length) return
    this.deliveredTotal++
    if (now >= this.windowStart && now < this.windowEnd) this.deliveredInWindow++
    if (++(counts[seq] as number) > this.recipients) { this.duplicates++; return }
    const sentAt = times[seq] as number
    if (sentAt >= this.windowStart && sentAt < this.windowEnd) {
      this.latencies.push(now - sentAt)
      if (this.instances > 1) (sender % this.instances === receiver % this.instances ? this.same : this.cross).push(now - sentAt)
    }
  }
}

/** Result of one fan-out phase. */
export interface FanoutResult {
  /** Per-client rate offered, edits per second. */
  rate: number
  /** Edits sent per second in the measured window. */
  sentPerSec: number
  /** Receipts at other clients per second in the measured window. */
  deliveredPerSec: number
  p50: number
  p99: number
  max: number
  /** Server CPU time (user + system) in the measured window per delivery in it, µs; NaN without a pid. */
  cpuPerDelivery: number
  /** Share of the host's CPU time stolen by the hypervisor (other guests) in the measured window, 0..1. */
  steal: number
  /** Every receipt at another client during the phase, warm-up and drain included. */
  deliveredTotal: number
  /** Deliveries of measured edits that never arrived (after the drain). */
  lost: number
  expected: number
  duplicates: number
  /** With several instances (Target.urls): p50 and p99 of deliveries across instances, and within one. */
  cross?: { p50: number, p99: number, n: number }
  same?: { p50: number, p99: number, n: number }
}

/** A set of connected fan-out clients: `docs` documents × `perDoc` clients each. */
export class FanoutGroup {
  readonly clients: LoadClient[] = []
  private readonly ledger: Ledger
  private lastFrame = 0
  /** Every measured latency of the last phase, ms. */
  lastLatencies: number[] = []

  constructor (private readonly target: Target, readonly docs: number, readonly perDoc: number, prefix: string, seed: number) {
    const urls = target.urls ?? [target.url]
    this.ledger = new Ledger(docs * perDoc, perDoc - 1, target.urls?.length ?? target.instances ?? 1)
    const ids = clientIds(docs * perDoc, seed)
    for (let d = 0; d < docs; d++) {
      for (let c = 0; c < perDoc; c++) {
        const index = d * perDoc + c
        this.clients.push(new LoadClient(index, ids[index] as number, urls[index % urls.length] as string, target.dialect, `${prefix}-${d}`, {
          delivered: this.ledger.delivered,
          frame: now => { this.lastFrame = now }
        }))
      }
    }
  }

  /** Connects every client, then waits until the handshakes' traffic has died down. */
  async connect (): Promise<void> {
    // behind a round-robin balancer, one at a time: the order of connections is the placement
    await inBatches(this.clients, this.target.instances === undefined ? CONNECT_CONCURRENCY : 1, client => client.connect())
    await quiet(() => this.lastFrame, 200, 5_000)
  }

  async close (): Promise<void> {
    await inBatches(this.clients, 256, client => client.close())
  }

  /**
   * Every client appends one marker edit every 1/rate s, at a seeded phase; edits sent during the
   * first `warmupMs` are not measured. Latency is from the `send` call to the receipt at each
   * other client of the document. After the last send it waits up to `drainMs` for stragglers.
   */
  async phase (rate: number, warmupMs: number, durationMs: number, drainMs: number, seed: number): Promise<FanoutResult> {
    const ledger = this.ledger
    const random = prng(seed)
    const interval = 1000 / rate
    const n = this.clients.length
    const offsets = this.clients.map(() => random() * interval)
    const order = [...offsets.keys()].sort((a, b) => (offsets[a] as number) - (offsets[b] as number))
    const rounds = Math.ceil((warmupMs + durationMs) / interval)
    const total = rounds * n
    const start = performance.now() + 20
    ledger.latencies = []
    ledger.cross = []
    ledger.same = []
    ledger.deliveredInWindow = 0
    ledger.deliveredTotal = 0
    ledger.duplicates = 0
    ledger.windowStart = start + warmupMs
    ledger.windowEnd = start + warmupMs + durationMs
    const window = cpuWindow(this.target.pids ?? this.target.pid, ledger.windowStart, ledger.windowEnd)
    let sentInWindow = 0
    let measured = 0
    let next = 0
    const due = (k: number): number => start + Math.floor(k / n) * interval + (offsets[order[k % n] as number] as number)
    await new Promise<void>(resolve => {
      const tick = (): void => {
        const now = performance.now()
        while (next < total && due(next) <= now) {
          const client = this.clients[order[next % n] as number] as LoadClient
          const seq = client.seq++
          const sentAt = performance.now()
          ledger.sent(client.index, seq, sentAt)
          client.send(client.codec.update(insertUpdate(client.clientId, seq, marker(client.index, seq))))
          if (sentAt >= ledger.windowStart && sentAt < ledger.windowEnd) { sentInWindow++; measured++ }
          next++
        }
        if (next >= total) resolve()
        else setTimeout(tick, Math.max(0, due(next) - performance.now()))
      }
      setTimeout(tick, 20)
    })
    const expected = measured * (this.perDoc - 1)
    const drainUntil = performance.now() + drainMs
    while (ledger.latencies.length < expected && performance.now() < drainUntil) await sleep(10)
    const seconds = durationMs / 1000
    this.lastLatencies = ledger.latencies
    const { cpu, steal } = await window
    return {
      cpuPerDelivery: cpu / ledger.deliveredInWindow,
      steal,
      rate,
      sentPerSec: sentInWindow / seconds,
      deliveredPerSec: ledger.deliveredInWindow / seconds,
      p50: percentile(ledger.latencies, 0.5),
      p99: percentile(ledger.latencies, 0.99),
      max: percentile(ledger.latencies, 1),
      deliveredTotal: ledger.deliveredTotal,
      lost: expected - ledger.latencies.length,
      expected,
      duplicates: ledger.duplicates,
      ...((this.target.urls?.length ?? this.target.instances ?? 1) < 2
        ? {}
        : { cross: split(ledger.cross), same: split(ledger.same) })
    }
  }
}

function split (latencies: number[]): { p50: number, p99: number, n: number } {
  return { p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), n: latencies.length }
}

/**
 * Above this share of the host's CPU time stolen by other guests, a measured window says more
 * about the neighbours than about the server: the bench tries it again (see ladder and run.ts).
 */
export const STEAL_LIMIT = 0.1

/** A rate step passes when p99 stays under the limit, nothing is lost and the offered rate was sent. */
export function sustained (result: FanoutResult, limitMs: number, clients: number): boolean {
  return result.p99 <= limitMs && result.lost === 0 && result.sentPerSec >= 0.95 * result.rate * clients
}

/** Fan-out of `docs` × `perDoc` at a fixed per-client rate: connect, one phase, close. */
export async function fanout (target: Target, spec: { docs: number, perDoc: number, rate: number, warmupMs: number, durationMs: number, drainMs: number, seed: number, prefix: string }): Promise<FanoutResult> {
  const group = new FanoutGroup(target, spec.docs, spec.perDoc, spec.prefix, spec.seed)
  try {
    await group.connect()
    return await group.phase(spec.rate, spec.warmupMs, spec.durationMs, spec.drainMs, spec.seed + 1)
  } finally {
    await group.close()
  }
}

/** The most tries of one ladder step, failures under a stolen CPU included. */
const MAX_TRIES = 4

/** The rate ladder: the same clients step up the per-client rate until a step fails twice. */
export async function ladder (target: Target, spec: { docs: number, perDoc: number, rates: number[], warmupMs: number, durationMs: number, drainMs: number, limitMs: number, seed: number, prefix: string, first?: { rate: number, warmupMs: number, durationMs: number, drainMs: number }, failures?: number }): Promise<{ best: FanoutResult | null, steps: FanoutResult[], first?: FanoutResult }> {
  const group = new FanoutGroup(target, spec.docs, spec.perDoc, spec.prefix, spec.seed)
  const steps: FanoutResult[] = []
  let best: FanoutResult | null = null
  let first: FanoutResult | undefined
  try {
    await group.connect()
    // a fixed-rate phase on the same clients before the climb (its warm-up warms the climb too)
    if (spec.first !== undefined) first = await group.phase(spec.first.rate, spec.first.warmupMs, spec.first.durationMs, spec.first.drainMs, spec.seed)
    climb: for (const rate of spec.rates) {
      // a step fails once it failed twice, so that one burst of outside load does not end the
      // climb; a failure while the host's CPU was stolen past STEAL_LIMIT does not count, up to
      // MAX_TRIES tries of the step in all
      let failures = 0
      for (let tries = 0; ; tries++) {
        const result = await group.phase(rate, spec.warmupMs, spec.durationMs, spec.drainMs, spec.seed + rate + tries)
        steps.push(result)
        if (sustained(result, spec.limitMs, spec.docs * spec.perDoc)) {
          best = result
          break
        }
        if (result.steal <= STEAL_LIMIT) failures++
        if (failures >= (spec.failures ?? 2) || tries + 1 >= Math.max(MAX_TRIES, spec.failures ?? 2)) break climb
      }
    }
  } finally {
    await group.close()
  }
  return first === undefined ? { best, steps } : { best, steps, first }
}

/** Idle connections holding awareness states, kept open between `open` and `close`. */
export class IdleCrowd {
  private readonly clients: LoadClient[] = []
  private lastFrame = 0
  /** Clients opened so far (open may stop part-way: `upTo`). */
  private opened = 0

  constructor (target: Target, count: number, perDoc: number, prefix: string, seed: number) {
    const ids = clientIds(count, seed)
    for (let i = 0; i < count; i++) {
      this.clients.push(new LoadClient(i, ids[i] as number, target.url, target.dialect, `${prefix}-${Math.floor(i / perDoc)}`, {
        frame: now => { this.lastFrame = now }
      }))
    }
  }

  /**
   * Connects the clients not connected yet, up to `upTo` (all by default), sets each one's
   * awareness state (a user and a cursor, as editors do), and resolves once no frame has arrived
   * for `quietMs` (at most `maxWaitMs` after the last connect). `connected`: all that are open.
   */
  async open (quietMs: number, maxWaitMs: number, upTo = this.clients.length): Promise<{ connected: number, openMs: number }> {
    const started = performance.now()
    const next = this.clients.slice(this.opened, Math.max(this.opened, upTo))
    this.opened += next.length
    await inBatches(next, CONNECT_CONCURRENCY, async client => {
      await client.connect()
      client.send(client.codec.awareness(client.clientId, 1, {
        user: { name: `User ${client.index}`, color: `#${(client.clientId & 0xffffff).toString(16).padStart(6, '0')}` },
        cursor: { anchor: client.index % 997, head: client.index % 997 }
      }))
    })
    const openMs = performance.now() - started
    this.lastFrame = performance.now()
    await quiet(() => this.lastFrame, quietMs, maxWaitMs)
    return { connected: this.clients.filter(client => client.ready && !client.closed).length, openMs }
  }

  async close (): Promise<void> {
    await inBatches(this.clients.slice(0, this.opened), 256, client => client.close())
  }
}

let cachedBig: { bytes: number, seed: number, update: Uint8Array } | undefined

/** The big document of `bytes`, built once per load generator. */
function big (bytes: number, seed: number): Uint8Array {
  if (cachedBig?.bytes !== bytes || cachedBig.seed !== seed) cachedBig = { bytes, seed, update: bigDocument(bytes, seed) }
  return cachedBig.update
}

/**
 * Stores a document of about `bytes` through one client (an observer sees it relayed), lets every
 * client leave, waits `settleMs` for the server to store and unload it, then times a new client
 * from `new WebSocket` to the frame that carries the document.
 */
export async function syncFromStorage (target: Target, spec: { bytes: number, settleMs: number, seed: number, prefix: string }): Promise<{ ms: number, docBytes: number, frameBytes: number }> {
  const update = big(spec.bytes, spec.seed)
  const document = `${spec.prefix}-big`
  let relayed = false
  const writer = new LoadClient(0, 1, target.url, target.dialect, document, {})
  const observer = new LoadClient(1, 2, target.url, target.dialect, document, { frame: () => {} })
  const sizeOf = (socket: LoadClient): Promise<void> => new Promise(resolve => {
    socket.socket?.on('message', (data: Buffer) => { if (data.length >= update.length / 2) { relayed = true; resolve() } })
  })
  await writer.connect()
  await observer.connect()
  const seen = sizeOf(observer)
  writer.send(writer.codec.update(update))
  await Promise.race([seen, sleep(30_000)])
  if (!relayed) throw new Error('the big document was not relayed within 30 s')
  await writer.close()
  await observer.close()
  await sleep(spec.settleMs)
  // the document may come as the answer to step 1 or, where a server answers before it has loaded
  // the document (y-websocket 1.5), as an update right after: done when either has arrived
  let frameBytes = 0
  let received = 0
  const reader = new LoadClient(2, 3, target.url, target.dialect, document, {
    frame: (now, data) => {
      if (received === 0 && data.length >= update.length * 0.9) { frameBytes = data.length; received = now }
    }
  })
  const started = performance.now()
  await reader.connect(60_000)
  const deadline = performance.now() + 60_000
  while (received === 0 && performance.now() < deadline) await sleep(1)
  await reader.close()
  if (received === 0) throw new Error(`the ${update.length}-byte document never arrived`)
  return { ms: received - started, docBytes: update.length, frameBytes }
}

/**
 * One writer floods small edits with at most `window` in flight, with an observer on the same
 * document; the figure is edits per second after `warmupMs` that the server acknowledged as
 * durably stored (Tandem: its `ack` messages) or, for a server without acknowledgements, that
 * reached the observer (the peers store later, in the background).
 *
 * The writer's edits rotate over `authors` Yjs client ids. With one id, every edit would extend
 * one ever longer merged Yjs item, and every server that encodes its transactions (all three
 * do) would pay O(item length) per edit flattening its string: that measures Yjs, not storage.
 */
export async function storageThroughput (target: Target, spec: { window: number, authors: number, warmupMs: number, durationMs: number, seed: number, prefix: string }): Promise<{ perSec: number, received: number, cpuPerEdit: number, steal: number }> {
  const document = `${spec.prefix}-store`
  const ids = clientIds(spec.authors + 1, spec.seed)
  const seqs = new Array<number>(spec.authors).fill(0)
  let inflight = 0
  let received = 0
  let windowStart = Infinity
  let windowEnd = Infinity
  let stopped = false
  let pumpScheduled = false
  const done = (count: number, now: number): void => {
    inflight -= count
    if (now >= windowStart && now < windowEnd) received += count
    if (!pumpScheduled) { pumpScheduled = true; setImmediate(pump) }
  }
  const writer = new LoadClient(0, ids[0] as number, target.url, target.dialect, document, target.acks === true ? { acked: count => done(count, performance.now()) } : {})
  const pump = (): void => {
    pumpScheduled = false
    while (!stopped && inflight < spec.window) {
      const seq = writer.seq++
      const author = seq % spec.authors
      const authorSeq = (seqs[author] as number)
      seqs[author] = authorSeq + 1
      writer.send(writer.codec.update(insertUpdate(ids[author] as number, authorSeq, marker(0, seq))))
      inflight++
    }
  }
  const observer = new LoadClient(1, ids[spec.authors] as number, target.url, target.dialect, document, {
    delivered: (_sender, _seq, _receiver, now) => { if (target.acks !== true) done(1, now) }
  })
  try {
    await writer.connect()
    await observer.connect()
    const start = performance.now()
    windowStart = start + spec.warmupMs
    windowEnd = windowStart + spec.durationMs
    const window = cpuWindow(target.pid, windowStart, windowEnd)
    pump()
    const { cpu, steal } = await window
    stopped = true
    return { perSec: received / (spec.durationMs / 1000), received, cpuPerEdit: cpu / received, steal }
  } finally {
    await writer.close()
    await observer.close()
  }
}
