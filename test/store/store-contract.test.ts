import { describe, expect, test } from 'vitest'
import { spawnSync } from 'node:child_process'
import { MemoryStore } from '../../server/store/memory-store.js'
import { SqliteStore } from '../../server/store/sqlite-store.js'
import { PostgresStore } from '../../server/store/postgres-store.js'
import { openStore } from '../../server/store/open.js'
import { storeContract } from './store-contract.js'
import { tempDir } from '../support/helpers.js'
import { POSTGRES_URL, pgSchema, postgresUp, testWith } from '../support/services.js'

storeContract('memory', async () => ({ open: async () => new MemoryStore(), durable: false, shared: false }))

storeContract('sqlite', async () => {
  const dir = tempDir()
  return { open: async () => new SqliteStore(dir), durable: true, shared: true }
})

storeContract('postgres', async () => {
  const schema = pgSchema()
  return { open: () => PostgresStore.open(POSTGRES_URL, { schema }), durable: true, shared: true }
}, postgresUp || process.env.CI === 'true')

describe('opening a PostgreSQL store', () => {
  testWith(postgresUp)('takes the schema from the URL', async () => {
    const schema = pgSchema()
    const store = await openStore({ persistence: `${POSTGRES_URL}?schema=${schema}`, dataDir: '' })
    await store.append([{ name: 'x', update: Uint8Array.of(0, 0) }])
    const other = await PostgresStore.open(POSTGRES_URL, { schema })
    expect(await other.load('x')).toEqual([Uint8Array.of(0, 0)])
    await Promise.all([store.close(), other.close()])
  })

  test('an unreachable server is one clear error', async () => {
    await expect(openStore({ persistence: 'postgres://postgres@127.0.0.1:1/test', dataDir: '' }))
      .rejects.toThrow(/^The store cannot be opened or reached: cannot open postgres store at postgres:\/\/postgres@127\.0\.0\.1:1\/test: .*ECONNREFUSED/)
  })

  test('the binary exits non-zero with one line when the store is unreachable', () => {
    const result = spawnSync(process.execPath, ['dist/server/cli.js', '--port', '0', '--persistence', 'postgres://postgres@127.0.0.1:1/test'], { encoding: 'utf8', timeout: 20_000 })
    expect(result.status).toBe(1)
    expect(result.stderr.trim().split('\n')).toHaveLength(1)
    expect(result.stderr).toMatch(/^tandem: The store cannot be opened or reached: .*ECONNREFUSED/)
  })
})
