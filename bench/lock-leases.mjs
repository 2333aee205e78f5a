// The CPU an idle server spends keeping many locks leased (issue 23 #7), measured on a real
// server process: 90 connections, each to its own document, each asking for 990 locks with a
// 10 ms lease, then idle for 5 s while the server's CPU is read from /proc.
//   npm run build && node bench/lock-leases.mjs
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import WebSocket from 'ws'
import { readFrame, writeTandem } from '../dist/shared/messages.js'

const CONNECTIONS = 90
const LOCKS = 990
const IDLE_MS = 5_000

const cpuMs = pid => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) * 10
}

async function run (label, flags, locks = LOCKS) {
  const dir = mkdtempSync(join(tmpdir(), 'tandem-bench-'))
  const child = spawn(process.execPath, ['dist/server/cli.js', '--port', '0', '--data', dir, '--log-level', 'info', '--max-connections-per-ip', '0', ...flags], { stdio: ['ignore', 'pipe', 'inherit'] })
  const url = await new Promise((resolve, reject) => {
    let out = ''
    child.stdout.on('data', chunk => {
      out += chunk
      const match = /listening on (ws:\/\/[^"\s]+)/.exec(out)
      if (match !== null) resolve(match[1])
    })
    child.on('exit', code => reject(new Error(`server exited with ${code}`)))
  })
  let granted = 0
  let refused = 0
  const sockets = await Promise.all(Array.from({ length: CONNECTIONS }, (_, i) => new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url}/leases-${i}?tandem=1&user=u${i}`)
    ws.binaryType = 'nodebuffer'
    let answered = 0
    ws.on('message', data => {
      const frame = readFrame(data)
      if (frame.type === 'tandem' && frame.message.type === 'lock-reply') {
        if (frame.message.code === '') granted++
        else refused++
        if (++answered === locks) resolve(ws)
      }
    })
    ws.on('open', () => {
      if (locks === 0) resolve(ws)
      for (let id = 1; id <= locks; id++) ws.send(writeTandem({ type: 'lock-acquire', id, resource: `block:${id}`, ttlMs: 10, waitMs: 0 }))
    })
    ws.on('error', reject)
  })))
  const before = cpuMs(child.pid)
  const started = Date.now()
  await new Promise(resolve => setTimeout(resolve, IDLE_MS))
  const cpu = (cpuMs(child.pid) - before) / (Date.now() - started)
  // locks still held after the idle spell: a lease that lapsed while its session lived is a bug
  const http = url.replace(/^ws/, 'http')
  let held = 0
  for (let i = 0; i < CONNECTIONS; i++) held += (await (await fetch(`${http}/api/documents/leases-${i}/locks`)).json()).length
  console.log(`${label.padEnd(56)} granted ${String(granted).padStart(5)}  refused ${String(refused).padStart(5)}  held after ${IDLE_MS / 1000} s ${String(held).padStart(5)}  idle server CPU ${(cpu * 100).toFixed(1)}% of a core`)
  for (const ws of sockets) ws.terminate()
  child.kill('SIGTERM')
  await new Promise(resolve => child.on('exit', resolve))
  rmSync(dir, { recursive: true, force: true })
}

await run('baseline: the same connections, no lock', [], 0)
await run('defaults (--lock-min-ttl 1000, --max-locks-per-session 100)', [])
await run('no cap (--max-locks-per-session 0), min lease 1000 ms', ['--max-locks-per-session', '0'])
await run('no cap, min lease 1 ms (the leases asked for: 10 ms)', ['--max-locks-per-session', '0', '--lock-min-ttl', '1'])
