import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import { encodeIntegratedState } from './read-only.js'

type Struct = Y.Item | Y.GC

/** Where one Yjs client's structs stand in a walk: the next clock to send, and where to stop. */
interface Cursor {
  client: number
  /** The next clock to send; what is below it went out in an earlier piece (or the peer had it). */
  next: number
  /** The document's state for this client when the walk began: the walk sends up to here. */
  end: number
}

/**
 * The state of `ydoc` a peer with `stateVector` lacks, as a series of plain v1 updates of about
 * `pieceBytes` each, made one at a time: the first sync of a big document, sent in pieces the
 * stock y-websocket client applies as they come (its watchdog hears each one), with the event
 * loop free between them.
 *
 * Every piece holds whole structs in an order where each comes after what it references (its
 * origins and parent) when the peer lacks that too, so the peer never holds a piece waiting for a
 * later one. The delete set comes last, alone: `last()` returns it (as encodeIntegratedState
 * does for a peer that has every struct).
 *
 * The document may change between two calls of `next()` (edits, garbage collection that merges
 * or replaces structs): the walk keeps clocks, not positions, and finds its place again each
 * time. It sends what the document held when it began; what came later reaches the peer as the
 * relays it receives meanwhile. A struct is never cut: one item larger than `pieceBytes` (a
 * pasted megabyte of text, an embedded file) is a piece of its own.
 */
export class StatePieces {
  private readonly cursors: Cursor[] = []
  private readonly byClient = new Map<number, Cursor>()
  /** Structs sent so far, and bytes: for the log. */
  sentStructs = 0
  sentBytes = 0

  constructor (private readonly ydoc: Y.Doc, stateVector: Uint8Array, private readonly pieceBytes: number) {
    const known = Y.decodeStateVector(stateVector)
    for (const [client, structs] of ydoc.store.clients) {
      const last = structs[structs.length - 1]
      if (last === undefined) continue
      const end = last.id.clock + last.length
      const from = known.get(client) ?? 0
      if (from >= end) continue
      const cursor = { client, next: from, end }
      this.cursors.push(cursor)
      this.byClient.set(client, cursor)
    }
  }

  /** True while structs remain to be sent. */
  get done (): boolean {
    return this.cursors.every(cursor => cursor.next >= cursor.end)
  }

  /**
   * The next piece of structs (a v1 update with an empty delete set), or null when every struct
   * has been sent.
   */
  next (): Uint8Array | null {
    const sections = new Map<number, { clock: number, count: number, encoder: Y.UpdateEncoderV1 }>()
    let bytes = 0
    const { store } = this.ydoc
    let progressed = true
    while (progressed && bytes < this.pieceBytes) {
      progressed = false
      for (const cursor of this.cursors) {
        if (cursor.next >= cursor.end) continue
        const structs = store.clients.get(cursor.client) as Struct[]
        let index = Y.findIndexSS(structs, cursor.next)
        let section = sections.get(cursor.client)
        while (cursor.next < cursor.end && bytes < this.pieceBytes) {
          const struct = structs[index] as Struct
          if (!this.ready(struct)) break
          if (section === undefined) {
            section = { clock: cursor.next, count: 0, encoder: new Y.UpdateEncoderV1() }
            sections.set(cursor.client, section)
          }
          const before = encoding.length(section.encoder.restEncoder)
          struct.write(section.encoder, cursor.next - struct.id.clock)
          bytes += encoding.length(section.encoder.restEncoder) - before
          section.count++
          cursor.next = struct.id.clock + struct.length
          index++
          this.sentStructs++
          progressed = true
        }
      }
    }
    if (sections.size === 0) {
      if (!this.done) throw new Error('the document\'s structs reference content it lacks')
      return null
    }
    const encoder = encoding.createEncoder()
    encoding.writeVarUint(encoder, sections.size)
    for (const [client, section] of sections) {
      encoding.writeVarUint(encoder, section.count)
      encoding.writeVarUint(encoder, client)
      encoding.writeVarUint(encoder, section.clock)
      encoding.writeUint8Array(encoder, section.encoder.toUint8Array())
    }
    encoding.writeVarUint(encoder, 0) // empty delete set
    const piece = encoding.toUint8Array(encoder)
    this.sentBytes += piece.byteLength
    return piece
  }

  /** The last piece: the document's delete set, as it is now (no structs). */
  last (): Uint8Array {
    const piece = encodeIntegratedState(this.ydoc, Y.encodeStateVector(this.ydoc))
    this.sentBytes += piece.byteLength
    return piece
  }

  /**
   * True when everything `struct` references is sent already (or the peer had it, or the walk
   * does not send it: content past the walk's end came after it began and is relayed).
   */
  private ready (struct: Struct): boolean {
    if (!(struct instanceof Y.Item)) return true
    if (!this.sent(struct.origin) || !this.sent(struct.rightOrigin)) return false
    const parent = struct.parent as { _item?: Y.Item | null } | null
    const holder = parent !== null && typeof parent === 'object' ? parent._item ?? null : null
    return holder === null || this.sent(holder.id)
  }

  private sent (id: Y.ID | null): boolean {
    if (id === null) return true
    const cursor = this.byClient.get(id.client)
    return cursor === undefined || id.clock < cursor.next || id.clock >= cursor.end
  }
}
