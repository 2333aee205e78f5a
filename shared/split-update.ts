import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'

type Struct = Y.Item | Y.GC

/**
 * Splits a Yjs update (v1) into several updates, each at most `maxBytes` long where it can be,
 * whose application in order has the effect of the whole. Used to send a large sync in frames
 * the server accepts (--max-message-size), and by the server to build a big stored document in
 * slices (server/document/build-worker.ts).
 *
 * The parts are ordered so that every struct comes after what it references (its left and
 * right origins and its parent), when that is in the update too: the receiver never holds a
 * part waiting for a later one. Items too large for one part are cut (text, JSON, `any`
 * arrays and deleted runs), never inside a surrogate pair. Each part carries the deletions of
 * the structs it holds (content and its deletion apply together); deletions of content the update
 * does not hold travel last, in their own part. A single struct that cannot be cut (an embedded binary, a format) may exceed
 * `maxBytes`; an update with gaps (`Skip` structs) is returned whole.
 *
 * Each part is a plain v1 update: per client `numStructs, client, firstClock, structs`, then the
 * delete set (yjs `writeClientsStructs` and `writeDeleteSet`).
 */
export function splitUpdate (update: Uint8Array, maxBytes: number): Uint8Array[] {
  if (update.byteLength <= maxBytes) return [update]
  const { structs, ds } = Y.decodeUpdate(update)
  if (structs.some(struct => struct instanceof Y.Skip)) return [update]
  // per client, in the update's order: its structs (ascending clocks), the next to emit, the
  // clock range the update holds and how far it was emitted
  const queues = new Map<number, { structs: Struct[], head: number, start: number, end: number, emitted: number }>()
  for (const struct of structs as Struct[]) {
    const { client, clock } = struct.id
    let queue = queues.get(client)
    if (queue === undefined) queues.set(client, queue = { structs: [], head: 0, start: clock, end: clock, emitted: clock })
    queue.structs.push(struct)
    queue.end = clock + struct.length
  }
  const ready = (id: Y.ID | null): boolean => {
    if (id === null) return true
    const queue = queues.get(id.client)
    if (queue === undefined || id.clock < queue.start || id.clock >= queue.end) return true
    return id.clock < queue.emitted
  }
  const next = (queue: { structs: Struct[], head: number }): Struct | undefined => queue.structs[queue.head]
  const isReady = (struct: Struct): boolean => {
    if (!(struct instanceof Y.Item)) return true
    const parent = struct.parent instanceof Y.ID ? struct.parent : null
    return ready(struct.origin) && ready(struct.rightOrigin) && ready(parent)
  }

  const deletes = new Deletes(ds)
  const parts = new PartWriter(maxBytes, deletes)
  const emit = (queue: { structs: Struct[], head: number, emitted: number }, struct: Struct): void => {
    // the decoded struct is not needed past this point: its slot is freed for the collector
    queue.structs[queue.head++] = undefined as unknown as Struct
    queue.emitted = struct.id.clock + struct.length // before cut() shortens it
    for (const piece of cut(struct, maxBytes)) parts.add(piece)
  }
  let left = structs.length
  structs.length = 0
  while (left > 0) {
    let progressed = false
    for (const queue of queues.values()) {
      for (let struct = next(queue); struct !== undefined && isReady(struct); struct = next(queue)) {
        emit(queue, struct)
        left--
        progressed = true
      }
    }
    if (progressed) continue
    // references that cannot be satisfied (a malformed update): keep each client's order, go on
    for (const queue of queues.values()) {
      const struct = next(queue)
      if (struct === undefined) continue
      emit(queue, struct)
      left--
      break
    }
  }
  const result = parts.finish()
  // deletions of content the update does not hold (its structs' parts carried the rest)
  const rest = deletes.outside(new Map([...queues].map(([client, queue]) => [client, [queue.start, queue.end] as const])))
  if (rest.size > 0) {
    const encoder = encoding.createEncoder()
    encoding.writeVarUint(encoder, 0) // no structs
    writeDeletes(encoder, rest)
    result.push(encoding.toUint8Array(encoder))
  }
  return result
}

type Range = { clock: number, len: number }

/**
 * The update's delete set by client, sorted by clock: each part carries the deletions of the
 * structs it holds, so that a receiver applies content and its deletion together (deleted text
 * is never shown between two parts).
 */
class Deletes {
  private readonly byClient = new Map<number, Range[]>()

  constructor (ds: ReturnType<typeof Y.decodeUpdate>['ds']) {
    for (const [client, items] of ds.clients) this.byClient.set(client, [...items].sort((a, b) => a.clock - b.clock))
  }

  /** The deletions of `client`'s clocks in [start, end), clipped to it. */
  within (client: number, start: number, end: number): Range[] {
    const items = this.byClient.get(client)
    if (items === undefined) return []
    // the first range that ends after start
    let low = 0
    let high = items.length
    while (low < high) {
      const mid = (low + high) >>> 1
      const item = items[mid] as Range
      if (item.clock + item.len <= start) low = mid + 1
      else high = mid
    }
    const ranges: Range[] = []
    for (let i = low; i < items.length; i++) {
      const { clock, len } = items[i] as Range
      if (clock >= end) break
      const from = Math.max(clock, start)
      ranges.push({ clock: from, len: Math.min(clock + len, end) - from })
    }
    return ranges
  }

  /** At most how many bytes the deletions of `client`'s clocks in [start, end) take in a part. */
  bytesWithin (client: number, start: number, end: number): number {
    if (!this.byClient.has(client)) return 0
    // a range is two varUints: at most 10 bytes
    return this.within(client, start, end).length * 10
  }

  /** The deletions outside each client's [start, end) in `held` (all of a client not in it). */
  outside (held: ReadonlyMap<number, readonly [number, number]>): Map<number, Range[]> {
    const rest = new Map<number, Range[]>()
    for (const [client, items] of this.byClient) {
      const span = held.get(client)
      const ranges: Range[] = []
      for (const { clock, len } of items) {
        if (span === undefined) {
          ranges.push({ clock, len })
          continue
        }
        const [start, end] = span
        if (clock < start) ranges.push({ clock, len: Math.min(clock + len, start) - clock })
        if (clock + len > end) ranges.push({ clock: Math.max(clock, end), len: clock + len - Math.max(clock, end) })
      }
      if (ranges.length > 0) rest.set(client, ranges)
    }
    return rest
  }
}

/** A delete set (yjs `writeDeleteSet`, v1): clients in descending order, as Yjs writes them. */
function writeDeletes (encoder: encoding.Encoder, ranges: ReadonlyMap<number, readonly Range[]>): void {
  encoding.writeVarUint(encoder, ranges.size)
  for (const [client, items] of [...ranges].sort((a, b) => b[0] - a[0])) {
    encoding.writeVarUint(encoder, client)
    encoding.writeVarUint(encoder, items.length)
    for (const { clock, len } of items) {
      encoding.writeVarUint(encoder, clock)
      encoding.writeVarUint(encoder, len)
    }
  }
}

/** Collects encoded structs into parts of at most maxBytes. */
class PartWriter {
  private readonly parts: Uint8Array[] = []
  /** This part's structs per client: the first clock, how many, and their encoding. */
  private sections = new Map<number, { clock: number, end: number, count: number, encoder: encoding.Encoder }>()
  private bytes = 0
  /** Each struct is encoded here first, to learn its size; emptied and reused (a 100 MB update holds millions). */
  private readonly scratch = new Y.UpdateEncoderV1()

  constructor (private readonly maxBytes: number, private readonly deletes: Deletes) {}

  add (struct: Struct): void {
    const scratch = this.scratch.restEncoder
    scratch.cpos = 0
    scratch.bufs.length = 0
    struct.write(this.scratch, 0)
    // the struct, and its deletions: the part carries both
    const size = encoding.length(scratch) + this.deletes.bytesWithin(struct.id.client, struct.id.clock, struct.id.clock + struct.length)
    // a section header is three varUints: at most 20 bytes; the part's own framing a few more
    if (this.bytes > 0 && this.bytes + size + 32 > this.maxBytes) this.flush()
    let section = this.sections.get(struct.id.client)
    if (section === undefined) {
      this.sections.set(struct.id.client, section = { clock: struct.id.clock, end: struct.id.clock, count: 0, encoder: encoding.createEncoder() })
      this.bytes += 20
    }
    section.count++
    section.end = struct.id.clock + struct.length
    encoding.writeUint8Array(section.encoder, scratch.bufs.length === 0 ? scratch.cbuf.subarray(0, scratch.cpos) : encoding.toUint8Array(scratch))
    this.bytes += size
  }

  finish (): Uint8Array[] {
    this.flush()
    return this.parts
  }

  private flush (): void {
    if (this.sections.size === 0) return
    const encoder = encoding.createEncoder()
    encoding.writeVarUint(encoder, this.sections.size)
    for (const [client, section] of this.sections) {
      encoding.writeVarUint(encoder, section.count)
      encoding.writeVarUint(encoder, client)
      encoding.writeVarUint(encoder, section.clock)
      encoding.writeUint8Array(encoder, encoding.toUint8Array(section.encoder))
    }
    // the deletions of what this part holds
    const deleted = new Map<number, Range[]>()
    for (const [client, section] of this.sections) {
      const ranges = this.deletes.within(client, section.clock, section.end)
      if (ranges.length > 0) deleted.set(client, ranges)
    }
    writeDeletes(encoder, deleted)
    this.parts.push(encoding.toUint8Array(encoder))
    this.sections = new Map()
    this.bytes = 0
  }
}

/** Cuts an item whose encoding is over a quarter of maxBytes into pieces (when its content can be cut). */
function cut (struct: Struct, maxBytes: number): Struct[] {
  if (!(struct instanceof Y.Item) || struct.length < 2 || !cuttable(struct.content)) return [struct]
  const target = Math.max(1, Math.floor(maxBytes / 4))
  // a string's UTF-8 is at most 3 bytes per UTF-16 unit, and the rest of an item a few dozen:
  // most items are known small without encoding them
  if (struct.content instanceof Y.ContentString && struct.content.str.length * 3 + 64 <= target) return [struct]
  // a deleted run is encoded as its length
  if (struct.content instanceof Y.ContentDeleted) return [struct]
  const encoder = new Y.UpdateEncoderV1()
  struct.write(encoder, 0)
  const size = encoder.toUint8Array().byteLength
  if (size <= target) return [struct]
  const unitsPerPiece = Math.max(1, Math.floor(struct.length * target / size))
  const pieces: Y.Item[] = []
  let item = struct
  while (item.length > unitsPerPiece) {
    let diff = unitsPerPiece
    // ContentString.splice replaces a cut surrogate pair with U+FFFD: never cut inside one
    if (item.content instanceof Y.ContentString && isHighSurrogate(item.content.str.charCodeAt(diff - 1))) diff++
    if (diff >= item.length) break
    const { client, clock } = item.id
    const right = new Y.Item(Y.createID(client, clock + diff), null, Y.createID(client, clock + diff - 1), null,
      item.rightOrigin, item.parent, item.parentSub, item.content.splice(diff))
    item.length = diff
    pieces.push(item)
    item = right
  }
  pieces.push(item)
  return pieces
}

function cuttable (content: Y.Item['content']): boolean {
  return content instanceof Y.ContentString || content instanceof Y.ContentAny ||
    content instanceof Y.ContentJSON || content instanceof Y.ContentDeleted
}

function isHighSurrogate (code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff
}
