import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { onTestFinished } from 'vitest'

const CLI = fileURLToPath(new URL('../../dist/server/cli.js', import.meta.url))

/** A `tandem` binary running in a child process. */
export interface TandemProcess {
  proc: ChildProcess
  url: string
  port: number
  /** Everything it printed so far (stdout and stderr). */
  output: () => string
  /** Resolves with the exit code (or signal) once the process exits. */
  exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
}

/**
 * Starts `node dist/server/cli.js` with the given flags (port 0 unless given) and resolves once
 * it logs the URL it listens on. The process is killed after the test if still running.
 */
export async function spawnTandem (args: string[], env: NodeJS.ProcessEnv = {}): Promise<TandemProcess> {
  const withPort = args.includes('--port') ? args : ['--port', '0', ...args]
  const proc = spawn(process.execPath, [CLI, ...withPort], {
    env: { ...process.env, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let text = ''
  proc.stdout?.on('data', (chunk: Buffer) => { text += chunk.toString() })
  proc.stderr?.on('data', (chunk: Buffer) => { text += chunk.toString() })
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>(resolve => {
    proc.once('exit', (code, signal) => resolve({ code, signal }))
  })
  onTestFinished(async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGKILL')
      await exited
    }
  })
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`tandem did not start:\n${text}`)), 15_000)
    const check = (): void => {
      const match = /listening on (ws:\/\/[^"\s]+)/.exec(text)
      if (match !== null) {
        clearTimeout(timer)
        proc.stdout?.off('data', check)
        resolve(match[1] as string)
      }
    }
    proc.stdout?.on('data', check)
    void exited.then(({ code }) => { clearTimeout(timer); reject(new Error(`tandem exited with ${code}:\n${text}`)) })
  })
  return { proc, url, port: Number(new URL(url).port), output: () => text, exited }
}

/** Runs the binary to completion (for flag errors); resolves with its exit code and output. */
export function runTandem (args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null, output: string }> {
  return new Promise(resolve => {
    const proc = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    proc.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
    proc.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
    proc.once('exit', code => resolve({ code, output }))
  })
}
