import { onTestFinished } from 'vitest'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'

/** A real `tandem` process. */
export interface TandemProcess {
  /** `ws://127.0.0.1:PORT` */
  url: string
  /** `http://127.0.0.1:PORT` */
  http: string
  child: ChildProcess
  /** Log lines it printed so far (JSON). */
  logs: string[]
  /** Sends a signal and resolves with the exit code once it exited. */
  stop (signal?: NodeJS.Signals): Promise<number | null>
}

/**
 * Spawns `node dist/server/cli.js --port 0 ...args` and resolves once it logs the URL it listens
 * on. Killed (SIGKILL) after the test if still running.
 */
export async function startTandem (args: readonly string[]): Promise<TandemProcess> {
  const child = spawn(process.execPath, ['dist/server/cli.js', '--port', '0', '--log-level', 'info', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  const exited = once(child, 'exit').then(([code]) => code as number | null)
  onTestFinished(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await exited
    }
  })
  const logs: string[] = []
  let stderr = ''
  child.stderr?.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const url = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! })
    lines.on('line', line => {
      logs.push(line)
      const match = /listening on (ws:\/\/[^"\s]+)/.exec(line)
      if (match !== null) resolve(match[1] as string)
    })
    void exited.then(code => reject(new Error(`tandem exited with ${code} before listening: ${stderr.trim()}`)))
  })
  const stop = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal)
    return await exited
  }
  return { url, http: url.replace(/^ws:/, 'http:'), child, logs, stop }
}

/** The HTTP status of GET `path`, or 0 when the request fails. */
export async function httpStatus (base: string, path: string): Promise<number> {
  try {
    const response = await fetch(base + path)
    await response.body?.cancel()
    return response.status
  } catch {
    return 0
  }
}
