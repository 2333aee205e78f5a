// Longer than most files here (about 400 lines): one Store implementation holds the SQL of every
// table the Store seam has (log, fencing, owners, revocations, tombstones, versions, outbox), as
// sqlite-worker.cjs does for SQLite; splitting it by table would split one transaction's SQL.
import pg from 'pg'
import type { NewVersion, OutboxEntry, OutboxEvent, Revocation, Store, StoreEntry, Tombstone, VersionInfo, VersionPolicy } from './store.js'
import { to as copyTo } from 'pg-copy-streams'
import { foldRows } from '../document/off-loop.js'
import { BinaryCopyReader } from './pg-binary-copy.js'
import type { ClientOwner } from '../document/client-owners.js'

/** Rows of at least this many bytes are loaded through COPY binary (a MiB of hex decodes in about 7 ms). */
const COPY_ROW_BYTES = 1024 * 1024
/** Reads of a document whose big rows are compacted away while it is read, before giving up. */
const LOAD_ATTEMPTS = 5

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

  private get t (): { updates: string, fencing: string, versions: string, authors: string, outbox: string, owners: string, tombstones: string, revocations: string } {
    const s = `"${this.schema}"`
    return { updates: `${s}.updates`, fencing: `${s}.fencing`, versions: `${s}.versions`, authors: `${s}.version_authors`, outbox: `${s}.outbox`, owners: `${s}.owners`, tombstones: `${s}.tombstones`, revocations: `${s}.revocations` }
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
          CREATE TABLE IF NOT EXISTS ${this.t.versions} (
            seq BIGSERIAL PRIMARY KEY,
            doc TEXT NOT NULL,
            id TEXT NOT NULL,
            label TEXT,
            created_at BIGINT NOT NULL,
            authors TEXT[] NOT NULL,
            automatic BOOLEAN NOT NULL,
            data BYTEA NOT NULL,
            UNIQUE (doc, id)
          )`)
        await client.query(`CREATE INDEX IF NOT EXISTS versions_doc ON ${this.t.versions} (doc, seq)`)
        await client.query(`
          CREATE TABLE IF NOT EXISTS ${this.t.authors} (
            doc TEXT NOT NULL,
            author TEXT NOT NULL,
            since BIGINT NOT NULL,
            PRIMARY KEY (doc, author)
          )`)
        await client.query(`
          CREATE TABLE IF NOT EXISTS ${this.t.outbox} (
            seq BIGSERIAL PRIMARY KEY,
            target TEXT NOT NULL,
            doc TEXT NOT NULL,
            body TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            retry_at BIGINT NOT NULL DEFAULT 0,
            lease_owner TEXT,
            lease_until BIGINT NOT NULL DEFAULT 0
          )`)
        await client.query(`CREATE INDEX IF NOT EXISTS outbox_queue ON ${this.t.outbox} (target, doc, seq)`)
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
    for (let attempt = 1; ; attempt++) {
      const rows = await this.readRows(this.pool, name)
      if (rows !== null) return rows.map(row => row.data)
      // a big row compacted away while it was read: again (the rows it became are the same document)
      if (attempt === LOAD_ATTEMPTS) throw new Error(`the rows of document ${JSON.stringify(name)} kept changing while read`)
    }
  }

  /**
   * The rows of `name` in order; null when a big row went away before it was read (compacted by
   * another instance: within a transaction, never). Rows of COPY_ROW_BYTES or more are left out
   * of the query and read through COPY binary: pg decodes a bytea result from hex text on the
   * event loop in one piece (pg-binary-copy.ts).
   */
  private async readRows (on: pg.Pool | pg.PoolClient, name: string): Promise<Array<{ id: string, data: Uint8Array }> | null> {
    const { rows } = await on.query<{ id: string, data: Buffer | null }>(
      `SELECT id, CASE WHEN octet_length(data) < $2 THEN data END AS data FROM ${this.t.updates} WHERE doc = $1 ORDER BY id`, [name, COPY_ROW_BYTES])
    const big = rows.filter(row => row.data === null).map(row => row.id)
    const copied = big.length === 0 ? [] : await this.copyRows(on, big)
    if (copied.length !== big.length) return null
    let next = 0
    return rows.map(({ id, data }) => ({ id, data: data === null ? copied[next++] as Uint8Array : new Uint8Array(data.buffer, data.byteOffset, data.byteLength) }))
  }

  /** The data of the rows `ids` (in id order; fewer when some are gone), through COPY binary. */
  private async copyRows (on: pg.Pool | pg.PoolClient, ids: readonly string[]): Promise<Uint8Array[]> {
    for (const id of ids) if (!/^[0-9]+$/.test(id)) throw new Error(`not a row id: ${id}`)
    const client = on instanceof pg.Pool ? await on.connect() : on
    const own = client !== on
    try {
      const stream = client.query(copyTo(`COPY (SELECT data FROM ${this.t.updates} WHERE id IN (${ids.join(',')}) ORDER BY id) TO STDOUT (FORMAT binary)`))
      const reader = new BinaryCopyReader()
      for await (const chunk of stream) reader.push(chunk as Buffer)
      const values = reader.end()
      if (own) (client as pg.PoolClient).release()
      return values
    } catch (err) {
      // a connection of our own may be mid-COPY: closed, not reused
      if (own) (client as pg.PoolClient).release(err as Error)
      throw err
    }
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
    const authors = entries.map(entry => entry.author ?? '')
    const insert = `INSERT INTO ${this.t.updates} (doc, data) SELECT * FROM unnest($1::text[], $2::bytea[])`
    const authored = `
      INSERT INTO ${this.t.authors} (doc, author, since)
      SELECT DISTINCT doc, author, $4::bigint FROM unnest($1::text[], $3::text[]) AS t(doc, author)
      ON CONFLICT DO NOTHING`
    // one row per id (a statement may not update a row twice); the last claim of an id stands
    const claims = new Map<string, { doc: string, client: number, user: string }>()
    for (const { name, owners } of entries) {
      for (const { client, user } of owners ?? []) {
        const key = `${client}:${name}`
        claims.delete(key)
        claims.set(key, { doc: name, client, user })
      }
    }
    // one statement (authors and claims in data-modifying CTEs), hence atomic without a transaction
    if (claims.size === 0) {
      await this.pool.query(`WITH appended AS (${insert}) ${authored}`, [names, data, authors, Date.now()])
      return
    }
    const rows = [...claims.values()]
    // an id claimed again gets a new (newest) id
    await this.pool.query(`
      WITH appended AS (${insert}), authored AS (${authored})
      INSERT INTO ${this.t.owners} (doc, client, owner) SELECT * FROM unnest($5::text[], $6::bigint[], $7::text[])
      ON CONFLICT (doc, client) DO UPDATE SET owner = excluded.owner, id = DEFAULT`,
    [names, data, authors, Date.now(), rows.map(row => row.doc), rows.map(row => row.client), rows.map(row => row.user)])
  }

  async compact (name: string): Promise<void> {
    const client = await this.pool.connect()
    try {
      await client.query('BEGIN')
      // one compaction per document at a time, across instances; a second one has nothing to do
      const { rows: [lock] } = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_xact_lock(hashtext($1)) AS ok', [`tandem-compact:${this.schema}:${name}`])
      if (lock?.ok !== true) {
        await client.query('ROLLBACK')
        client.release()
        return
      }
      // the advisory lock keeps other compactions out: a row read stays until the end (null: the
      // document was purged meanwhile, nothing to do)
      const rows = await this.readRows(client, name) ?? []
      if (rows.length < 2) {
        await client.query('ROLLBACK')
        client.release()
        return
      }
      // merged (rows of several instances may come in any causal order: a snapshot would leave out
      // content whose dependencies are not among them), off the event loop when big (off-loop.ts)
      const merged = await foldRows(rows.map(row => row.data), 'merge')
      // exactly the rows read: an update another instance appended meanwhile has an id we did not
      // read. Fewer: the document was purged meanwhile (purge takes no compaction lock), and the
      // merged row would bring it back
      const { rowCount } = await client.query(`DELETE FROM ${this.t.updates} WHERE id = ANY($1::bigint[])`, [rows.map(row => row.id)])
      if (rowCount !== rows.length) {
        await client.query('ROLLBACK')
        client.release()
        return
      }
      await client.query(`INSERT INTO ${this.t.updates} (doc, data) VALUES ($1, $2)`, [name, Buffer.from(merged.buffer, merged.byteOffset, merged.byteLength)])
      await client.query('COMMIT')
      client.release()
    } catch (err) {
      // the connection is closed, not rolled back and reused: it may be in the middle of a COPY
      // that nothing reads to its end (a ROLLBACK would wait for ever); closing it ends the transaction
      client.release(err as Error)
      throw err
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

  async saveVersion (name: string, version: NewVersion, policy: VersionPolicy): Promise<VersionInfo | null> {
    const client = await this.pool.connect()
    try {
      await client.query('BEGIN')
      // one version of a document at a time, across instances: the due check then holds
      await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`tandem-version:${this.schema}:${name}`])
      const { rows } = await client.query<{ author: string, since: string }>(`SELECT author, since FROM ${this.t.authors} WHERE doc = $1`, [name])
      if (policy.ifOlderThanMs > 0) {
        const { rows: [last] } = await client.query<{ at: string | null }>(`SELECT max(created_at) AS at FROM ${this.t.versions} WHERE doc = $1`, [name])
        const at = last?.at ?? null
        const reference = at !== null ? Number(at) : Math.min(...rows.map(row => Number(row.since)))
        if (rows.length === 0 || reference > version.createdAt - policy.ifOlderThanMs) {
          await client.query('ROLLBACK')
          return null
        }
      }
      const read = rows.map(row => row.author)
      const authors = read.filter(author => author !== '').sort()
      await client.query(`
        INSERT INTO ${this.t.versions} (doc, id, label, created_at, authors, automatic, data)
        VALUES ($1, $2, $3, $4, $5, $6, $7)`,
      [name, version.id, version.label, version.createdAt, authors, version.automatic, Buffer.from(version.state.buffer, version.state.byteOffset, version.state.byteLength)])
      // exactly the authors read: one recorded meanwhile belongs to the next version
      await client.query(`DELETE FROM ${this.t.authors} WHERE doc = $1 AND author = ANY($2::text[])`, [name, read])
      await client.query(`
        DELETE FROM ${this.t.versions} WHERE doc = $1 AND automatic AND seq NOT IN (
          SELECT seq FROM ${this.t.versions} WHERE doc = $1 AND automatic ORDER BY seq DESC LIMIT $2)`, [name, policy.retention])
      await client.query('COMMIT')
      return { id: version.id, label: version.label, createdAt: version.createdAt, authors, automatic: version.automatic }
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {})
      throw err
    } finally {
      client.release()
    }
  }

  async versions (name: string): Promise<VersionInfo[]> {
    const { rows } = await this.pool.query<{ id: string, label: string | null, created_at: string, authors: string[], automatic: boolean }>(
      `SELECT id, label, created_at, authors, automatic FROM ${this.t.versions} WHERE doc = $1 ORDER BY seq DESC`, [name])
    return rows.map(row => ({ id: row.id, label: row.label, createdAt: Number(row.created_at), authors: row.authors, automatic: row.automatic }))
  }

  async versionState (name: string, id: string): Promise<Uint8Array | null> {
    const { rows: [row] } = await this.pool.query<{ data: Buffer }>(`SELECT data FROM ${this.t.versions} WHERE doc = $1 AND id = $2`, [name, id])
    return row === undefined ? null : new Uint8Array(row.data.buffer, row.data.byteOffset, row.data.byteLength)
  }

  async dueForVersion (olderThanMs: number, limit: number): Promise<string[]> {
    const { rows } = await this.pool.query<{ doc: string }>(`
      SELECT a.doc FROM ${this.t.authors} a
      GROUP BY a.doc
      HAVING coalesce((SELECT max(created_at) FROM ${this.t.versions} v WHERE v.doc = a.doc), min(a.since)) <= $1
      LIMIT $2`, [Date.now() - olderThanMs, limit])
    return rows.map(row => row.doc)
  }

  async enqueueEvents (entries: readonly OutboxEntry[]): Promise<void> {
    if (entries.length === 0) return
    // unnest WITH ORDINALITY keeps the given order in the serial numbers
    await this.pool.query(`
      INSERT INTO ${this.t.outbox} (target, doc, body, created_at)
      SELECT target, doc, body, created_at FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[])
        WITH ORDINALITY AS t(target, doc, body, created_at, n) ORDER BY n`,
    [entries.map(e => e.target), entries.map(e => e.document), entries.map(e => e.body), entries.map(e => e.createdAt)])
  }

  async claimEvents (owner: string, leaseMs: number, limit: number): Promise<OutboxEvent[]> {
    const now = Date.now()
    // the lease conditions are repeated outside the subquery: an instance that waited for another's
    // claim of the same row re-checks them on the row as that one committed it, and skips it
    const { rows } = await this.pool.query<{ seq: string, target: string, doc: string, body: string, created_at: string, attempts: number }>(`
      UPDATE ${this.t.outbox} o SET lease_owner = $1, lease_until = $2::bigint + $3::bigint
      WHERE o.seq IN (
        SELECT h.seq FROM (
          SELECT DISTINCT ON (target, doc) seq, retry_at, lease_owner, lease_until
          FROM ${this.t.outbox} ORDER BY target, doc, seq
        ) h
        WHERE h.retry_at <= $2 AND (h.lease_owner IS NULL OR h.lease_until <= $2)
        ORDER BY h.seq LIMIT $4
      ) AND o.retry_at <= $2 AND (o.lease_owner IS NULL OR o.lease_until <= $2)
      RETURNING o.seq, o.target, o.doc, o.body, o.created_at, o.attempts`, [owner, now, leaseMs, limit])
    return rows
      .map(row => ({ seq: Number(row.seq), target: row.target, document: row.doc, body: row.body, createdAt: Number(row.created_at), attempts: row.attempts }))
      .sort((a, b) => a.seq - b.seq)
  }

  async settleEvent (seq: number, retryAt: number | null): Promise<void> {
    if (retryAt === null) await this.pool.query(`DELETE FROM ${this.t.outbox} WHERE seq = $1`, [seq])
    else await this.pool.query(`UPDATE ${this.t.outbox} SET attempts = attempts + 1, retry_at = $2, lease_owner = NULL, lease_until = 0 WHERE seq = $1`, [seq, retryAt])
  }

  async pendingEvents (): Promise<number> {
    const { rows: [row] } = await this.pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${this.t.outbox}`)
    return Number(row?.n ?? 0)
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
