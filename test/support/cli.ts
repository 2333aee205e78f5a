// The one helper that runs the `tandem` binary (dist/server/cli.js, built by `npm test`).
import { onTestFinished } from 'vitest'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

const CLI = fileURLToPath(new URL('../../dist/server/cli.js', import.meta.url))

/** A real `tandem` process. */
export interface TandemProcess {
  /** `ws://127.0.0.1:PORT` */
  url: string
  /** `http://127.0.0.1:PORT` */
  http: string
  port: number
  child: ChildProcess
  /** Lines it printed on stdout so far (JSON log lines). */
  logs: string[]
  /** Everything it printed so far, stdout and stderr. */
  output: () => string
  /** Resolves with the exit code (or signal) once it exited. */
  exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
  /** Sends a signal (SIGTERM by default) and resolves with the exit code once it exited. */
  stop (signal?: NodeJS.Signals): Promise<number | null>
}

/**
 * Spawns `node dist/server/cli.js ...args` (with `--port 0` and `--log-level info` unless given)
 * and resolves once it logs the URL it listens on; rejects if it exits first or does not start
 * within 15 s. Killed (SIGKILL) after the test if still running.
 */
export async function startTandem (args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<TandemProcess> {
  const flags = [...args]
  if (!flags.includes('--port')) flags.unshift('--port', '0')
  if (!flags.includes('--log-level')) flags.push('--log-level', 'info')
  const child = spawn(process.execPath, [CLI, ...flags], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  const exited = once(child, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }))
  onTestFinished(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await exited
    }
  })
  const logs: string[] = []
  let text = ''
  child.stderr?.on('data', (chunk: Buffer) => { text += chunk.toString() })
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`tandem did not start within 15 s:\n${text}`)), 15_000)
    const lines = createInterface({ input: child.stdout! })
    lines.on('line', line => {
      logs.push(line)
      text += `${line}\n`
      const match = /listening on (ws:\/\/[^"\s]+)/.exec(line)
      if (match !== null) {
        clearTimeout(timer)
        resolve(match[1] as string)
      }
    })
    void exited.then(({ code }) => {
      clearTimeout(timer)
      reject(new Error(`tandem exited with ${code} before listening:\n${text}`))
    })
  })
  const stop = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal)
    return (await exited).code
  }
  return { url, http: url.replace(/^ws:/, 'http:'), port: Number(new URL(url).port), child, logs, output: () => text, exited, stop }
}

/** Runs the binary to completion (for flag errors); resolves with its exit code and output. */
export function runTandem (args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null, output: string }> {
  return new Promise(resolve => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
    child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
    child.once('exit', code => resolve({ code, output }))
  })
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
