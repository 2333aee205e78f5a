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
 * arrays and deleted runs), never inside a surrogate pair. The delete set travels last, in its
 * own part. A single struct that cannot be cut (an embedded binary, a format) may exceed
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

  const parts = new PartWriter(maxBytes)
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
  // the delete set alone, as the update holds it
  if (ds.clients.size > 0) result.push(encodeDeletes(ds))
  return result
}

/** An update of no structs and the delete set `ds` (yjs `writeDeleteSet`, v1). */
function encodeDeletes (ds: ReturnType<typeof Y.decodeUpdate>['ds']): Uint8Array {
  const encoder = encoding.createEncoder()
  encoding.writeVarUint(encoder, 0) // no structs
  encoding.writeVarUint(encoder, ds.clients.size)
  for (const [client, items] of [...ds.clients].sort((a, b) => b[0] - a[0])) {
    encoding.writeVarUint(encoder, client)
    encoding.writeVarUint(encoder, items.length)
    for (const { clock, len } of items) {
      encoding.writeVarUint(encoder, clock)
      encoding.writeVarUint(encoder, len)
    }
  }
  return encoding.toUint8Array(encoder)
}

/** Collects encoded structs into parts of at most maxBytes. */
class PartWriter {
  private readonly parts: Uint8Array[] = []
  /** This part's structs per client: the first clock, how many, and their encoding. */
  private sections = new Map<number, { clock: number, count: number, encoder: encoding.Encoder }>()
  private bytes = 0
  /** Each struct is encoded here first, to learn its size; emptied and reused (a 100 MB update holds millions). */
  private readonly scratch = new Y.UpdateEncoderV1()

  constructor (private readonly maxBytes: number) {}

  add (struct: Struct): void {
    const scratch = this.scratch.restEncoder
    scratch.cpos = 0
    scratch.bufs.length = 0
    struct.write(this.scratch, 0)
    const size = encoding.length(scratch)
    // a section header is three varUints: at most 20 bytes; the part's own framing a few more
    if (this.bytes > 0 && this.bytes + size + 32 > this.maxBytes) this.flush()
    let section = this.sections.get(struct.id.client)
    if (section === undefined) {
      this.sections.set(struct.id.client, section = { clock: struct.id.clock, count: 0, encoder: encoding.createEncoder() })
      this.bytes += 20
    }
    section.count++
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
    encoding.writeVarUint(encoder, 0) // empty delete set
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
