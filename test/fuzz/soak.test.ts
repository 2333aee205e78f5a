/**
 * Soak: thousands of join/leave cycles over hundreds of documents against a real server with
 * SQLite. Afterwards nothing may remain (documents, sessions, connection slots, timers,
 * listeners) and the heap after gc must be back near its baseline. `npm test` runs a bounded
 * pass; `npm run soak` a long one (SOAK_CYCLES, SOAK_DOCS).
 */
import { expect, test } from 'vitest'
import * as Y from 'yjs'
import { once } from 'node:events'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import WebSocket from 'ws'
import { writeSyncUpdate, writeAwareness, writeTandem, readFrame } from '../../shared/messages.js'
import { writeAwarenessUpdate } from '../../shared/awareness.js'
import { CloseCode } from '../../shared/constants.js'
import { startServer, tempDir, waitFor } from '../support/helpers.js'

const CYCLES = Number(process.env.SOAK_CYCLES ?? 3_000)
const DOCS = Number(process.env.SOAK_DOCS ?? 300)
const CONCURRENCY = 16
const WARMUP = 300

// gc() without a vitest flag: allowed at run time, then fetched from a fresh context
setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

function heapAfterGc (): number {
  for (let i = 0; i < 3; i++) gc()
  return process.memoryUsage().heapUsed
}

function processListeners (): number {
  return process.eventNames().reduce((n, name) => n + process.listenerCount(name), 0)
}

function timers (): number {
  return process.getActiveResourcesInfo().filter(r => r === 'Timeout').length
}

/** True for a Tandem lock-reply frame. */
function isLockReply (data: Buffer): boolean {
  const frame = readFrame(data)
  return frame.type === 'tandem' && frame.message.type === 'lock-reply'
}

/**
 * One client's whole life: join, receive sync step 1, edit, set awareness, leave with 1000.
 * Every other client is a Tandem client that also takes an edit lock and waits for the grant.
 */
async function cycle (url: string, doc: string, n: number): Promise<void> {
  const tandem = n % 2 === 0
  const ws = new WebSocket(`${url}/${doc}${tandem ? '?tandem=1' : ''}`)
  ws.on('error', () => {})
  const first = once(ws, 'message')
  await once(ws, 'open')
  await first
  const ydoc = new Y.Doc()
  ydoc.clientID = n + 1
  ydoc.getText('t').insert(0, `cycle ${n};`)
  ws.send(writeSyncUpdate(Y.encodeStateAsUpdate(ydoc)))
  ws.send(writeAwareness(writeAwarenessUpdate([{ clientId: n + 1, clock: 1, state: JSON.stringify({ user: { name: `u${n}` } }) }])))
  ydoc.destroy()
  if (tandem) {
    const replied = new Promise<void>(resolve => ws.on('message', (data: Buffer) => { if (isLockReply(data)) resolve() }))
    ws.send(writeTandem({ type: 'lock-acquire', id: 1, resource: `block:${n % 7}`, ttlMs: 0, waitMs: 0 }))
    await replied
  }
  const closed = once(ws, 'close')
  ws.close(CloseCode.NORMAL)
  await closed
}

async function run (url: string, from: number, count: number, prefix: string): Promise<void> {
  let next = from
  const worker = async (): Promise<void> => {
    while (next < from + count) {
      const n = next++
      await cycle(url, `${prefix}-${n % DOCS}`, n)
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, worker))
}

test(`soak: ${CYCLES} join/leave cycles over ${DOCS} documents leave nothing behind`, async () => {
  const server = await startServer({ persistence: 'sqlite', dataDir: tempDir(), maxMessagesPerSecond: 0 })
  const prefix = `soak-${Date.now()}`
  const settled = async (): Promise<void> => {
    await waitFor(() => server.sessions.size === 0 && server.documents.size === 0 && server.connections.size === 0 &&
      server.collaboration.documents().length === 0 && server.collaboration.held === 0,
      30_000, 'every session, document, presence entry, grace and connection slot released')
  }

  await run(server.url, 0, WARMUP, prefix)
  await settled()
  const baseline = { heap: heapAfterGc(), timers: timers(), listeners: processListeners() }

  const started = Date.now()
  await run(server.url, WARMUP, CYCLES, prefix)
  const ms = Date.now() - started
  await settled()
  const after = { heap: heapAfterGc(), timers: timers(), listeners: processListeners() }

  const mb = (n: number): string => (n / 1024 / 1024).toFixed(1)
  console.log(`soak: ${CYCLES} cycles over ${DOCS} documents in ${ms} ms; heap after gc ${mb(baseline.heap)} MB before, ${mb(after.heap)} MB after; timers ${baseline.timers} -> ${after.timers}`)

  expect(server.sessions.size).toBe(0)
  expect(server.documents.size).toBe(0)
  expect(server.connections.size).toBe(0)
  expect(server.collaboration.documents()).toEqual([])
  for (let d = 0; d < DOCS; d++) expect(await server.collaboration.locks.list(`${prefix}-${d}`)).toEqual([])
  expect(after.timers).toBeLessThanOrEqual(baseline.timers)
  expect(after.listeners).toBeLessThanOrEqual(baseline.listeners)
  // the heap may wander by allocator noise, not by what thousands of sessions would leak
  expect(after.heap - baseline.heap).toBeLessThan(8 * 1024 * 1024)

  // the documents were stored, and a document reloads with every cycle's edit
  const ws = new WebSocket(`${server.url}/${prefix}-0`)
  ws.on('error', () => {})
  await once(ws, 'open')
  await waitFor(() => server.documents.get(`${prefix}-0`)?.status === 'ready')
  const text = server.documents.get(`${prefix}-0`)!.ydoc.getText('t').toString()
  expect(text.split(';').filter(s => s !== '').length).toBe(Math.ceil((WARMUP + CYCLES) / DOCS))
  ws.terminate()
}, 120_000 + CYCLES * 20)
