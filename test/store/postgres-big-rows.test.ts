import { describe, expect, onTestFinished } from 'vitest'
import * as Y from 'yjs'
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { to as copyTo } from 'pg-copy-streams'
import { PostgresStore } from '../../server/store/postgres-store.js'
import { BinaryCopyReader } from '../../server/store/pg-binary-copy.js'
import { POSTGRES_URL, pgSchema, postgresUp, testWith } from '../support/services.js'
import { bigDocumentFile, BIG_SEED, BIG_TEXT } from '../../bench/big-doc.js'

const MiB = 1024 * 1024

/** What COPY binary sends for `values` (one bytea column), as the server sent it. */
async function copyStream (values: readonly Uint8Array[]): Promise<Buffer> {
  const client = new pg.Client({ connectionString: POSTGRES_URL })
  await client.connect()
  onTestFinished(() => client.end())
  const schema = pgSchema()
  await client.query(`CREATE SCHEMA "${schema}"; CREATE TABLE "${schema}".t (id serial PRIMARY KEY, data bytea NOT NULL)`)
  for (const value of values) await client.query(`INSERT INTO "${schema}".t (data) VALUES ($1)`, [Buffer.from(value)])
  const chunks: Buffer[] = []
  for await (const chunk of client.query(copyTo(`COPY (SELECT data FROM "${schema}".t ORDER BY id) TO STDOUT (FORMAT binary)`))) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

/** `bytes` fed to a reader in pieces of `size`. */
function readInPieces (bytes: Buffer, size: number): Uint8Array[] {
  const reader = new BinaryCopyReader()
  for (let at = 0; at < bytes.byteLength; at += size) reader.push(bytes.subarray(at, at + size))
  return reader.end()
}

describe('COPY binary, read chunk by chunk', () => {
  testWith(postgresUp)('gives back every value whole, wherever the chunks split the stream', async () => {
    const values = [randomBytes(3), new Uint8Array(0), randomBytes(70_000), Uint8Array.of(0xff), randomBytes(1000)]
    const stream = await copyStream(values)
    for (const size of [1, 2, 5, 7, 19, 64, 4096, 65_536, stream.byteLength]) {
      const read = readInPieces(stream, size)
      expect(read.map(value => Buffer.from(value).toString('hex'))).toEqual(values.map(value => Buffer.from(value).toString('hex')))
    }
  })

  testWith(postgresUp)('refuses a stream cut short, a stream that is not COPY binary, and bytes after the end', async () => {
    const stream = await copyStream([randomBytes(100), randomBytes(10)])
    expect(() => readInPieces(stream.subarray(0, stream.byteLength - 5), 16)).toThrow('COPY binary: the data ended early')
    expect(() => readInPieces(Buffer.from('not a copy stream at all'), 4)).toThrow('COPY binary: not a binary COPY stream')
    expect(() => readInPieces(Buffer.concat([stream, Buffer.from([0, 1])]), 8)).toThrow('COPY binary: data after its end')
  })
})

describe('a PostgreSQL store with rows of a MiB or more', () => {
  testWith(postgresUp)('loads big and small rows in order, byte for byte', async () => {
    const store = await PostgresStore.open(POSTGRES_URL, { schema: pgSchema() })
    onTestFinished(() => store.close())
    // not Yjs updates: the load returns what was stored; the compaction below uses real ones
    const rows = [randomBytes(10), randomBytes(3 * MiB), randomBytes(MiB - 1), randomBytes(MiB), randomBytes(20)]
    for (const update of rows) await store.append([{ name: 'raw', update }])
    const loaded = await store.load('raw')
    expect(loaded.map(row => Buffer.from(row).toString('base64'))).toEqual(rows.map(row => row.toString('base64')))
  })

  testWith(postgresUp)('compacts a document of big rows into one that builds the same document', async () => {
    const store = await PostgresStore.open(POSTGRES_URL, { schema: pgSchema() })
    onTestFinished(() => store.close())
    const { update: head } = bigDocumentFile(2 * MiB, BIG_SEED)
    const doc = new Y.Doc()
    Y.applyUpdate(doc, head)
    const edits: Uint8Array[] = []
    doc.on('update', (update: Uint8Array) => edits.push(update))
    doc.getText(BIG_TEXT).insert(0, 'x'.repeat(MiB + 10))
    doc.getText(BIG_TEXT).insert(5, 'small edit')
    for (const update of [head, ...edits]) await store.append([{ name: 'big', update }])
    await store.compact('big')
    const rows = await store.load('big')
    expect(rows).toHaveLength(1)
    const built = new Y.Doc()
    Y.applyUpdate(built, rows[0] as Uint8Array)
    expect(built.getText(BIG_TEXT).toString()).toBe(doc.getText(BIG_TEXT).toString())
  })
})
