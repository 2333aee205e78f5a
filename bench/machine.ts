import os from 'node:os'

/** The machine a bench ran on, for the table's header. */
export interface Machine {
  cpus: number
  cpuModel: string
  memoryGiB: number
  node: string
  os: string
  loadBefore: number[]
}

export function describeMachine (): Machine {
  return {
    cpus: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    loadBefore: os.loadavg().map(n => Math.round(n * 100) / 100)
  }
}
