import { Worker } from 'node:worker_threads'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { mergeUpdates } from './merge.js'
import { snapshotOf } from './snapshot.js'

/**
 * Work on a whole stored document that would hold the event loop (or the SQLite worker, and every
 * commit waiting behind it) for as long as Yjs takes, done in a worker thread of its own
 * (build-worker.ts), below the event loop's priority: splitting a big document into the pieces
 * it is built from, and folding a document's rows into one for a compaction.
 */

/** Rows of fewer bytes than this are folded where they are: a worker's start costs more. */
export const FOLD_INLINE_BYTES = 64 * 1024

/** How a compaction folds rows: into a snapshot of the document they build (deleted content collected), or merged as they are. */
export type FoldHow = 'snapshot' | 'merge'

/**
 * The worker's compiled file, beside this module's in dist/. Under the tests this module runs
 * from its TypeScript source, which a worker thread cannot load: the compiled one in dist/
 * (`npm run build`) serves then.
 */
function workerFile (): URL {
  const beside = new URL('./build-worker.js', import.meta.url)
  if (!import.meta.url.endsWith('.ts')) return beside
  return new URL('../../dist/server/document/build-worker.js', import.meta.url)
}

/**
 * Workers running at once, at most; the other requests wait their turn, in order. Each is one
 * CPU-bound thread holding up to several times its document's size (a 100 MiB build, about
 * 1 GB): documents unloading together after a deploy each ask for a fold, and a thread each would
 * only share the same cores with more memory at once.
 */
const MAX_WORKERS = 2
let running = 0
/** Waiting requests: builds (a client waits for its document) go before folds (compactions). */
const waiting = { builds: [] as Array<() => void>, folds: [] as Array<() => void> }

/** Workers running now (at most MAX_WORKERS), and requests waiting for one. */
export function offLoopLoad (): { running: number, waiting: number } {
  return { running, waiting: waiting.builds.length + waiting.folds.length }
}

/**
 * Sends `request` (a build's or a fold's) to a new worker once one of MAX_WORKERS is free, and
 * resolves with its reply's `key`, or null when `wanted` turned false while it waited; rejects
 * when the worker fails or cannot start.
 */
async function ask<T> (kind: keyof typeof waiting, request: object, key: string, transfer: ArrayBuffer[] = [], wanted: () => boolean = () => true): Promise<T | null> {
  const file = workerFile()
  if (!existsSync(fileURLToPath(file))) throw new Error(`no off-loop worker at ${fileURLToPath(file)} (npm run build)`)
  // a finished request hands its place to the next waiting, if any
  if (running < MAX_WORKERS) running++
  else await new Promise<void>(resolve => waiting[kind].push(resolve))
  try {
    return wanted() ? await run<T>(file, request, key, transfer) : null
  } finally {
    const next = waiting.builds.shift() ?? waiting.folds.shift()
    if (next !== undefined) next()
    else running--
  }
}

async function run<T> (file: URL, request: object, key: string, transfer: ArrayBuffer[]): Promise<T> {
  const worker = new Worker(file)
  // work in progress never keeps the process alive by itself
  worker.unref()
  try {
    return await new Promise<T>((resolve, reject) => {
      worker.once('message', (reply: Record<string, unknown>) => {
        if (reply[key] !== undefined) resolve(reply[key] as T)
        else reject(new Error(typeof reply.error === 'string' ? reply.error : 'the off-loop worker replied nothing'))
      })
      worker.once('error', reject)
      worker.once('exit', code => reject(new Error(`the off-loop worker exited (code ${code})`)))
      worker.postMessage(request, transfer)
    })
  } finally {
    void worker.terminate()
  }
}

/**
 * Merges a big document's stored rows and splits the result into causal pieces of about
 * `pieceBytes` (shared/split-update.ts): applied in order, the pieces build the document the rows
 * build. The rows are copied to the worker, not transferred: a store may keep them (the memory
 * store hands out its own arrays), and the one-block build falls back on them when the worker
 * fails. The pieces come back transferred. Null when `wanted` turned false while it waited for a
 * worker (the document was deleted); rejects when the worker fails or cannot start.
 */
export async function piecesOffLoop (rows: readonly Uint8Array[], pieceBytes: number, wanted?: () => boolean): Promise<Uint8Array[] | null> {
  return await ask<Uint8Array[]>('builds', { rows, pieceBytes }, 'pieces', [], wanted)
}

/**
 * A compaction's rows folded into one (`how`), off the event loop when they are FOLD_INLINE_BYTES
 * or more: the fold of 2-4 MiB of typed text takes 0.1-0.5 s. The memory of rows that own all
 * of their buffer is moved to the worker (the caller must not use them after), the rest copied.
 * Folded here when there is no compiled worker (the tests, before `npm run build`); rejects when
 * the worker fails.
 */
export async function foldRows (rows: readonly Uint8Array[], how: FoldHow): Promise<Uint8Array> {
  let bytes = 0
  for (const row of rows) bytes += row.byteLength
  if (bytes < FOLD_INLINE_BYTES || !existsSync(fileURLToPath(workerFile()))) return how === 'snapshot' ? snapshotOf(rows) : mergeUpdates(rows)
  return await ask<Uint8Array>('folds', { rows, fold: how }, 'folded', movable(rows)) as Uint8Array
}

/**
 * The buffers of `rows` that a row covers whole (its own memory: it can move to a worker); the
 * others (a slice of a bigger buffer, such as Node's pool for small ones) are copied.
 */
function movable (rows: readonly Uint8Array[]): ArrayBuffer[] {
  const buffers = new Set<ArrayBuffer>()
  for (const { buffer, byteOffset, byteLength } of rows) {
    if (buffer instanceof ArrayBuffer && byteOffset === 0 && byteLength === buffer.byteLength) buffers.add(buffer)
  }
  return [...buffers]
}
