import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { Server } from '@hocuspocus/server'
import { Database as DatabaseExtension } from '@hocuspocus/extension-database'

/**
 * Hocuspocus 3 as its documentation sets it up for persistence: the Database extension, here
 * over the same SQLite engine and pragmas Tandem uses (WAL, synchronous NORMAL), so the storage
 * engine is not what differs. Hocuspocus stores the whole document state, debounced (2 s, at most
 * 10 s), and at once when the last client leaves. PORT, HOST and DATA from the environment.
 */
const dir = process.env.DATA ?? './data-hocuspocus'
mkdirSync(dir, { recursive: true })
const db = new Database(join(dir, 'hocuspocus.sqlite'))
db.pragma('journal_mode = WAL')
db.pragma('synchronous = NORMAL')
db.exec('CREATE TABLE IF NOT EXISTS documents (name TEXT PRIMARY KEY, data BLOB NOT NULL)')
const select = db.prepare<[string], { data: Uint8Array }>('SELECT data FROM documents WHERE name = ?')
const upsert = db.prepare<[string, Uint8Array]>('INSERT INTO documents (name, data) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET data = excluded.data')

const server = new Server({
  port: Number(process.env.PORT ?? 0),
  address: process.env.HOST ?? '127.0.0.1',
  quiet: true,
  stopOnSignals: true,
  extensions: [new DatabaseExtension({
    fetch: async ({ documentName }) => select.get(documentName)?.data ?? null,
    store: async ({ documentName, state }) => { upsert.run(documentName, state) }
  })]
})
await server.listen()
console.log(`hocuspocus listening on ${server.address.port}`)
