import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import { writeSyncStep1, writeSyncStep2, writeSyncUpdate, writeAwareness } from '../shared/messages.js'
import { writeAwarenessUpdate } from '../shared/awareness.js'
import { MESSAGE_SYNC, MESSAGE_AUTH, SYNC_STEP1, SYNC_STEP2 } from '../shared/constants.js'

/**
 * How the load generator talks to each server.
 *   y-websocket  the y-websocket frames of shared/messages.ts (Tandem, the y-websocket server)
 *   hocuspocus   the same y-protocols messages, each prefixed with varString documentName; the
 *                connection starts with an auth message (varUint 2, varUint 0 token, varString)
 *                and a sync step 1 is answered with sync step 2 then the server's step 1;
 *                updates are acknowledged with SyncStatus (type 8)
 *   raw          the floor: the same update frames relayed verbatim, no handshake
 */
export type Dialect = 'y-websocket' | 'hocuspocus' | 'raw'

/** Hocuspocus message type carried where y-websocket has sync, but answering step 1 with no step 1. */
const HOCUSPOCUS_SYNC_REPLY = 4

const EMPTY_STATE_VECTOR = Uint8Array.of(0)
/** The update of an empty document: what a fresh client answers a server's step 1 with. */
const EMPTY_UPDATE = Uint8Array.of(0, 0)

/** What a received frame is, as far as the load generator cares. */
export type Received = 'step1' | 'step2' | 'other'

/** Encodes and classifies frames of one dialect for one document. */
export class Codec {
  private readonly prefix: Uint8Array

  constructor (readonly dialect: Dialect, readonly document: string) {
    const encoder = encoding.createEncoder()
    if (dialect === 'hocuspocus') encoding.writeVarString(encoder, document)
    this.prefix = encoding.toUint8Array(encoder)
  }

  /** The frames a client sends on open. */
  hello (): Uint8Array[] {
    if (this.dialect === 'raw') return []
    const frames: Uint8Array[] = []
    if (this.dialect === 'hocuspocus') {
      const auth = encoding.createEncoder()
      encoding.writeVarUint(auth, MESSAGE_AUTH)
      encoding.writeVarUint(auth, 0)
      encoding.writeVarString(auth, '')
      frames.push(this.wrap(encoding.toUint8Array(auth)))
    }
    frames.push(this.wrap(writeSyncStep1(EMPTY_STATE_VECTOR)))
    return frames
  }

  /** A document update frame. */
  update (update: Uint8Array): Uint8Array {
    return this.wrap(writeSyncUpdate(update))
  }

  /** A client's answer to the server's step 1: it has nothing the server lacks. */
  step2Empty (): Uint8Array {
    return this.wrap(writeSyncStep2(EMPTY_UPDATE))
  }

  /** An awareness frame with one client's state. */
  awareness (clientId: number, clock: number, state: object): Uint8Array {
    return this.wrap(writeAwareness(writeAwarenessUpdate([{ clientId, clock, state: JSON.stringify(state) }])))
  }

  /** Sync step 1 or 2, or anything else. Never throws: foreign frames are 'other'. */
  classify (data: Uint8Array): Received {
    if (this.dialect === 'raw') return 'other'
    try {
      const decoder = decoding.createDecoder(data)
      if (this.dialect === 'hocuspocus') decoding.readVarString(decoder)
      const type = decoding.readVarUint(decoder)
      if (type !== MESSAGE_SYNC && !(this.dialect === 'hocuspocus' && type === HOCUSPOCUS_SYNC_REPLY)) return 'other'
      const sub = decoding.readVarUint(decoder)
      if (sub === SYNC_STEP1) return 'step1'
      if (sub === SYNC_STEP2) return 'step2'
      return 'other'
    } catch {
      return 'other'
    }
  }

  private wrap (frame: Uint8Array): Uint8Array {
    if (this.prefix.length === 0) return frame
    const out = new Uint8Array(this.prefix.length + frame.length)
    out.set(this.prefix, 0)
    out.set(frame, this.prefix.length)
    return out
  }
}
