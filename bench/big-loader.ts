import WebSocket from 'ws'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import * as decoding from 'lib0/decoding'
import { readFileSync } from 'node:fs'
import { Codec, type Dialect } from './wire.js'
import { BIG_TEXT } from './big-doc.js'
import { MESSAGE_SYNC } from '../shared/constants.js'

/**
 * One client opening a big document, in a process of its own (applying 100 MB would stall a
 * process that also measures latencies). Run by big.ts as
 * `node big-loader.js '<json LoaderSpec>'`; prints one JSON line, a LoaderResult, once it holds the
 * document (or gave up), then stays connected until its standard input ends.
 *
 * For the y-websocket dialect (Tandem, the y-websocket server) it is the stock WebsocketProvider,
 * unchanged, with its 30 s watchdog. Its `ws` socket accepts frames of any size, as a browser's
 * does (ws alone stops at 100 MiB). Hocuspocus speaks its own dialect, which the stock provider
 * does not: there a plain socket applies what arrives and, like HocuspocusProvider, gives up on a
 * socket that received nothing for 30 s and opens another.
 */
export interface LoaderSpec {
  url: string
  dialect: Dialect
  document: string
  /** The cached document file: its state vector says when everything has arrived. */
  file: string
  /** Text to insert during the load (once connected, before the document arrived), or null. */
  edit: string | null
  /** Text that must be in the loaded document (an earlier loader's edit), or null. */
  expect: string | null
  timeoutMs: number
}

export interface LoaderResult {
  /** From the first `new WebSocket` to holding the whole document; null when it never did. */
  openMs: number | null
  /** Times the socket closed (the provider then reconnects). */
  reconnects: number
  /** Largest message received, bytes. */
  largestMessage: number
  messages: number
  /** `expect` was found (null when none was expected). */
  found: boolean | null
  error: string | null
}

const WATCHDOG_MS = 30_000
/** Hocuspocus's type for the sync step 2 that answers a client's step 1. */
const HOCUSPOCUS_SYNC_REPLY = 4

/** A `ws` socket without the 100 MiB receive limit: a browser has none. */
class BrowserLikeSocket extends WebSocket {
  constructor (url: string, protocols?: string | string[]) {
    super(url, protocols, { maxPayload: 2 ** 31 - 1, perMessageDeflate: false })
  }
}

async function main (): Promise<void> {
  const spec = JSON.parse(process.argv[2] as string) as LoaderSpec
  const expected = Y.decodeStateVector(Y.encodeStateVectorFromUpdate(new Uint8Array(readFileSync(spec.file))))
  const doc = new Y.Doc()
  const result: LoaderResult = { openMs: null, reconnects: 0, largestMessage: 0, messages: 0, found: null, error: null }
  const complete = (): boolean => {
    for (const [client, clock] of expected) if (Y.getState(doc.store, client) < clock) return false
    return true
  }
  const started = performance.now()
  let synced = false
  let edited = false
  const edit = (): void => {
    if (edited || spec.edit === null) return
    edited = true
    doc.getText(BIG_TEXT).insert(0, spec.edit)
  }
  const stop = spec.dialect === 'hocuspocus'
    ? hocuspocus(spec, doc, result, () => { synced = true }, edit)
    : stock(spec, doc, result, () => { synced = true }, edit)
  const deadline = started + spec.timeoutMs
  while (performance.now() < deadline && !(synced && complete())) await new Promise(resolve => setTimeout(resolve, 20))
  if (synced && complete()) result.openMs = performance.now() - started
  else result.error = `not loaded within ${spec.timeoutMs} ms (synced ${String(synced)}, reconnects ${result.reconnects})`
  if (result.openMs !== null && spec.expect !== null) result.found = doc.getText(BIG_TEXT).toString().includes(spec.expect)
  process.stdout.write(JSON.stringify(result) + '\n')
  // connected until told to leave (the runner measures the server with the document loaded)
  await new Promise(resolve => {
    process.stdin.on('data', () => {})
    process.stdin.once('end', resolve)
  })
  stop()
  // a last moment for the close to reach the server
  await new Promise(resolve => setTimeout(resolve, 200))
  process.exit(0)
}

function stock (spec: LoaderSpec, doc: Y.Doc, result: LoaderResult, synced: () => void, edit: () => void): () => void {
  const provider = new WebsocketProvider(spec.url, spec.document, doc, { WebSocketPolyfill: BrowserLikeSocket as unknown as typeof globalThis.WebSocket, disableBc: true })
  provider.on('status', ({ status }: { status: string }) => {
    if (status === 'connected') setTimeout(edit, 50)
  })
  let lastMessage = performance.now()
  provider.on('connection-close', (event: { code?: number } | null) => {
    result.reconnects++
    process.stderr.write(`loader: socket closed (code ${String(event?.code)}) ${Math.round(performance.now() - lastMessage)} ms after the last message, ${result.messages} messages in\n`)
  })
  provider.on('sync', (isSynced: boolean) => { if (isSynced) synced() })
  // count what arrives, beside the provider's own handler
  const patch = (): void => {
    const ws = provider.ws as unknown as WebSocket | null
    if (ws === null || (ws as unknown as { counted?: boolean }).counted === true) return
    ;(ws as unknown as { counted?: boolean }).counted = true
    ws.addEventListener('message', event => {
      const size = (event.data as ArrayBuffer).byteLength
      lastMessage = performance.now()
      result.messages++
      if (size > result.largestMessage) result.largestMessage = size
    })
  }
  provider.on('status', patch)
  patch()
  return () => provider.destroy()
}

function hocuspocus (spec: LoaderSpec, doc: Y.Doc, result: LoaderResult, synced: () => void, edit: () => void): () => void {
  const codec = new Codec('hocuspocus', spec.document)
  let socket: WebSocket | null = null
  let lastMessage = 0
  let stopped = false
  doc.on('update', (update: Uint8Array, origin: unknown) => {
    if (origin !== 'remote' && socket?.readyState === WebSocket.OPEN) socket.send(codec.update(update))
  })
  const open = (): void => {
    if (stopped) return
    const ws = new BrowserLikeSocket(`${spec.url}/${encodeURIComponent(spec.document)}`)
    socket = ws
    ws.binaryType = 'nodebuffer'
    lastMessage = performance.now()
    ws.on('open', () => {
      for (const frame of codec.hello()) ws.send(frame)
      setTimeout(edit, 50)
    })
    ws.on('message', (data: Buffer) => {
      lastMessage = performance.now()
      result.messages++
      if (data.length > result.largestMessage) result.largestMessage = data.length
      const decoder = decoding.createDecoder(data)
      decoding.readVarString(decoder) // document name
      const type = decoding.readVarUint(decoder)
      if (type !== MESSAGE_SYNC && type !== HOCUSPOCUS_SYNC_REPLY) return
      const kind = decoding.readVarUint(decoder)
      if (kind === 0) ws.send(codec.step2Empty())
      else if (kind === 1 || kind === 2) {
        Y.applyUpdate(doc, decoding.readVarUint8Array(decoder), 'remote')
        if (kind === 1) synced()
      }
    })
    ws.on('close', () => {
      if (stopped) return
      result.reconnects++
      setTimeout(open, 100)
    })
    ws.on('error', () => {})
  }
  const watchdog = setInterval(() => {
    if (socket !== null && socket.readyState === WebSocket.OPEN && performance.now() - lastMessage > WATCHDOG_MS) socket.close()
  }, WATCHDOG_MS / 10)
  open()
  return () => {
    stopped = true
    clearInterval(watchdog)
    socket?.close()
  }
}

main().catch(err => {
  process.stdout.write(JSON.stringify({ openMs: null, reconnects: 0, largestMessage: 0, messages: 0, found: null, error: String(err) }) + '\n')
  process.exit(1)
})
