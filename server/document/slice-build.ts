import * as Y from 'yjs'
import type { Logger } from 'pino'
import { piecesOffLoop } from './off-loop.js'

/** A Yjs update that holds nothing. */
const EMPTY_UPDATE = Uint8Array.of(0, 0)

/**
 * A document stored with at least this many bytes is built in slices (Document.loadStored). One
 * Y.applyUpdate of a MiB of typed text holds the event loop for about 130 ms; below this, under
 * about 60 ms.
 */
export const SLICED_BUILD_BYTES = 512 * 1024

/** About how large each piece applied in one event-loop turn is (about 2-5 ms of Yjs each). */
export const BUILD_PIECE_BYTES = 64 * 1024

/** How long one turn of a sliced build applies pieces before it yields to the event loop. */
export const BUILD_TURN_MS = 3

/** While members are sent the pieces, the build waits this many BUILD_TURN_MS after each turn. */
const BUILD_YIELD_WHILE_SENDING = 3

/**
 * Builds `ydoc` from big stored rows without holding the event loop (Document.loadStored): a
 * worker merges them and splits the result into causal pieces (piecesOffLoop), applied here for
 * BUILD_TURN_MS per turn of the event loop. Frames from members wait in their sessions' backlogs
 * meanwhile (the document is `loading`); other instances' updates apply in between (Yjs holds
 * what they need until the pieces bring it). `offer` is handed the pieces before the first is
 * applied: they answer fresh clients meanwhile (stored-sync.ts), and while some are sent, the
 * build takes a quarter of the time. Returns `whole`, having applied nothing, when the
 * worker failed or returned one piece (an update with gaps is not split): the caller builds it in
 * one block. `wanted` is asked after the split and at every turn: once it is false (the document
 * was deleted meanwhile) the build stops there (`stopped`): a 100 MB document takes seconds of
 * CPU and some 1 GB of heap to build.
 */
export async function buildInSlices (ydoc: Y.Doc, updates: readonly Uint8Array[], logger: Logger, offer?: (pieces: readonly Uint8Array[]) => { readonly sendingPieces: boolean } | null, wanted: () => boolean = () => true): Promise<'built' | 'whole' | 'stopped'> {
  const started = performance.now()
  let pieces: Uint8Array[] | null
  try {
    pieces = await piecesOffLoop(updates, BUILD_PIECE_BYTES, wanted)
  } catch (err) {
    if (!wanted()) return 'stopped'
    logger.warn({ err }, 'the big document could not be split off the event loop; it is built in one block')
    return 'whole'
  }
  if (pieces === null || !wanted()) return 'stopped'
  if (pieces.length < 2) return 'whole'
  const split = performance.now() - started
  // a copy: the build below empties its own array as it goes
  const served = offer?.(pieces.slice()) ?? null
  let turns = 0
  for (let i = 0; i < pieces.length;) {
    const turn = performance.now()
    do {
      Y.applyUpdate(ydoc, pieces[i] as Uint8Array)
      // the applied piece is garbage at once
      pieces[i++] = EMPTY_UPDATE
    } while (i < pieces.length && performance.now() - turn < BUILD_TURN_MS)
    turns++
    if (i === pieces.length) break
    // while clients are sent the pieces, a slice every few turns' time: on a machine of few
    // cores the clients applying them, and the other documents, get the CPU first
    await new Promise(resolve => served?.sendingPieces === true ? setTimeout(resolve, BUILD_TURN_MS * BUILD_YIELD_WHILE_SENDING) : setImmediate(resolve))
    if (!wanted()) {
      logger.info({ pieces: pieces.length, applied: i, turns }, 'big document build stopped: the document was deleted')
      return 'stopped'
    }
  }
  logger.info({ pieces: pieces.length, turns, splitMs: Math.round(split), ms: Math.round(performance.now() - started) }, 'big document built in slices')
  return 'built'
}
