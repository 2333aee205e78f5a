import { describe, expect, test } from 'vitest'
import { statSync } from 'node:fs'
import { join } from 'node:path'
import { startServer, docName, tempDir, waitFor } from '../support/helpers.js'
import { tandemClient } from '../support/tandem-helpers.js'
import { SqliteStore } from '../../server/store/sqlite-store.js'

/** Size of the WAL file, 0 when there is none. */
function walBytes (dir: string): number {
  try {
    return statSync(join(dir, 'tandem.sqlite-wal')).size
  } catch {
    return 0
  }
}

/** The automatic checkpoint keeps the WAL near 1,000 pages (4 MiB); anything past this is growth. */
const WAL_BOUND = 6 * 1024 * 1024

describe('the SQLite WAL stays bounded', () => {
  test('5,000 lock acquisitions through a real server keep tandem.sqlite-wal under 6 MiB', async () => {
    const dataDir = tempDir()
    // no message rate limit: 10,000 lock messages from one client are the point here
    const server = await startServer({ persistence: 'sqlite', dataDir, maxMessagesPerSecond: 0 })
    const name = docName()
    const client = tandemClient(server.url, name, { user: { id: 'ada' } })
    await client.synced()
    let peak = 0
    const batch = 50
    for (let done = 0; done < 5_000; done += batch) {
      // every grant takes a fencing token: one committed write each
      const locks = await Promise.all(Array.from({ length: batch }, (_, i) => client.locks.acquire(`block:${(done + i) % 500}`)))
      await Promise.all(locks.map(lock => lock.release()))
      peak = Math.max(peak, walBytes(dataDir))
    }
    expect(peak).toBeGreaterThan(0)
    expect(peak).toBeLessThan(WAL_BOUND)
    // the tokens kept growing all the while
    const last = await client.locks.acquire('block:0')
    expect(last.token).toBe(11)
  })

  test('a WAL pushed past the bound by one large batch is truncated by the next commit', async () => {
    const dir = tempDir()
    const store = await SqliteStore.open(dir)
    try {
      // 24 MiB in one transaction: no checkpoint can run inside it
      const big = new Uint8Array(1024 * 1024).fill(7)
      await store.append(Array.from({ length: 24 }, (_, i) => ({ name: `big-${i}`, update: big })))
      await store.nextFencingToken('doc', 'r')
      await waitFor(() => walBytes(dir) < WAL_BOUND, 5_000, 'WAL truncated')
      expect(walBytes(dir)).toBeLessThan(WAL_BOUND)
      expect(await store.load('big-3')).toHaveLength(1)
    } finally {
      await store.close()
    }
  })
})
