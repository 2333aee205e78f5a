import { TandemError } from '../shared/errors.js'

interface Waiter {
  resolve: () => void
  reject: (err: unknown) => void
}

/**
 * Promises waiting for the client's moments (`welcome`, `synced`, `flushed`): each resolves when
 * its moment is settled, or rejects on its timeout or when the client is torn down.
 */
export class Waiters<K extends string> {
  private readonly sets = new Map<K, Set<Waiter>>()

  /** Resolves at the next `settle(what)`; with `timeoutMs`, rejects with DISCONNECTED after it. */
  wait (what: K, timeoutMs?: number): Promise<void> {
    return new Promise((resolve, reject) => {
      let set = this.sets.get(what)
      if (set === undefined) this.sets.set(what, set = new Set())
      let timer: ReturnType<typeof setTimeout> | undefined
      const waiter: Waiter = {
        resolve: () => { clearTimeout(timer); resolve() },
        reject: err => { clearTimeout(timer); reject(err) }
      }
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          set.delete(waiter)
          reject(new TandemError('TANDEM_ERR_DISCONNECTED', `not connected within ${timeoutMs} ms`))
        }, timeoutMs)
      }
      set.add(waiter)
    })
  }

  /** Resolves everyone waiting for `what`. */
  settle (what: K): void {
    const set = this.sets.get(what)
    if (set === undefined) return
    for (const waiter of set) waiter.resolve()
    set.clear()
  }

  /** Rejects everyone waiting, for anything. */
  rejectAll (error: unknown): void {
    for (const set of this.sets.values()) {
      for (const waiter of set) waiter.reject(error)
      set.clear()
    }
  }
}
