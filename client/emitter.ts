/**
 * A small typed event emitter that runs in browsers and Node alike. A handler that throws is
 * isolated: the others still run, and the error is reported to `onHandlerError`.
 */
export class Emitter<Events extends { [K in keyof Events]: (...args: never[]) => void }> {
  private readonly handlers = new Map<keyof Events, Set<Events[keyof Events]>>()

  constructor (private readonly onHandlerError: (err: unknown) => void = () => {}) {}

  /** Adds a handler; returns the function that removes it. */
  on<K extends keyof Events> (event: K, handler: Events[K]): () => void {
    let set = this.handlers.get(event)
    if (set === undefined) this.handlers.set(event, set = new Set())
    set.add(handler)
    return () => this.off(event, handler)
  }

  /** Removes a handler. */
  off<K extends keyof Events> (event: K, handler: Events[K]): void {
    this.handlers.get(event)?.delete(handler)
  }

  /** Calls every handler of `event`. */
  emit<K extends keyof Events> (event: K, ...args: Parameters<Events[K]>): void {
    for (const handler of [...(this.handlers.get(event) ?? [])]) {
      try {
        (handler as (...a: Parameters<Events[K]>) => void)(...args)
      } catch (err) {
        this.onHandlerError(err)
      }
    }
  }

  /** Removes every handler. */
  clear (): void {
    this.handlers.clear()
  }
}
