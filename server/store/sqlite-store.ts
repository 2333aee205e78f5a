import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { Worker } from 'node:worker_threads'
import type { NewVersion, OutboxEntry, OutboxEvent, Revocation, Store, StoreEntry, Tombstone, VersionInfo, VersionPolicy } from './store.js'
import type { ClientOwner } from '../document/client-owners.js'
import { foldRows, type FoldHow } from '../document/off-loop.js'

interface Pending {
  resolve: (value: unknown) => void
  reject: (err: Error) => void
}

type Reply =
  | { ready: true }
  | { fatal: string }
  | { id: number, result: unknown }
  | { id: number, error: { message: string, code?: string } }

const WORKER = new URL('./sqlite-worker.cjs', import.meta.url)

/** The rows a compaction folds (sqlite-worker.cjs, planOf). */
interface CompactionPlan { first: number, last: number, count: number, bytes: number, how: FoldHow, rows: Uint8Array[] }

/**
 * The embedded default Store: one SQLite file in WAL mode, driven from a worker thread
 * (sqlite-worker.cjs), so that commits, compactions and checkpoints never block the event loop
 * that relays updates. A commit reaches the operating system before `append` resolves, so it
 * survives SIGKILL of the server; `synchronous = NORMAL` trades the last commits on power loss
 * for speed (set `durability: 'full'` to fsync every commit).
 *
 * Requests are answered in the order they are made. If the worker dies, the requests in flight
 * fail (the update writer retries them) and the next request starts a new worker.
 */
export class SqliteStore implements Store {
  /** Resolves once the database is open; rejects with the reason it cannot be. */
  readonly ready: Promise<void>
  private readonly file: string
  private worker: Worker
  private readonly pending = new Map<number, Pending>()
  private nextId = 1
  private closed = false
  private broken = false

  /**
   * @param dir - folder of the database file (created if missing), or ':memory:'
   * @param options.durability - 'normal' (default) survives process crashes; 'full' also power loss
   */
  constructor (dir: string, private readonly options: { durability?: 'normal' | 'full' } = {}) {
    let file = ':memory:'
    if (dir !== ':memory:') {
      mkdirSync(dir, { recursive: true })
      file = join(dir, 'tandem.sqlite')
    }
    this.file = file
    const { worker, ready } = this.start()
    this.worker = worker
    this.ready = ready
  }

  /** Opens the store and waits until its database is open. */
  static async open (dir: string, options: { durability?: 'normal' | 'full' } = {}): Promise<SqliteStore> {
    const store = new SqliteStore(dir, options)
    try {
      await store.ready
    } catch (err) {
      await store.close()
      throw err
    }
    return store
  }

  async load (name: string): Promise<Uint8Array[]> {
    return await this.request('load', [name]) as Uint8Array[]
  }

  async loadOwners (name: string): Promise<ClientOwner[]> {
    return await this.request('loadOwners', [name]) as ClientOwner[]
  }

  async append (entries: readonly StoreEntry[]): Promise<void> {
    await this.request('append', [entries])
  }

  async compact (name: string, snapshot?: () => Uint8Array): Promise<void> {
    // the snapshot is taken now: it holds every update sent to the worker before this request
    if (snapshot !== undefined) {
      await this.request('compact', [name, snapshot()])
      return
    }
    // without one: the worker reads the rows to fold, a thread of their own folds them, and the
    // worker replaces them if they are still as read (sqlite-worker.cjs, compactionPlan)
    const plan = await this.request('compactionPlan', [name]) as CompactionPlan | null
    if (plan === null) return
    const { rows, how, ...found } = plan
    const folded = await foldRows(rows, how)
    await this.request('replaceRows', [name, found, folded])
  }

  async tombstone (name: string): Promise<Tombstone | null> {
    return await this.request('tombstone', [name]) as Tombstone | null
  }

  async markDeleted (name: string, at: number): Promise<boolean> {
    return await this.request('markDeleted', [name, at]) as boolean
  }

  async restore (name: string): Promise<boolean> {
    return await this.request('restore', [name]) as boolean
  }

  async deletedBefore (before: number, limit: number): Promise<Array<{ name: string, deletedAt: number }>> {
    return await this.request('deletedBefore', [before, limit]) as Array<{ name: string, deletedAt: number }>
  }

  async purge (name: string, deletedAt: number, retired: Uint8Array): Promise<boolean> {
    return await this.request('purge', [name, deletedAt, retired]) as boolean
  }

  async nextFencingToken (name: string, resource: string): Promise<number> {
    return await this.request('nextFencingToken', [name, resource]) as number
  }

  async saveVersion (name: string, version: NewVersion, policy: VersionPolicy): Promise<VersionInfo | null> {
    return await this.request('saveVersion', [name, version, policy]) as VersionInfo | null
  }

  async versions (name: string): Promise<VersionInfo[]> {
    return await this.request('versions', [name]) as VersionInfo[]
  }

  async versionState (name: string, id: string): Promise<Uint8Array | null> {
    return await this.request('versionState', [name, id]) as Uint8Array | null
  }

  async dueForVersion (olderThanMs: number, limit: number): Promise<string[]> {
    return await this.request('dueForVersion', [olderThanMs, limit]) as string[]
  }

  async enqueueEvents (entries: readonly OutboxEntry[]): Promise<void> {
    await this.request('enqueueEvents', [entries])
  }

  async claimEvents (owner: string, leaseMs: number, limit: number): Promise<OutboxEvent[]> {
    return await this.request('claimEvents', [owner, leaseMs, limit]) as OutboxEvent[]
  }

  async settleEvent (seq: number, retryAt: number | null): Promise<void> {
    await this.request('settleEvent', [seq, retryAt])
  }

  async pendingEvents (): Promise<number> {
    return await this.request('pendingEvents', []) as number
  }

  async addRevocation (revocation: Revocation): Promise<void> {
    await this.request('addRevocation', [revocation])
  }

  async revocations (now: number): Promise<Revocation[]> {
    return await this.request('revocations', [now]) as Revocation[]
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    if (!this.broken) {
      const id = this.nextId++
      // settled either way: a failed close still ends with the terminate below
      const done = new Promise<void>(resolve => this.pending.set(id, { resolve: () => resolve(), reject: () => resolve() }))
      this.worker.postMessage({ id, op: 'close', args: [] })
      await done
    }
    await this.worker.terminate()
  }

  private start (): { worker: Worker, ready: Promise<void> } {
    const worker = new Worker(WORKER, { workerData: { file: this.file, durability: this.options.durability } })
    // the worker never keeps the process alive by itself; open sockets and timers do
    worker.unref()
    this.broken = false
    // why the worker died, when it said: the requests it leaves unanswered fail with it
    let cause = ''
    const ready = new Promise<void>((resolve, reject) => {
      worker.on('message', (reply: Reply) => {
        if ('ready' in reply) return resolve()
        if ('fatal' in reply) {
          this.broken = true
          cause = `: ${reply.fatal}`
          return reject(new Error(reply.fatal))
        }
        const request = this.pending.get(reply.id)
        if (request === undefined) return
        this.pending.delete(reply.id)
        if ('error' in reply) request.reject(Object.assign(new Error(reply.error.message), { code: reply.error.code }))
        else request.resolve(reply.result)
      })
      worker.on('error', err => {
        this.broken = true
        cause = `: ${err.message}`
        reject(err)
      })
      worker.on('exit', code => {
        if (this.worker !== worker) return
        this.broken = true
        cause ||= ` with code ${code}`
        reject(new Error(`the SQLite worker exited before it was ready${cause}`))
        const err = new Error(this.closed ? 'the store is closed' : `the SQLite worker exited${cause}`)
        for (const request of this.pending.values()) request.reject(err)
        this.pending.clear()
      })
    })
    // a worker nobody awaits the opening of (a restart) reports its failure through its requests
    ready.catch(() => {})
    return { worker, ready }
  }

  private request (op: string, args: unknown[]): Promise<unknown> {
    if (this.closed) return Promise.reject(new Error('the store is closed'))
    if (this.broken) {
      const { worker } = this.start()
      this.worker = worker
    }
    const id = this.nextId++
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject })
      this.worker.postMessage({ id, op, args })
    })
  }
}
