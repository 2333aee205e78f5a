import * as Y from 'yjs'
import { writeSyncStep2, writeSyncUpdate } from '../../shared/messages.js'
import { MESSAGE_SYNC, SYNC_STEP1 } from '../../shared/constants.js'
import { encodeIntegratedState } from './read-only.js'
import { sendPaced, type PacedReceiver } from '../transport/paced-send.js'

/** What the fast first sync needs of a member: a way to send it frames, paced by its socket. */
export interface StoredSyncMember extends PacedReceiver {
  /**
   * True while the member may still be helped by the stored bytes: it has sent nothing yet (a
   * fresh client's step 1 comes right after the upgrade), or what it was sent is still being
   * written to its socket.
   */
  firstSyncPending? (): boolean
}

/** A member whose socket has not drained for this long (ms) stops slowing the build down. */
const PIECES_STALLED_MS = 1_000

/** A Yjs update that holds nothing: the step 2 that ends a big document's pieces. */
const EMPTY_UPDATE = Uint8Array.of(0, 0)

/** Bytes of pieces queued on a member's socket before the next waits (a few pieces of 64 KiB). */
const PIECES_QUEUED_BYTES = 256 * 1024

/**
 * Stored documents at least this big answer a first sync from their stored bytes while the
 * in-memory document is built (below it, building costs less than a millisecond).
 */
export const STORED_SYNC_MIN_BYTES = 64 * 1024

/** How long a document built from its stored bytes keeps them to answer fresh clients, unless it changes first. */
export const STORED_SYNC_KEEP_MS = 10_000

/** The longest the build waits for members' first frames and their answers to be written: 20 ms, and 10 ms more per MiB. */
export function storedSyncWaitMs (bytes: number): number {
  return 20 + 10 * bytes / (1024 * 1024)
}

/**
 * The first sync of a document served from its stored state while the in-memory Y.Doc is still
 * being built (see registry.ts). A document stored as one update (a compacted snapshot, or one
 * update never compacted) is exactly the state the built document will have: a client whose
 * sync step 1 carries an empty state vector (a fresh client: the usual way a document opens) is
 * answered at once with those bytes as its step 2, as they were read, with no Yjs decoding at all,
 * where the ordinary answer would wait for the whole document to be applied to a Y.Doc and
 * encoded again. Every stored update went through the document's checks and integrated when it
 * was stored, so the bytes hold nothing the built document will not. (The one exception is data
 * stored by versions before updates were held apart: content that depends on content the store
 * lacks. `Document.loadStored` drops it from the built document, with a warning, and keeps no
 * bytes of such a document past the build; a client served them holds that content, which the
 * server holds back if the client sends it, as it would from any client.)
 *
 * What other instances publish while the document loads is applied to the Y.Doc being built and
 * relayed to the members there at that moment; once the document is built, `built` sends the
 * members served here whatever the document holds beyond the stored bytes.
 */
export class StoredSync {
  /** The sync step 2 every served member is sent, framed once; null when the document goes in pieces. */
  readonly frame: Uint8Array | null
  /** The update the bytes hold (one stored update), or null (pieces). */
  readonly update: Uint8Array | null
  /**
   * A big document's state as causal pieces (slice-build.ts: the pieces it is built from), sent
   * as sync updates and then an empty step 2, so that no message holds the stock client past its
   * watchdog (state-sync.ts); null for one stored update.
   */
  private readonly pieces: readonly Uint8Array[] | null
  private readonly served = new Set<StoredSyncMember>()
  /** Members being sent the pieces now. */
  private sending = 0

  constructor (state: Uint8Array | readonly Uint8Array[]) {
    if (state instanceof Uint8Array) {
      this.update = state
      this.frame = writeSyncStep2(state)
      this.pieces = null
    } else {
      this.update = null
      this.frame = null
      this.pieces = state
    }
  }

  /** True when the state goes out in pieces (a big document). */
  get piecewise (): boolean {
    return this.pieces !== null
  }

  /** Answers `member`'s frame `data` when it is a sync step 1 with an empty state vector; false when it is not one. */
  answer (member: StoredSyncMember, data: Uint8Array): boolean {
    if (!isEmptyStep1(data)) return false
    this.serve(member)
    this.served.add(member)
    return true
  }

  /** Sends `member` the stored state: one step 2, or the pieces (over several turns) then an empty step 2. */
  serve (member: StoredSyncMember): void {
    if (this.frame !== null) member.send(this.frame)
    else this.sendPieces(member).catch(() => {})
  }

  /**
   * One piece at a time, once the member's socket has written all but a few (paced-send.ts), then
   * an empty step 2; stops when the member's socket closes. A member whose socket has not drained
   * for a while (a client that reads nothing) no longer slows the build down (sendingPieces)
   * until it drains: a client applying the pieces drains a piece much sooner.
   */
  private async sendPieces (member: StoredSyncMember): Promise<void> {
    this.sending++
    try {
      const frames = syncUpdates(this.pieces ?? [])
      const stall = { afterMs: PIECES_STALLED_MS, stalled: () => { this.sending-- }, resumed: () => { this.sending++ } }
      if (await sendPaced(member, frames, PIECES_QUEUED_BYTES, { stall })) member.send(writeSyncStep2(EMPTY_UPDATE))
    } finally {
      this.sending--
    }
  }

  /**
   * True while some member is being sent the pieces and its socket drains (the build slows down
   * meanwhile: slice-build.ts); one whose socket has not drained for PIECES_STALLED_MS is not counted.
   */
  get sendingPieces (): boolean {
    return this.sending > 0
  }

  /** Members served so far. */
  get servedCount (): number {
    return this.served.size
  }

  /**
   * Resolves once no member in `members()` is `firstSyncPending`, or after at most `maxMs`.
   * Building the document blocks the event loop for as long as Yjs takes (about 40 ms a MiB): a
   * step 1 arriving meanwhile would wait for it, and so would the rest of a frame the socket had
   * not taken whole.
   */
  async settle (members: () => Iterable<Pick<StoredSyncMember, 'firstSyncPending'>>, maxMs: number): Promise<void> {
    const deadline = performance.now() + maxMs
    const pending = (): boolean => {
      for (const member of members()) if (member.firstSyncPending?.() === true) return true
      return false
    }
    while (pending() && performance.now() < deadline) await new Promise(resolve => setTimeout(resolve, 1))
  }

  /**
   * The document is built from the stored updates: when something else reached it while it
   * loaded (`touched`: another instance's update), the members served here that are still
   * `present` are sent what it holds beyond the stored bytes (only then: the state vector of the
   * stored update costs a pass over its bytes). Pieces stop being offered at the first such
   * update (Document.integrateRemote), and every member served before it was relayed it: nothing
   * to send then.
   */
  built (ydoc: Y.Doc, touched: boolean, present: (member: StoredSyncMember) => boolean): void {
    if (!touched || this.served.size === 0 || this.update === null) return
    const missing = encodeIntegratedState(ydoc, Y.encodeStateVectorFromUpdate(this.update))
    const frame = writeSyncUpdate(missing)
    for (const member of this.served) if (present(member)) member.send(frame)
  }
}

/** The pieces as sync updates, each framed as it goes. */
function * syncUpdates (pieces: readonly Uint8Array[]): Generator<Uint8Array> {
  for (const piece of pieces) yield writeSyncUpdate(piece)
}

/**
 * True when `data` is a sync step 1 whose state vector holds nothing: what a client with an empty
 * document sends (Yjs encodes the empty vector as the single byte 0). Any other step 1 takes the
 * ordinary path once the document is built.
 */
export function isEmptyStep1 (data: Uint8Array): boolean {
  return data.byteLength === 4 && data[0] === MESSAGE_SYNC && data[1] === SYNC_STEP1 && data[2] === 1 && data[3] === 0
}
