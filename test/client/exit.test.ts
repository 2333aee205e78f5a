import { spawn } from 'node:child_process'
import { afterEach, describe, expect, it } from 'vitest'
import type { TandemServer } from '../../server/index.js'
import { docName, startServer } from '../support/helpers.js'

// A script that connects a TandemClient, waits for its welcome, then leaves or destroys it, and
// lets the process end by itself: nothing of the client may keep the event loop alive.
const script = (url: string, doc: string, end: 'destroy' | 'leave'): string => `
import WebSocket from 'ws'
import { TandemClient } from './dist/client/index.js'
const client = new TandemClient({ url: ${JSON.stringify(url)}, document: ${JSON.stringify(doc)}, WebSocketPolyfill: WebSocket, user: { name: 'Ada' } })
await client.synced()
${end === 'destroy' ? 'client.destroy()' : 'await client.leave()'}
console.log('ended')
`

function runUntilExit (source: string, limitMs: number): Promise<{ code: number | null, output: string, exited: boolean }> {
  return new Promise(resolve => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', source], { cwd: process.cwd(), stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', chunk => { output += String(chunk) })
    child.stderr.on('data', chunk => { output += String(chunk) })
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      resolve({ code: null, output, exited: false })
    }, limitMs)
    child.once('exit', code => {
      clearTimeout(timer)
      resolve({ code, output, exited: true })
    })
  })
}

describe('a Node process using the client', () => {
  let server: TandemServer | undefined
  afterEach(async () => { await server?.close(); server = undefined })

  for (const end of ['destroy', 'leave'] as const) {
    it(`ends by itself after ${end}() (no timer of the client keeps it alive)`, async () => {
      server = await startServer()
      // the awareness check runs every 3 s and renews the state every 15 s: 10 s would see it
      const result = await runUntilExit(script(server.url, docName('exit'), end), 10_000)
      expect(result.output).toContain('ended')
      expect(result.exited).toBe(true)
      expect(result.code).toBe(0)
    }, 20_000)
  }
})
