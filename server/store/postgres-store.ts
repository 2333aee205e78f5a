import pg from 'pg'
import type { Revocation, Store, StoreEntry, Tombstone } from './store.js'
import { mergeUpdates } from '../document/merge.js'
import type { ClientOwner } from '../document/client-owners.js'

/** Options of {@link PostgresStore.open}. */
export interface PostgresStoreOptions {
  /**
   * Schema holding Tandem's tables, created if missing. Overrides a `schema` query parameter of
   * the URL. @default 'public'
   */
  schema?: string
  /** Connections in the pool. @default 10 */
  poolSize?: number
  /** Give up connecting after this long. @default 5_000 */
  connectTimeoutMs?: number
}

/** A schema name we can quote safely: letters, digits, underscore, not starting with a digit. */
const SCHEMA_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/

/**
 * The shared Store: PostgreSQL, for several instances serving the same documents. Every write is
 * an insert of new rows, so instances appending to one document at once never overwrite each
 * other; compaction deletes exactly the rows it read and merged, so an update appended while it
 * runs stays. A commit is durable (synchronous_commit) before `append` resolves.
 */
export class PostgresStore implements Store {
  private closed: Promise<void> | undefined

  private constructor (private readonly pool: pg.Pool, private readonly schema: string) {}

  /**
   * Connects, creates the schema and tables if missing, and returns the store. Rejects with the
   * driver's error when the server cannot be reached.
   * @param url - `postgres://user@host:port/db`, optionally with `?schema=name`
   */
  static async open (url: string, options: PostgresStoreOptions = {}): Promise<PostgresStore> {
    const parsed = new URL(url)
    const schema = options.schema ?? parsed.searchParams.get('schema') ?? 'public'
    parsed.searchParams.delete('schema')
    if (!SCHEMA_NAME.test(schema)) throw new Error(`schema ${JSON.stringify(schema)} must be letters, digits and _`)
    const pool = new pg.Pool({
      connectionString: parsed.toString(),
      max: options.poolSize ?? 10,
      connectionTimeoutMillis: options.connectTimeoutMs ?? 5_000
    })
    // an idle client that loses its connection must not crash the process; the next query retries
    pool.on('error', () => {})
    const store = new PostgresStore(pool, schema)
    try {
      await store.migrate()
    } catch (err) {
      await pool.end().catch(() => {})
      throw err
    }
    return store
  }

  private get t (): { updates: string, fencing: string, owners: string, tombstones: string, revocations: string } {
    return { updates: `"${this.schema}".updates`, fencing: `"${this.schema}".fencing`, owners: `"${this.schema}".owners`, tombstones: `"${this.schema}".tombstones`, revocations: `"${this.schema}".revocations` }
  }

  private async migrate (): Promise<void> {
    const client = await this.pool.connect()
    try {
      // instances starting together would race on CREATE ... IF NOT EXISTS (it is not atomic)
      await client.query('SELECT pg_advisory_lock(hashtext($1))', [`tandem-migrate:${this.schema}`])
      try {
        await client.query(`CREATE SCHEMA IF NOT EXISTS "${this.schema}"`)
        await client.query(`
          CREATE TABLE IF NOT EXISTS ${this.t.updates} (
            id BIGSERIAL PRIMARY KEY,
            doc TEXT NOT NULL,
            data BYTEA NOT NULL
          )`)
        await client.query(`CREATE INDEX IF NOT EXISTS updates_doc ON ${this.t.updates} (doc, id)`)
        await client.query(`
          CREATE TABLE IF NOT EXISTS ${this.t.fencing} (
            doc TEXT NOT NULL,
            resource TEXT NOT NULL,
            token BIGINT NOT NULL,
            PRIMARY KEY (doc, resource)
          )`)
        // who owns which Yjs client id of a document; id is the claim order
        await client.query(`
          CREATE TABLE IF NOT EXISTS ${this.t.owners} (
            id BIGSERIAL NOT NULL,
            doc TEXT NOT NULL,
            client BIGINT NOT NULL,
            owner TEXT NOT NULL,
            PRIMARY KEY (doc, client)
          )`)
        await client.query(`
          CREATE TABLE IF NOT EXISTS ${this.t.tombstones} (
            doc TEXT PRIMARY KEY,
            deleted_at BIGINT,
            retired BYTEA NOT NULL
          )`)
        await client.query(`
          CREATE TABLE IF NOT EXISTS ${this.t.revocations} (
            kind TEXT NOT NULL,
            value TEXT NOT NULL,
            revoked_at BIGINT NOT NULL,
            expires_at BIGINT NOT NULL,
            PRIMARY KEY (kind, value)
          )`)
      } finally {
        await client.query('SELECT pg_advisory_unlock(hashtext($1))', [`tandem-migrate:${this.schema}`])
      }
    } finally {
      client.release()
    }
  }

  async load (name: string): Promise<Uint8Array[]> {
    const { rows } = await this.pool.query<{ data: Buffer }>(`SELECT data FROM ${this.t.updates} WHERE doc = $1 ORDER BY id`, [name])
    return rows.map(row => new Uint8Array(row.data.buffer, row.data.byteOffset, row.data.byteLength))
  }

  async loadOwners (name: string): Promise<ClientOwner[]> {
    const { rows } = await this.pool.query<{ client: string, owner: string }>(`SELECT client, owner FROM ${this.t.owners} WHERE doc = $1 ORDER BY id`, [name])
    return rows.map(row => ({ client: Number(row.client), user: row.owner }))
  }

  async append (entries: readonly StoreEntry[]): Promise<void> {
    if (entries.length === 0) return
    // one multi-row insert is one statement, hence atomic without an explicit transaction
    const names = entries.map(entry => entry.name)
    const data = entries.map(entry => Buffer.from(entry.update.buffer, entry.update.byteOffset, entry.update.byteLength))
    const insert = `INSERT INTO ${this.t.updates} (doc, data) SELECT * FROM unnest($1::text[], $2::bytea[])`
    // one row per id (a statement may not update a row twice); the last claim of an id stands
    const claims = new Map<string, { doc: string, client: number, user: string }>()
    for (const { name, owners } of entries) {
      for (const { client, user } of owners ?? []) {
        const key = `${client}:${name}`
        claims.delete(key)
        claims.set(key, { doc: name, client, user })
      }
    }
    if (claims.size === 0) {
      await this.pool.query(insert, [names, data])
      return
    }
    const rows = [...claims.values()]
    // the updates and their claims in one statement; an id claimed again gets a new (newest) id
    await this.pool.query(`
      WITH appended AS (${insert})
      INSERT INTO ${this.t.owners} (doc, client, owner) SELECT * FROM unnest($3::text[], $4::bigint[], $5::text[])
      ON CONFLICT (doc, client) DO UPDATE SET owner = excluded.owner, id = DEFAULT`,
    [names, data, rows.map(row => row.doc), rows.map(row => row.client), rows.map(row => row.user)])
  }

  async compact (name: string): Promise<void> {
    const client = await this.pool.connect()
    try {
      await client.query('BEGIN')
      // one compaction per document at a time, across instances; a second one has nothing to do
      const { rows: [lock] } = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_xact_lock(hashtext($1)) AS ok', [`tandem-compact:${this.schema}:${name}`])
      if (lock?.ok !== true) {
        await client.query('ROLLBACK')
        return
      }
      const { rows } = await client.query<{ id: string, data: Buffer }>(`SELECT id, data FROM ${this.t.updates} WHERE doc = $1 ORDER BY id`, [name])
      if (rows.length < 2) {
        await client.query('ROLLBACK')
        return
      }
      const merged = mergeUpdates(rows.map(row => new Uint8Array(row.data.buffer, row.data.byteOffset, row.data.byteLength)))
      // exactly the rows read: an update another instance appended meanwhile has an id we did not read
      await client.query(`DELETE FROM ${this.t.updates} WHERE id = ANY($1::bigint[])`, [rows.map(row => row.id)])
      await client.query(`INSERT INTO ${this.t.updates} (doc, data) VALUES ($1, $2)`, [name, Buffer.from(merged.buffer, merged.byteOffset, merged.byteLength)])
      await client.query('COMMIT')
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {})
      throw err
    } finally {
      client.release()
    }
  }

  async tombstone (name: string): Promise<Tombstone | null> {
    const { rows: [row] } = await this.pool.query<{ deleted_at: string | null, retired: Buffer }>(
      `SELECT deleted_at, retired FROM ${this.t.tombstones} WHERE doc = $1`, [name])
    if (row === undefined) return null
    return { deletedAt: row.deleted_at === null ? null : Number(row.deleted_at), retired: new Uint8Array(row.retired.buffer, row.retired.byteOffset, row.retired.byteLength) }
  }

  async markDeleted (name: string, at: number): Promise<boolean> {
    const { rowCount } = await this.pool.query(`
      INSERT INTO ${this.t.tombstones} (doc, deleted_at, retired) VALUES ($1, $2, '\\x')
      ON CONFLICT (doc) DO UPDATE SET deleted_at = excluded.deleted_at WHERE ${this.t.tombstones}.deleted_at IS NULL`, [name, at])
    return rowCount === 1
  }

  async restore (name: string): Promise<boolean> {
    const { rowCount } = await this.pool.query(`UPDATE ${this.t.tombstones} SET deleted_at = NULL WHERE doc = $1 AND deleted_at IS NOT NULL`, [name])
    return rowCount === 1
  }

  async deletedBefore (before: number, limit: number): Promise<Array<{ name: string, deletedAt: number }>> {
    const { rows } = await this.pool.query<{ doc: string, deleted_at: string }>(`
      SELECT doc, deleted_at FROM ${this.t.tombstones}
      WHERE deleted_at IS NOT NULL AND deleted_at < $1 ORDER BY deleted_at LIMIT $2`, [before, limit])
    return rows.map(row => ({ name: row.doc, deletedAt: Number(row.deleted_at) }))
  }

  async purge (name: string, deletedAt: number, retired: Uint8Array): Promise<boolean> {
    const client = await this.pool.connect()
    try {
      await client.query('BEGIN')
      // the mark and the rows go together: a restore either wins before or finds nothing to restore
      const { rowCount } = await client.query(`UPDATE ${this.t.tombstones} SET deleted_at = NULL, retired = $2 WHERE doc = $1 AND deleted_at = $3`,
        [name, Buffer.from(retired.buffer, retired.byteOffset, retired.byteLength), deletedAt])
      if (rowCount !== 1) {
        await client.query('ROLLBACK')
        return false
      }
      await client.query(`DELETE FROM ${this.t.updates} WHERE doc = $1`, [name])
      await client.query(`DELETE FROM ${this.t.owners} WHERE doc = $1`, [name])
      await client.query('COMMIT')
      return true
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {})
      throw err
    } finally {
      client.release()
    }
  }

  async nextFencingToken (name: string, resource: string): Promise<number> {
    const { rows: [row] } = await this.pool.query<{ token: string }>(`
      INSERT INTO ${this.t.fencing} (doc, resource, token) VALUES ($1, $2, 1)
      ON CONFLICT (doc, resource) DO UPDATE SET token = ${this.t.fencing}.token + 1
      RETURNING token`, [name, resource])
    return Number(row?.token)
  }

  async addRevocation (revocation: Revocation): Promise<void> {
    const r = this.t.revocations
    await this.pool.query(`
      INSERT INTO ${r} (kind, value, revoked_at, expires_at) VALUES ($1, $2, $3, $4)
      ON CONFLICT (kind, value) DO UPDATE SET
        revoked_at = greatest(${r}.revoked_at, excluded.revoked_at), expires_at = greatest(${r}.expires_at, excluded.expires_at)`,
    [revocation.kind, revocation.value, revocation.revokedAt, revocation.expiresAt])
  }

  async revocations (now: number): Promise<Revocation[]> {
    await this.pool.query(`DELETE FROM ${this.t.revocations} WHERE expires_at <= $1`, [now])
    const { rows } = await this.pool.query<{ kind: Revocation['kind'], value: string, revoked_at: string, expires_at: string }>(
      `SELECT kind, value, revoked_at, expires_at FROM ${this.t.revocations}`)
    return rows.map(row => ({ kind: row.kind, value: row.value, revokedAt: Number(row.revoked_at), expiresAt: Number(row.expires_at) }))
  }

  close (): Promise<void> {
    this.closed ??= this.pool.end()
    return this.closed
  }
}
