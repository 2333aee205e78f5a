/**
 * The worker thread of slice-build.ts: receives a big document's stored rows (their buffers
 * transferred), merges them into one update and splits it into causal pieces (shared/
 * split-update.ts), and sends the pieces back, transferred. One request per worker; an error
 * is replied as `{ error }`.
 */
import { parentPort } from 'node:worker_threads'
import { mergeUpdates } from './merge.js'
import { splitUpdate } from '../../shared/split-update.js'

interface Request { rows: Uint8Array[], pieceBytes: number }

const port = parentPort
if (port === null) throw new Error('build-worker.js runs in a worker thread')
port.once('message', ({ rows, pieceBytes }: Request) => {
  try {
    const merged = rows.length === 1 ? rows[0] as Uint8Array : mergeUpdates(rows)
    rows.length = 0
    const pieces = splitUpdate(merged, pieceBytes)
    // a piece may share the merged update's buffer (an update returned whole): copied once then
    const owned = pieces.map(piece => piece.byteOffset === 0 && piece.byteLength === piece.buffer.byteLength ? piece : piece.slice())
    const buffers = [...new Set(owned.map(piece => piece.buffer as ArrayBuffer))]
    port.postMessage({ pieces: owned }, buffers)
  } catch (err) {
    port.postMessage({ error: (err as Error).message })
  }
})
