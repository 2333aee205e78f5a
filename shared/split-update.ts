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
  const { structs } = Y.decodeUpdate(update)
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
    queue.head++
    queue.emitted = struct.id.clock + struct.length // before cut() shortens it
    for (const piece of cut(struct, maxBytes)) parts.add(piece)
  }
  let left = structs.length
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
  // the delete set alone: the update less every struct it holds
  const deletes = Y.diffUpdate(update, encodeStateVector(new Map([...queues].map(([client, queue]) => [client, queue.end]))))
  if (!isEmptyUpdate(deletes)) result.push(deletes)
  return result
}

/** Collects encoded structs into parts of at most maxBytes. */
class PartWriter {
  private readonly parts: Uint8Array[] = []
  private sections = new Map<number, { clock: number, structs: Uint8Array[] }>()
  private bytes = 0

  constructor (private readonly maxBytes: number) {}

  add (struct: Struct): void {
    const encoder = new Y.UpdateEncoderV1()
    struct.write(encoder, 0)
    const bytes = encoder.toUint8Array()
    // a section header is three varUints: at most 20 bytes; the part's own framing a few more
    if (this.bytes > 0 && this.bytes + bytes.byteLength + 32 > this.maxBytes) this.flush()
    let section = this.sections.get(struct.id.client)
    if (section === undefined) {
      this.sections.set(struct.id.client, section = { clock: struct.id.clock, structs: [] })
      this.bytes += 20
    }
    section.structs.push(bytes)
    this.bytes += bytes.byteLength
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
      encoding.writeVarUint(encoder, section.structs.length)
      encoding.writeVarUint(encoder, client)
      encoding.writeVarUint(encoder, section.clock)
      for (const bytes of section.structs) encoding.writeUint8Array(encoder, bytes)
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
  const encoder = new Y.UpdateEncoderV1()
  struct.write(encoder, 0)
  const size = encoder.toUint8Array().byteLength
  const target = Math.max(1, Math.floor(maxBytes / 4))
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

function encodeStateVector (clocks: Map<number, number>): Uint8Array {
  const encoder = encoding.createEncoder()
  encoding.writeVarUint(encoder, clocks.size)
  for (const [client, clock] of clocks) {
    encoding.writeVarUint(encoder, client)
    encoding.writeVarUint(encoder, clock)
  }
  return encoding.toUint8Array(encoder)
}

/** True for an update with no structs and no deletions. */
function isEmptyUpdate (update: Uint8Array): boolean {
  return update.byteLength === 2 && update[0] === 0 && update[1] === 0
}
