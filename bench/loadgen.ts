import { checkInsertEncoding } from './updates.js'
import { Storm, type StormSpec } from './storm.js'
import { fanout, ladder, syncFromStorage, storageThroughput, IdleCrowd, type Target } from './workloads.js'

/**
 * The load generator: a child process of the bench runner, so that its CPU is never counted as
 * the server's and the runner's bookkeeping never delays a receipt. It takes one command at a time
 * over IPC and answers with the result.
 */
export type Command =
  | { cmd: 'fanout', target: Target, spec: Parameters<typeof fanout>[1] }
  | { cmd: 'ladder', target: Target, spec: Parameters<typeof ladder>[1] }
  | { cmd: 'idle-open', target: Target, count: number, perDoc: number, quietMs: number, maxWaitMs: number, prefix: string, seed: number, upTo?: number }
  | { cmd: 'idle-more', quietMs: number, maxWaitMs: number }
  | { cmd: 'idle-close' }
  | { cmd: 'sync', target: Target, spec: Parameters<typeof syncFromStorage>[1] }
  | { cmd: 'storage', target: Target, spec: Parameters<typeof storageThroughput>[1] }
  | { cmd: 'storm-open', target: Target, spec: StormSpec }
  | { cmd: 'storm-close' }

let crowd: IdleCrowd | undefined
let storm: Storm | undefined

async function handle (command: Command): Promise<unknown> {
  switch (command.cmd) {
    case 'fanout': return await fanout(command.target, command.spec)
    case 'ladder': return await ladder(command.target, command.spec)
    case 'idle-open':
      crowd = new IdleCrowd(command.target, command.count, command.perDoc, command.prefix, command.seed)
      return await crowd.open(command.quietMs, command.maxWaitMs, command.upTo)
    case 'idle-more':
      if (crowd === undefined) throw new Error('idle-more before idle-open')
      return await crowd.open(command.quietMs, command.maxWaitMs)
    case 'idle-close':
      await crowd?.close()
      crowd = undefined
      return null
    case 'sync': return await syncFromStorage(command.target, command.spec)
    case 'storage': return await storageThroughput(command.target, command.spec)
    case 'storm-open':
      storm = new Storm(command.target, command.spec)
      return await storm.open()
    case 'storm-close':
      await storm?.close()
      storm = undefined
      return null
  }
}

checkInsertEncoding()
process.on('message', (message: { id: number, command: Command }) => {
  handle(message.command).then(
    result => process.send?.({ id: message.id, result }),
    (err: unknown) => process.send?.({ id: message.id, error: err instanceof Error ? err.stack ?? err.message : String(err) })
  )
})
process.send?.({ ready: true })
