import pg from 'pg'
import { Server } from '@hocuspocus/server'
import { Database as DatabaseExtension } from '@hocuspocus/extension-database'
import { Redis as RedisExtension } from '@hocuspocus/extension-redis'

/**
 * One instance of Hocuspocus 3 scaled out as its documentation sets it up: the Redis extension
 * (every instance on the same Redis, here under a unique key prefix) and the Database extension,
 * here over PostgreSQL (one table in a schema of the bench's own, shared by the instances), the
 * store Tandem uses in the same workload. Hocuspocus stores the whole document, debounced (2 s,
 * at most 10 s); the Redis extension takes a Redis lock around each store. PORT, HOST,
 * REDIS_URL, REDIS_PREFIX, POSTGRES and SCHEMA from the environment.
 */
const schema = process.env.SCHEMA ?? 'public'
if (!/^[a-z0-9_]+$/.test(schema)) throw new Error(`bad SCHEMA ${schema}`)
const pool = new pg.Pool({ connectionString: process.env.POSTGRES ?? 'postgres://postgres@127.0.0.1:5432/test', max: 4 })
await pool.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`)
await pool.query(`CREATE TABLE IF NOT EXISTS "${schema}".documents (name TEXT PRIMARY KEY, data BYTEA NOT NULL)`)
const redis = new URL(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379')

const server = new Server({
  port: Number(process.env.PORT ?? 0),
  address: process.env.HOST ?? '127.0.0.1',
  quiet: true,
  stopOnSignals: true,
  extensions: [
    new RedisExtension({
      host: redis.hostname,
      port: Number(redis.port === '' ? 6379 : redis.port),
      prefix: process.env.REDIS_PREFIX ?? 'hocuspocus'
    }),
    new DatabaseExtension({
      fetch: async ({ documentName }) => {
        const { rows } = await pool.query<{ data: Buffer }>(`SELECT data FROM "${schema}".documents WHERE name = $1`, [documentName])
        return rows[0]?.data ?? null
      },
      store: async ({ documentName, state }) => {
        await pool.query(`INSERT INTO "${schema}".documents (name, data) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET data = excluded.data`, [documentName, state])
      }
    })
  ]
})
await server.listen()
console.log(`hocuspocus listening on ${server.address.port}`)
