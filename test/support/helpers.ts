import { onTestFinished } from 'vitest'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomUUID } from 'node:crypto'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'
import { pino } from 'pino'
import { createServer, type TandemServer, type ServerOptions } from '../../server/index.js'
import { MESSAGE_AWARENESS } from '../../shared/constants.js'

/** A logger for tests: silent unless TANDEM_TEST_LOG names a level. */
export const testLogger = pino({ level: process.env.TANDEM_TEST_LOG ?? 'silent' })

/** A unique document name for this test. */
export function docName (prefix = 'doc'): string {
  return `${prefix}-${randomUUID()}`
}

/** A fresh temporary folder, removed after the test. */
export function tempDir (): string {
  const dir = mkdtempSync(join(tmpdir(), 'tandem-test-'))
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** Starts a real server on port 0 (memory store unless told otherwise); closed after the test. */
export async function startServer (options: ServerOptions = {}): Promise<TandemServer> {
  const server = createServer({ port: 0, persistence: 'memory', logger: testLogger, shutdownTimeoutMs: 2_000, ...options })
  await server.listen()
  onTestFinished(() => server.close())
  return server
}

/** A stock y-websocket client: its own Y.Doc and provider, destroyed after the test. */
export interface StockClient {
  doc: Y.Doc
  provider: WebsocketProvider
  text: Y.Text
}

/** Connects the stock y-websocket WebsocketProvider (ws as its WebSocket; BroadcastChannel off unless asked). */
export function stockClient (url: string, name: string, options: { params?: Record<string, string>, connect?: boolean, doc?: Y.Doc, broadcastChannel?: boolean } = {}): StockClient {
  const doc = options.doc ?? new Y.Doc()
  const provider = new WebsocketProvider(url, name, doc, {
    WebSocketPolyfill: WebSocket as unknown as typeof globalThis.WebSocket,
    // off unless asked: providers of one room in one process talk over BroadcastChannel, as tabs do
    disableBc: options.broadcastChannel !== true,
    params: options.params,
    connect: options.connect ?? true
  })
  onTestFinished(() => {
    provider.destroy()
    doc.destroy()
  })
  return { doc, provider, text: doc.getText('t') }
}

/** Counts the awareness frames a stock client's current socket receives from now on. */
export function countAwarenessFrames (provider: WebsocketProvider): () => number {
  let frames = 0
  // the provider asks for ArrayBuffers
  ;(provider.ws as unknown as WebSocket).on('message', (data: ArrayBuffer) => { if (new Uint8Array(data)[0] === MESSAGE_AWARENESS) frames++ })
  return () => frames
}

/** Resolves when the provider has synced. */
export function synced (provider: WebsocketProvider, timeoutMs = 5_000): Promise<void> {
  return waitFor(() => provider.synced, timeoutMs, 'provider synced')
}

/** Polls `condition` until it holds or the deadline passes (then throws, naming `what`). */
export async function waitFor (condition: () => boolean | Promise<boolean>, timeoutMs = 5_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await condition()) return
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}

/** A raw ws client; closed after the test. */
export function rawClient (url: string, options: WebSocket.ClientOptions = {}): WebSocket {
  const ws = new WebSocket(url, options)
  ws.binaryType = 'nodebuffer'
  onTestFinished(() => ws.terminate())
  return ws
}

/** Resolves with the close code and reason of a ws client. */
export function closed (ws: WebSocket, timeoutMs = 5_000): Promise<{ code: number, reason: string }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('socket did not close')), timeoutMs)
    ws.once('close', (code, reason) => {
      clearTimeout(timer)
      resolve({ code, reason: reason.toString() })
    })
  })
}

/** Resolves once the ws client is open. */
export function opened (ws: WebSocket): Promise<void> {
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve())
    ws.once('error', reject)
  })
}

/** The update `edit` makes to `doc` (every transaction it runs, merged into one). */
export function updateOf (doc: Y.Doc, edit: () => void): Uint8Array {
  const updates: Uint8Array[] = []
  const listener = (update: Uint8Array): void => { updates.push(update) }
  doc.on('update', listener)
  edit()
  doc.off('update', listener)
  return Y.mergeUpdates(updates)
}

/**
 * Two stock clients of a fresh document away from the action, synced; resolves once an edit of
 * one reaches the other, i.e. the server still serves other documents.
 */
export async function bystanderRoundTrip (url: string, timeoutMs = 10_000): Promise<void> {
  const name = docName('bystander')
  const a = stockClient(url, name)
  const b = stockClient(url, name)
  await synced(a.provider)
  await synced(b.provider)
  a.text.insert(0, 'delivered')
  await waitFor(() => b.text.toString() === 'delivered', timeoutMs, 'the bystander edit delivered')
}

/** A Y.Doc built from `updates` in one transaction, encoded whole: the document's content, whatever its bytes. */
export function merged (updates: readonly Uint8Array[]): Uint8Array {
  const doc = new Y.Doc()
  Y.transact(doc, () => { for (const update of updates) Y.applyUpdate(doc, update) })
  const state = Y.encodeStateAsUpdate(doc)
  doc.destroy()
  return state
}
