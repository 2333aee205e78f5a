import { describe, expect, test } from 'vitest'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { stockClient, synced, waitFor, docName, tempDir, startServer } from '../support/helpers.js'
import { startTandem, runTandem } from '../support/cli.js'
import { tandemClient } from '../support/tandem-helpers.js'
import { MemoryStore } from '../../server/store/memory-store.js'
import type { StoreEntry } from '../../server/store/store.js'

describe('the tandem binary', () => {
  test('SIGKILL during a stream of edits loses nothing the server acknowledged', async () => {
    const dir = tempDir()
    const name = docName()
    const first = await startTandem(['--persistence', 'sqlite', '--data', dir])
    const writer = tandemClient(first.url, name, { user: { id: 'writer' } })
    await writer.synced()
    await writer.flushed()
    const list = writer.doc.getArray<number>('edits')
    let sent = 0
    // each push is its own transaction, so its own frame, acknowledged in order once stored
    const timer = setInterval(() => { for (let i = 0; i < 5; i++) list.push([sent++]) }, 2)
    await waitFor(() => sent - writer.unsyncedChanges >= 300, 10_000, '300 edits acknowledged')
    const acknowledged = sent - writer.unsyncedChanges
    first.child.kill('SIGKILL')
    clearInterval(timer)
    await first.exited
    writer.destroy()
    const second = await startTandem(['--persistence', 'sqlite', '--data', dir])
    const fresh = stockClient(second.url, name)
    await synced(fresh.provider)
    const restored = new Set(fresh.doc.getArray<number>('edits').toArray())
    const missing = Array.from({ length: acknowledged }, (_, n) => n).filter(n => !restored.has(n))
    expect(missing).toEqual([])
  })

  test('SIGTERM: clients get 1012, the process exits 0, content is kept', async () => {
    const dir = tempDir()
    const name = docName()
    const server = await startTandem(['--persistence', 'sqlite', '--data', dir])
    const a = stockClient(server.url, name)
    const observer = stockClient(server.url, name)
    await Promise.all([synced(a.provider), synced(observer.provider)])
    const codes: number[] = []
    a.provider.on('connection-close', event => { if (event !== null) codes.push(event.code) })
    const http = server.url.replace('ws:', 'http:')
    expect((await fetch(`${http}/readyz`)).status).toBe(200)
    a.text.insert(0, 'kept')
    // not yet stored, perhaps: the shutdown stores what is pending before it exits
    await waitFor(() => observer.text.toString() === 'kept')
    a.provider.shouldConnect = false
    observer.provider.shouldConnect = false
    server.child.kill('SIGTERM')
    const { code } = await server.exited
    expect(code).toBe(0)
    await waitFor(() => codes.length > 0)
    expect(codes[0]).toBe(1012)
    const again = await startTandem(['--persistence', 'sqlite', '--data', dir])
    const b = stockClient(again.url, name)
    await synced(b.provider)
    await waitFor(() => b.text.toString() === 'kept')
  })

  test('a bad flag or value exits non-zero with one line naming it', async () => {
    for (const [args, env, word] of [
      [['--port', 'abc'], {}, '--port'],
      [['--bogus'], {}, '--bogus'],
      [[], { TANDEM_HEARTBEAT_TIMEOUT: '-5' }, 'TANDEM_HEARTBEAT_TIMEOUT'],
      [['--persistence', 'mysql'], {}, 'persistence'],
      [['--port', '70000'], {}, 'port'],
      [['--log-level', 'loud'], {}, 'logLevel']
    ] as Array<[string[], Record<string, string>, string]>) {
      const { code, output } = await runTandem(args, env)
      expect(code, output).toBe(1)
      expect(output.trim().split('\n')).toHaveLength(1)
      expect(output).toContain(word)
    }
  })

  test('a store it cannot open exits non-zero with one line', async () => {
    const file = join(tempDir(), 'not-a-dir')
    writeFileSync(file, 'x')
    const { code, output } = await runTandem(['--data', file, '--port', '0'])
    expect(code).toBe(1)
    expect(output.trim().split('\n').filter(l => l.startsWith('tandem:'))).toHaveLength(1)
    expect(output).toContain('cannot open sqlite store')
  })

  test('shutdown finishes within the timeout when the store hangs', async () => {
    class HangingStore extends MemoryStore {
      hang = false
      override append (entries: readonly StoreEntry[]) {
        return this.hang ? new Promise<void>(() => {}) : super.append(entries)
      }
    }
    const store = new HangingStore()
    const server = await startServer({ persistence: store, shutdownTimeoutMs: 300 })
    const a = stockClient(server.url, docName())
    await synced(a.provider)
    store.hang = true
    a.text.insert(0, 'never stored')
    a.provider.shouldConnect = false
    const started = Date.now()
    await server.close()
    expect(Date.now() - started).toBeLessThan(2_000)
    expect(server.status).toBe('closed')
  })
})
