/**
 * A delete-only update (splitUpdate's last part) as several delete-only updates of about
 * `maxBytes`; any other update as it is.
 */
function splitDeletes (update: Uint8Array, maxBytes: number): Uint8Array[] {
  if (update.byteLength <= maxBytes) return [update]
  const { structs, ds } = Y.decodeUpdate(update)
  if (structs.length > 0) return [update]
  const parts: Uint8Array[] = []
  // a range is two varUints: at most 10 bytes, usually 3 to 6
  const perPart = Math.max(1, Math.floor(maxBytes / 8))
  let part: Array<[number, Array<{ clock: number, len: number }>]> = []
  let count = 0
  const flush = (): void => {
    if (count === 0) return
    const encoder = encoding.createEncoder()
    encoding.writeVarUint(encoder, 0) // no structs
    encoding.writeVarUint(encoder, part.length)
    for (const [client, ranges] of part) {
      encoding.writeVarUint(encoder, client)
      encoding.writeVarUint(encoder, ranges.length)
      for (const { clock, len } of ranges) {
        encoding.writeVarUint(encoder, clock)
        encoding.writeVarUint(encoder, len)
      }
    }
    parts.push(encoding.toUint8Array(encoder))
    part = []
    count = 0
  }
  for (const [client, items] of ds.clients) {
    let i = 0
    while (i < items.length) {
      const ranges = items.slice(i, i + perPart - count)
      i += ranges.length
      part.push([client, ranges])
      count += ranges.length
      if (count >= perPart) flush()
    }
  }
  flush()
  return parts
}

/**
 * The worker thread of off-loop.ts: receives a document's stored rows, merges them into one
 * update and splits it into causal pieces (shared/split-update.ts), and sends the pieces back,
 * transferred; or, for a compaction, folds them into one update (a snapshot, or merged) and sends
 * that back. One request per worker; an error is replied as `{ error }`.
 */
import { readlinkSync } from 'node:fs'
import { getPriority, setPriority } from 'node:os'
import { parentPort } from 'node:worker_threads'
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import { mergeUpdates } from './merge.js'
import { snapshotOf } from './snapshot.js'
import type { FoldHow } from './off-loop.js'
import { splitUpdate } from '../../shared/split-update.js'

/** Split the merged rows into pieces of `pieceBytes`, or (`fold`) fold them into one update. */
interface Request { rows: Uint8Array[], pieceBytes?: number, fold?: FoldHow }

const port = parentPort
if (port === null) throw new Error('build-worker.js runs in a worker thread')

// Below the event loop's priority, as the JWT worker (auth/jwt-worker.mjs): when the cores are
// busy, other documents' updates get them first; a big document waits for its build anyway.
try {
  const thread = Number(readlinkSync('/proc/thread-self').split('/').pop())
  setPriority(thread, Math.min(19, getPriority(thread) + 10))
} catch {
  // not Linux: the same priority as the event loop
}
port.once('message', ({ rows, pieceBytes = 64 * 1024, fold }: Request) => {
  try {
    if (fold !== undefined) {
      const folded = fold === 'snapshot' ? snapshotOf(rows) : mergeUpdates(rows)
      port.postMessage({ folded }, [folded.buffer as ArrayBuffer])
      return
    }
    const merged = rows.length === 1 ? rows[0] as Uint8Array : mergeUpdates(rows)
    rows.length = 0
    const pieces = splitUpdate(merged, pieceBytes)
    // the delete set travels last, whole: applied at once with its garbage collection it held
    // the loop for 0.6 s (100 MiB typed); in parts it applies the same
    const last = pieces.length > 1 ? pieces.pop() as Uint8Array : null
    if (last !== null) pieces.push(...splitDeletes(last, pieceBytes))
    // a piece may share the merged update's buffer (an update returned whole): copied once then
    const owned = pieces.map(piece => piece.byteOffset === 0 && piece.byteLength === piece.buffer.byteLength ? piece : piece.slice())
    const buffers = [...new Set(owned.map(piece => piece.buffer as ArrayBuffer))]
    port.postMessage({ pieces: owned }, buffers)
  } catch (err) {
    port.postMessage({ error: (err as Error).message })
  }
})
