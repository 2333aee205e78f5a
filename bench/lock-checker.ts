// The checker of the lock fault run (lock-faults-run.ts): a fenced resource, the holds each
// client believed it had, and the checks over both, as lock services are tested (Kleppmann's
// fencing tokens; Jepsen's histories). Pure: no clock, no I/O, so it is tested on its own.

/** A write a client sent to the fenced resource with its lock's token. */
export interface Write {
  client: number
  token: number
  at: number
  /** Sent while the client believed it held the lock (else a late write, as after a pause). */
  inHold: boolean
  accepted: boolean
}

/** A hold as a client believed it: from the grant reply until it released, was told the lock was gone, or its connection dropped. */
export interface Hold {
  client: number
  session: string
  token: number
  start: number
  end: number
  /** Why the belief ended: `released`, `lost` (told by the server), `dropped` (connection), `stopped` (end of run). */
  ended: string
}

/**
 * A resource that only takes writes fenced by a token at least as high as the highest it took
 * (Kleppmann's storage service): a write with an older token is refused and recorded.
 */
export class FencedResource {
  private highest = 0
  readonly writes: Write[] = []

  /** Takes or refuses a write; true when taken. */
  write (client: number, token: number, at: number, inHold: boolean): boolean {
    const accepted = token >= this.highest
    if (accepted) this.highest = token
    this.writes.push({ client, token, at, inHold, accepted })
    return accepted
  }
}

/** Two holds of different sessions that overlapped in time. */
export interface Overlap {
  a: Hold
  b: Hold
  ms: number
}

/** What the checks found. */
export interface Verdict {
  grants: number
  accepted: number
  /** Late writes (outside a hold) refused by the fence: the fence doing its job. */
  refusedLate: number
  /** Writes made inside a believed hold and refused. */
  refusedInHold: number
  /** Longest overlap of two sessions' holds. */
  maxOverlapMs: number
  /** That overlap, if any. */
  worst?: Overlap
  /** Each broken rule, in words; empty when all hold. */
  violations: string[]
}

/**
 * Checks a run:
 * 1. the fence never took a token lower than one it took before (recomputed from the log);
 * 2. every grant has its own token (a session asking again for a lock it still holds gets its
 *    token back), and in the order the holds began the tokens strictly grow (across instance
 *    deaths and Redis losing its data);
 * 3. no two sessions' holds overlap by more than `boundMs` (the lease: a holder whose lock the
 *    service lost must learn it within its lease);
 * 4. a write made inside a hold that overlapped no other was taken (a sole holder is never
 *    fenced out, which a token going backwards would cause).
 */
export function verify (holds: readonly Hold[], writes: readonly Write[], boundMs: number): Verdict {
  const violations: string[] = []
  let highest = 0
  for (const write of writes) {
    if (write.accepted && write.token < highest) violations.push(`the fence took token ${write.token} after ${highest}`)
    if (write.accepted) highest = Math.max(highest, write.token)
  }

  const byStart = [...holds].sort((a, b) => a.start - b.start || a.token - b.token)
  const tokens = new Map<number, Hold>()
  for (const hold of byStart) {
    // a holder asking again gets its lock back with its token (after a release that failed, say)
    const same = tokens.get(hold.token)
    if (same !== undefined && same.session !== hold.session) violations.push(`token ${hold.token} granted twice (clients ${same.client} and ${hold.client})`)
    tokens.set(hold.token, hold)
  }
  for (let i = 1; i < byStart.length; i++) {
    const [before, after] = [byStart[i - 1] as Hold, byStart[i] as Hold]
    if (after.token === before.token && after.session === before.session) continue
    if (after.token <= before.token) violations.push(`token ${after.token} (client ${after.client}, at ${after.start}) granted after token ${before.token} (client ${before.client}, at ${before.start})`)
  }

  const overlaps: Overlap[] = []
  for (let i = 0; i < byStart.length; i++) {
    const a = byStart[i] as Hold
    for (let j = i + 1; j < byStart.length; j++) {
      const b = byStart[j] as Hold
      if (b.start >= a.end) break
      if (b.session === a.session) continue
      overlaps.push({ a, b, ms: Math.min(a.end, b.end) - b.start })
    }
  }
  let worst: Overlap | undefined
  for (const overlap of overlaps) {
    if (overlap.ms > (worst?.ms ?? 0)) worst = overlap
    if (overlap.ms > boundMs) {
      violations.push(`clients ${overlap.a.client} (token ${overlap.a.token}, ended ${overlap.a.ended}) and ${overlap.b.client} (token ${overlap.b.token}) both held the lock for ${overlap.ms} ms, over the bound of ${boundMs} ms`)
    }
  }

  const overlapped = new Set(overlaps.flatMap(o => [o.a, o.b]))
  const soleHolds = byStart.filter(hold => !overlapped.has(hold))
  let refusedInHold = 0
  for (const write of writes) {
    if (!write.inHold || write.accepted) continue
    refusedInHold++
    const sole = soleHolds.find(h => h.client === write.client && h.token === write.token && h.start <= write.at && write.at <= h.end)
    if (sole !== undefined) violations.push(`client ${write.client} held token ${write.token} alone and its write was refused`)
  }
  return {
    grants: holds.length,
    accepted: writes.filter(w => w.accepted).length,
    refusedLate: writes.filter(w => !w.inHold && !w.accepted).length,
    refusedInHold,
    maxOverlapMs: worst?.ms ?? 0,
    worst,
    violations
  }
}

/** One fault of the schedule. */
export interface Fault {
  /** Ms from the start of the run. */
  at: number
  kind: FaultKind
  /** The instance, for `kill-instance`. */
  instance?: number
}

/** kill-instance: SIGKILL, then a restart on the same port; redis-restart: SIGKILL and restart with its data (AOF); redis-wipe: the same, its data lost; drop-connections: every client socket cut at the balancer. */
export type FaultKind = 'kill-instance' | 'redis-restart' | 'redis-wipe' | 'drop-connections'
export const FAULT_KINDS: readonly FaultKind[] = ['kill-instance', 'redis-restart', 'redis-wipe', 'drop-connections']

/**
 * A fault schedule drawn from `random`: `count` faults spread over `durationMs` (leaving its
 * first and last tenth quiet), each at a jittered time; every kind appears once before any
 * repeats, in a drawn order.
 */
export function faultSchedule (random: () => number, count: number, durationMs: number, instances: number): Fault[] {
  const faults: Fault[] = []
  const span = durationMs * 0.8
  const step = span / Math.max(1, count)
  let bag: FaultKind[] = []
  for (let i = 0; i < count; i++) {
    if (bag.length === 0) bag = [...FAULT_KINDS]
    const kind = bag.splice(Math.floor(random() * bag.length), 1)[0] as FaultKind
    const at = Math.round(durationMs * 0.1 + step * i + random() * step * 0.5)
    faults.push(kind === 'kill-instance' ? { at, kind, instance: Math.floor(random() * instances) } : { at, kind })
  }
  return faults
}
