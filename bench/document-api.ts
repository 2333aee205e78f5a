import { spawn } from 'node:child_process'
import { Agent, request as httpRequest } from 'node:http'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import * as Y from 'yjs'
import WebSocket from 'ws'
import { WebsocketProvider } from 'y-websocket'

/**
 * `npm run bench:document-api -- [READS] [WRITES] [CONCURRENCY]`: the document API against a
 * `tandem` process (SQLite in a temporary folder). Reads a ~1 MB document's JSON and binary
 * content READS times, not loaded (from the store) and loaded (a client connected); writes
 * WRITES updates (one appended line each) one at a time, then CONCURRENCY at a time. Prints
 * medians and p95s. Defaults 20 reads, 1,000 writes, 16 at a time.
 */

function percentile (values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] as number
}

function summary (label: string, ms: number[]): void {
  console.log(`${label.padEnd(52)} median ${percentile(ms, 0.5).toFixed(1).padStart(7)} ms   p95 ${percentile(ms, 0.95).toFixed(1).padStart(7)} ms`)
}

/** Keep-alive connections: under load `fetch` adds ~10 ms per call on this kind of host. */
const agent = new Agent({ keepAlive: true, maxSockets: 64 })

/** One HTTP call: its status and body. */
function call (method: string, url: string, body?: Uint8Array): Promise<{ status: number, body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, agent, headers: body === undefined ? {} : { 'content-type': 'application/octet-stream', 'content-length': body.byteLength } }, res => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(body)
  })
}

async function startTandem (dir: string): Promise<{ url: string, stop: () => void }> {
  const child = spawn(process.execPath, ['dist/server/cli.js', '--port', '0', '--data', dir, '--log-level', 'info',
    '--max-messages-per-second', '0'], { stdio: ['ignore', 'pipe', 'inherit'] })
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', line => {
      const match = /listening on (ws:\/\/[^"\s]+)/.exec(line)
      if (match !== null) resolve(match[1] as string)
    })
    child.once('exit', code => reject(new Error(`tandem exited with ${code}`)))
  })
  return { url, stop: () => child.kill('SIGTERM') }
}

/** A document of about `bytes` bytes of update: paragraphs of text, a map and an array. */
function bigDocument (bytes: number): Uint8Array {
  const doc = new Y.Doc()
  const body = doc.getText('body')
  const meta = doc.getMap<unknown>('meta')
  const blocks = doc.getArray<unknown>('blocks')
  let i = 0
  while (Y.encodeStateAsUpdate(doc).byteLength < bytes) {
    doc.transact(() => {
      for (let j = 0; j < 200; j++, i++) {
        body.insert(body.length, `Paragraph ${i}: ${'lorem ipsum dolor sit amet '.repeat(4)}\n`)
        if (i % 4 === 0) meta.set(`key-${i}`, { n: i, tags: ['a', 'b'] })
        if (i % 4 === 1) blocks.push([{ id: i, kind: 'paragraph' }])
      }
    })
  }
  return Y.encodeStateAsUpdate(doc)
}

async function main (): Promise<void> {
  const [readsArg = '20', writesArg = '1000', concurrencyArg = '16'] = process.argv.slice(2)
  const [reads, writes, concurrency] = [Number(readsArg), Number(writesArg), Number(concurrencyArg)]
  const dir = mkdtempSync(join(tmpdir(), 'tandem-bench-api-'))
  const server = await startTandem(dir)
  const http = server.url.replace(/^ws/, 'http')
  try {
    const name = 'bench-document'
    const base = `${http}/api/documents/${name}`
    const big = bigDocument(1024 * 1024)
    const created = await call('POST', `${base}/updates`, big)
    if (created.status !== 200) throw new Error(`creating the document: ${created.status} ${created.body.toString()}`)
    let jsonBytes = 0
    const read = async (format: 'json' | 'binary'): Promise<number> => {
      const started = performance.now()
      const response = await call('GET', `${base}/content${format === 'json' ? '?format=json' : ''}`)
      if (format === 'json') jsonBytes = response.body.byteLength
      return performance.now() - started
    }
    // unloaded: the POST's document unloads once stored; wait for that
    await new Promise(resolve => setTimeout(resolve, 500))
    console.log(`document: ${(big.byteLength / 1024).toFixed(0)} KiB as a Yjs update`)
    const cold: number[] = []
    const coldBinary: number[] = []
    for (let i = 0; i < reads; i++) cold.push(await read('json'))
    for (let i = 0; i < reads; i++) coldBinary.push(await read('binary'))
    console.log(`JSON: ${(jsonBytes / 1024).toFixed(0)} KiB`)
    summary('GET content?format=json, not loaded (from SQLite)', cold)
    summary('GET content (binary), not loaded (from SQLite)', coldBinary)
    const doc = new Y.Doc()
    const provider = new WebsocketProvider(server.url, name, doc, { WebSocketPolyfill: WebSocket as unknown as typeof globalThis.WebSocket, disableBc: true })
    await new Promise<void>(resolve => provider.once('sync', () => resolve()))
    const warm: number[] = []
    const warmBinary: number[] = []
    for (let i = 0; i < reads; i++) warm.push(await read('json'))
    for (let i = 0; i < reads; i++) warmBinary.push(await read('binary'))
    summary('GET content?format=json, loaded (a client connected)', warm)
    summary('GET content (binary), loaded', warmBinary)

    // writes: each writer keeps a local copy (its own Yjs client) and sends what it appends
    const writerDoc = (): Y.Doc => {
      const copy = new Y.Doc()
      Y.applyUpdate(copy, Y.encodeStateAsUpdate(doc))
      return copy
    }
    const write = async (writer: Y.Doc, i: number): Promise<number> => {
      const log = writer.getText('log')
      const before = Y.encodeStateVector(writer)
      log.insert(log.length, `line ${i}\n`)
      const update = Y.encodeStateAsUpdate(writer, before)
      const started = performance.now()
      const response = await call('POST', `${base}/updates?userId=bench`, update)
      if (response.status !== 200) throw new Error(`write ${i}: ${response.status} ${response.body.toString()}`)
      return performance.now() - started
    }
    const sequential: number[] = []
    const single = writerDoc()
    let started = performance.now()
    for (let i = 0; i < writes; i++) sequential.push(await write(single, i))
    const sequentialSeconds = (performance.now() - started) / 1000
    summary(`POST updates, ${writes} one at a time (a client connected)`, sequential)
    console.log(`  ${(writes / sequentialSeconds).toFixed(0)} updates/s`)
    const concurrent: number[] = []
    started = performance.now()
    let next = 0
    await Promise.all(Array.from({ length: concurrency }, async () => {
      // a writer's updates must arrive in order: one writer per request in flight
      const own = writerDoc()
      while (next < writes) concurrent.push(await write(own, writes + next++))
    }))
    const concurrentSeconds = (performance.now() - started) / 1000
    summary(`POST updates, ${writes} with ${concurrency} in flight`, concurrent)
    console.log(`  ${(writes / concurrentSeconds).toFixed(0)} updates/s`)
    const seen = (): number => doc.getText('log').toString().split('\n').length - 1
    const deadline = Date.now() + 10_000
    while (seen() < 2 * writes && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 20))
    console.log(`the connected client saw ${seen()} of ${2 * writes} lines`)
    provider.destroy()
    const baseline: number[] = []
    for (let i = 0; i < 200; i++) {
      const at = performance.now()
      await call('GET', `${http}/healthz`)
      baseline.push(performance.now() - at)
    }
    summary('baseline: GET /healthz (the HTTP round trip alone)', baseline)
  } finally {
    agent.destroy()
    server.stop()
    rmSync(dir, { recursive: true, force: true })
  }
}

await main()
// the provider's and the agent's sockets can outlive their destroy by a reconnect timer
process.exit(0)
