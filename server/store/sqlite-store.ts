import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import type { Store, StoreEntry } from './store.js'
import { mergeStoredUpdates } from './merge.js'
import { Checkpointer } from './sqlite-checkpointer.js'

/**
 * The embedded default Store: one SQLite file in WAL mode. A commit reaches the operating system
 * before `append` resolves, so it survives SIGKILL of the server; `synchronous = NORMAL` trades
 * the last commits on power loss for speed (set `durability: 'full'` to fsync every commit).
 */
export class SqliteStore implements Store {
  private readonly db: Database.Database
  private readonly insert: Database.Statement<[string, Uint8Array]>
  private readonly select: Database.Statement<[string], { id: number, data: Uint8Array }>
  private readonly appendAll: (entries: readonly StoreEntry[]) => void
  private readonly compactOne: (name: string, snapshot: (() => Uint8Array) | undefined) => void
  private readonly nextToken: (name: string, resource: string) => number
  private readonly checkpointer: Checkpointer | undefined
  private closed = false

  /**
   * @param dir - folder of the database file (created if missing), or ':memory:'
   * @param options.durability - 'normal' (default) survives process crashes; 'full' also power loss
   */
  constructor (dir: string, options: { durability?: 'normal' | 'full' } = {}) {
    let file = ':memory:'
    if (dir !== ':memory:') {
      mkdirSync(dir, { recursive: true })
      file = join(dir, 'tandem.sqlite')
    }
    this.db = new Database(file)
    this.db.pragma('journal_mode = WAL')
    this.db.pragma(`synchronous = ${options.durability === 'full' ? 'FULL' : 'NORMAL'}`)
    this.db.pragma('busy_timeout = 5000')
    if (file !== ':memory:') {
      // a worker thread does most checkpointing, off the event loop (see Checkpointer); the
      // automatic checkpoint stays on to bound the WAL under constant writes, and finds little
      // left to copy
      this.checkpointer = new Checkpointer(file, 250)
    }
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS updates (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        doc TEXT NOT NULL,
        data BLOB NOT NULL
      );
      CREATE INDEX IF NOT EXISTS updates_doc ON updates (doc, id);
      CREATE TABLE IF NOT EXISTS fencing (
        doc TEXT NOT NULL,
        resource TEXT NOT NULL,
        token INTEGER NOT NULL,
        PRIMARY KEY (doc, resource)
      );
    `)
    this.insert = this.db.prepare('INSERT INTO updates (doc, data) VALUES (?, ?)')
    this.select = this.db.prepare('SELECT id, data FROM updates WHERE doc = ? ORDER BY id')
    const remove = this.db.prepare<[string, number]>('DELETE FROM updates WHERE doc = ? AND id <= ?')
    const bump = this.db.prepare<[string, string], { token: number }>(`
      INSERT INTO fencing (doc, resource, token) VALUES (?, ?, 1)
      ON CONFLICT (doc, resource) DO UPDATE SET token = token + 1
      RETURNING token`)
    this.appendAll = this.db.transaction((entries: readonly StoreEntry[]) => {
      for (const entry of entries) this.insert.run(entry.name, entry.update)
    })
    const lastId = this.db.prepare<[string], { id: number, n: number }>('SELECT max(id) AS id, count(*) AS n FROM updates WHERE doc = ?')
    this.compactOne = this.db.transaction((name: string, snapshot: (() => Uint8Array) | undefined) => {
      // SQLite has one writer: nothing can be appended between the reads and the delete
      if (snapshot !== undefined) {
        const last = lastId.get(name)
        if (last === undefined || last.n < 2) return
        remove.run(name, last.id)
        this.insert.run(name, snapshot())
        return
      }
      const rows = this.select.all(name)
      if (rows.length < 2) return
      remove.run(name, (rows[rows.length - 1] as { id: number }).id)
      this.insert.run(name, mergeStoredUpdates(rows.map(row => row.data)))
    })
    this.nextToken = (name, resource) => (bump.get(name, resource) as { token: number }).token
  }

  async load (name: string): Promise<Uint8Array[]> {
    return this.select.all(name).map(row => row.data)
  }

  async append (entries: readonly StoreEntry[]): Promise<void> {
    this.appendAll(entries)
  }

  async compact (name: string, snapshot?: () => Uint8Array): Promise<void> {
    this.compactOne(name, snapshot)
  }

  async nextFencingToken (name: string, resource: string): Promise<number> {
    return this.nextToken(name, resource)
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.checkpointer?.close()
    this.db.close()
  }
}
