import { fork, type ChildProcess } from 'node:child_process'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Command } from './loadgen.js'

/** The runner's handle on the load-generator child process. */
export class LoadGenerator {
  private nextId = 1
  private readonly waiting = new Map<number, { resolve: (value: unknown) => void, reject: (err: Error) => void }>()

  private constructor (private readonly child: ChildProcess) {
    child.on('message', (message: { id?: number, result?: unknown, error?: string }) => {
      if (message.id === undefined) return
      const waiter = this.waiting.get(message.id)
      this.waiting.delete(message.id)
      if (message.error !== undefined) waiter?.reject(new Error(message.error))
      else waiter?.resolve(message.result)
    })
    child.on('exit', code => {
      for (const waiter of this.waiting.values()) waiter.reject(new Error(`load generator exited with ${code}`))
      this.waiting.clear()
    })
  }

  /** Forks the load generator and waits until it has checked its update encoding. */
  static async start (): Promise<LoadGenerator> {
    const script = join(dirname(fileURLToPath(import.meta.url)), 'loadgen.js')
    const child = fork(script, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: ['--max-old-space-size=4096'] })
    await new Promise<void>((resolve, reject) => {
      child.once('message', () => resolve())
      child.once('exit', code => reject(new Error(`load generator exited with ${code} at start`)))
    })
    return new LoadGenerator(child)
  }

  /** Runs one command in the load generator. */
  run<T> (command: Command): Promise<T> {
    const id = this.nextId++
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (value: unknown) => void, reject })
      this.child.send({ id, command })
    })
  }

  stop (): void {
    this.child.kill()
  }
}
