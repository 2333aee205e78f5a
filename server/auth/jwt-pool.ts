import { availableParallelism } from 'node:os'
import { Worker } from 'node:worker_threads'
import { TandemError } from '../../shared/errors.js'

const WORKER = new URL('./jwt-worker.mjs', import.meta.url)
/** The most tokens one message to a worker carries. */
const MAX_BATCH = 256

interface Pending {
  resolve (claims: Record<string, unknown>): void
  reject (err: Error): void
}

interface Thread {
  worker: Worker
  /** Resolves once the worker can verify (or has failed: its tokens then fail). */
  readonly ready: Promise<void>
  /** The ids this worker has been sent and not answered. */
  readonly inFlight: Set<number>
}

/**
 * Verifies HS256 JWTs in worker threads (jwt-worker.mjs, running jose), so that a burst of
 * upgrades or refreshes costs the event loop a message per batch instead of 40-70 µs of CPU per
 * token. The tokens asked for in one event-loop turn go to a worker in one message (at most
 * MAX_BATCH each), to the worker with the fewest in flight. Workers start on first use, are
 * held open only while they have work, and a dead one fails its tokens (an authenticator
 * failure, not a refusal) and is replaced on next use.
 */
export class JwtPool {
  private readonly threads: Thread[] = []
  private readonly pending = new Map<number, Pending>()
  private queue: Array<{ id: number, token: string }> = []
  private flushing: NodeJS.Immediate | undefined
  private nextId = 1
  private closed = false

  constructor (
    private readonly secret: string,
    private readonly size = Math.max(1, Math.min(2, availableParallelism() - 1))
  ) {}

  /** The token's claims; rejects with TANDEM_ERR_UNAUTHENTICATED ('token expired', 'invalid token'). */
  verify (token: string): Promise<Record<string, unknown>> {
    if (this.closed) return Promise.reject(new Error('token verification is closed'))
    const id = this.nextId++
    this.queue.push({ id, token })
    this.flushing ??= setImmediate(() => this.flush())
    return new Promise((resolve, reject) => { this.pending.set(id, { resolve, reject }) })
  }

  /** Starts a worker now (the server listens) and resolves once it is ready: no token waits for one to start. */
  async warm (): Promise<void> {
    if (this.closed) return
    await (this.threads[0] ?? this.start()).ready
  }

  /** Stops the workers; tokens in flight fail. Safe to call twice. */
  close (): void {
    this.closed = true
    if (this.flushing !== undefined) clearImmediate(this.flushing)
    this.flushing = undefined
    for (const { worker } of this.threads) void worker.terminate()
    this.threads.length = 0
    this.failAll(new Error('token verification is closed'))
  }

  private flush (): void {
    this.flushing = undefined
    const queue = this.queue
    this.queue = []
    for (let start = 0; start < queue.length; start += MAX_BATCH) {
      const batch = queue.slice(start, start + MAX_BATCH)
      const thread = this.pick()
      for (const { id } of batch) thread.inFlight.add(id)
      thread.worker.ref()
      thread.worker.postMessage({ ids: batch.map(b => b.id), tokens: batch.map(b => b.token) })
    }
  }

  /** The thread with the fewest tokens in flight, started when there are fewer than `size`. */
  private pick (): Thread {
    let best: Thread | undefined
    for (const thread of this.threads) if (best === undefined || thread.inFlight.size < best.inFlight.size) best = thread
    if (best !== undefined && (best.inFlight.size === 0 || this.threads.length >= this.size)) return best
    return this.start()
  }

  private start (): Thread {
    const worker = new Worker(WORKER, { workerData: { secret: this.secret } })
    const ready = new Promise<void>(resolve => {
      worker.once('message', () => resolve())
      worker.once('error', () => resolve())
      worker.once('exit', () => resolve())
    })
    const thread: Thread = { worker, ready, inFlight: new Set() }
    // held open until ready: a server awaiting warm() has nothing else keeping the process alive
    void ready.then(() => { if (thread.inFlight.size === 0) worker.unref() })
    worker.on('message', ({ ids, results }: { ids?: number[], results: Array<Record<string, unknown> | 'expired' | 'invalid'> }) => {
      if (ids === undefined) return
      for (let i = 0; i < ids.length; i++) {
        const id = ids[i] as number
        thread.inFlight.delete(id)
        const pending = this.pending.get(id)
        if (pending === undefined) continue
        this.pending.delete(id)
        const result = results[i]
        if (typeof result === 'object' && result !== null) pending.resolve(result)
        else pending.reject(new TandemError('TANDEM_ERR_UNAUTHENTICATED', result === 'expired' ? 'token expired' : 'invalid token'))
      }
      if (thread.inFlight.size === 0) worker.unref()
    })
    const failed = (err: Error): void => {
      const index = this.threads.indexOf(thread)
      if (index >= 0) this.threads.splice(index, 1)
      for (const id of thread.inFlight) {
        this.pending.get(id)?.reject(err)
        this.pending.delete(id)
      }
      thread.inFlight.clear()
    }
    worker.on('error', failed)
    worker.on('exit', code => failed(new Error(`the token verification worker exited with ${code}`)))
    this.threads.push(thread)
    return thread
  }

  private failAll (err: Error): void {
    for (const pending of this.pending.values()) pending.reject(err)
    this.pending.clear()
    this.queue = []
  }
}
