'use strict'
/**
 * The connection of a SqliteStore, in a worker thread: every statement runs here, so the event
 * loop that relays updates never waits for a commit, a compaction or a WAL checkpoint (SQLite's
 * automatic checkpoint runs inside the commit that crosses its threshold, on this thread).
 * Requests are handled one at a time, in the order they were sent; each gets one reply
 * `{ id, result }` or `{ id, error }`. At start-up it replies `{ ready: true }`, or `{ fatal }`
 * and exits when the database cannot be opened.
 *
 * Plain CommonJS, so that the same file runs from server/ under the tests and from dist/.
 */
const { parentPort, workerData } = require('node:worker_threads')
const { statSync } = require('node:fs')
const Database = require('better-sqlite3')

/** Bytes the WAL is truncated to after a checkpoint (`journal_size_limit`). */
const WAL_SIZE_LIMIT = 4 * 1024 * 1024
/** Pages of WAL after which a commit checkpoints (SQLite's default, made explicit). */
const AUTOCHECKPOINT_PAGES = 1000
/**
 * A WAL past this many bytes after a commit is checkpointed and truncated at once: the
 * automatic checkpoint can be held back (another instance reading the same file), and a single
 * large batch can push the WAL far past the automatic threshold.
 */
const WAL_TRUNCATE_BYTES = 4 * WAL_SIZE_LIMIT

/**
 * Opens the database: WAL (size-limited: WAL_SIZE_LIMIT), and each document's log as one run of rows in a clustered b-tree
 * keyed (doc, seq). Compacting a document deletes a run of adjacent rows, where a rowid table
 * with an index on (doc, id) touched a page per row (5 ms per compaction of 500 rows, 0.3 ms
 * clustered). A database of the earlier layout (table `updates`) is moved into `log`, in order.
 */
function open (file, durability) {
  const db = new Database(file)
  try {
    return prepare(db, durability)
  } catch (err) {
    db.close()
    throw err
  }
}

/** Sets a new connection up: its pragmas, the tables, and the move from the earlier layout. */
function prepare (db, durability) {
  db.pragma('journal_mode = WAL')
  // NORMAL: a commit reaches the operating system before it is acknowledged, so it survives
  // SIGKILL of the server; FULL also fsyncs it, for power loss
  db.pragma(`synchronous = ${durability === 'full' ? 'FULL' : 'NORMAL'}`)
  db.pragma('busy_timeout = 5000')
  // after a checkpoint the WAL restarts from its beginning but keeps its size: without a limit
  // it stays as large as the largest run of commits between two checkpoints ever made it
  db.pragma(`journal_size_limit = ${WAL_SIZE_LIMIT}`)
  db.pragma(`wal_autocheckpoint = ${AUTOCHECKPOINT_PAGES}`)
  db.exec(`
    CREATE TABLE IF NOT EXISTS log (
      doc TEXT NOT NULL,
      seq INTEGER NOT NULL,
      data BLOB NOT NULL,
      PRIMARY KEY (doc, seq)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS fencing (
      doc TEXT NOT NULL,
      resource TEXT NOT NULL,
      token INTEGER NOT NULL,
      PRIMARY KEY (doc, resource)
    );
    CREATE TABLE IF NOT EXISTS versions (
      doc TEXT NOT NULL,
      id TEXT NOT NULL,
      label TEXT,
      created_at INTEGER NOT NULL,
      authors TEXT NOT NULL,
      automatic INTEGER NOT NULL,
      data BLOB NOT NULL,
      UNIQUE (doc, id)
    );
    CREATE INDEX IF NOT EXISTS versions_doc ON versions (doc);
    CREATE TABLE IF NOT EXISTS version_authors (
      doc TEXT NOT NULL,
      author TEXT NOT NULL,
      since INTEGER NOT NULL,
      PRIMARY KEY (doc, author)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS outbox (
      seq INTEGER PRIMARY KEY AUTOINCREMENT,
      target TEXT NOT NULL,
      doc TEXT NOT NULL,
      body TEXT NOT NULL,
      created_at INTEGER NOT NULL,
      attempts INTEGER NOT NULL DEFAULT 0,
      retry_at INTEGER NOT NULL DEFAULT 0,
      lease_owner TEXT,
      lease_until INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX IF NOT EXISTS outbox_queue ON outbox (target, doc, seq);
    CREATE TABLE IF NOT EXISTS tombstones (
      doc TEXT PRIMARY KEY,
      deleted_at INTEGER,
      retired BLOB NOT NULL
    );
    -- who owns which Yjs client id of a document; a rowid table: the rowid is the claim order
    CREATE TABLE IF NOT EXISTS owners (
      doc TEXT NOT NULL,
      client INTEGER NOT NULL,
      user TEXT NOT NULL,
      PRIMARY KEY (doc, client)
    );
  `)
  if (db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'updates'").get() !== undefined) {
    db.transaction(() => {
      db.exec(`
        INSERT INTO log (doc, seq, data) SELECT doc, id, data FROM updates ORDER BY id;
        DROP TABLE updates;
      `)
    }).immediate()
  }
  return db
}

/** The store's operations, each one statement or one transaction. */
function operations (db) {
  const insert = db.prepare(`
    INSERT INTO log (doc, seq, data)
    VALUES (@doc, (SELECT coalesce(max(seq), 0) + 1 FROM log WHERE doc = @doc), @data)`)
  const insertAt = db.prepare('INSERT INTO log (doc, seq, data) VALUES (?, ?, ?)')
  const select = db.prepare('SELECT seq, data FROM log WHERE doc = ? ORDER BY seq')
  const last = db.prepare('SELECT max(seq) AS seq, count(*) AS n FROM log WHERE doc = ?')
  const remove = db.prepare('DELETE FROM log WHERE doc = ? AND seq <= ?')
  const bump = db.prepare(`
    INSERT INTO fencing (doc, resource, token) VALUES (?, ?, 1)
    ON CONFLICT (doc, resource) DO UPDATE SET token = token + 1
    RETURNING token`)
  // REPLACE deletes the row of an id claimed again and inserts a new one, with the next rowid:
  // the claim counts as the newest
  const claim = db.prepare('INSERT OR REPLACE INTO owners (doc, client, user) VALUES (?, ?, ?)')
  const selectOwners = db.prepare('SELECT client, user FROM owners WHERE doc = ? ORDER BY rowid')
  const getTombstone = db.prepare('SELECT deleted_at AS deletedAt, retired FROM tombstones WHERE doc = ?')
  const markDeleted = db.prepare(`
    INSERT INTO tombstones (doc, deleted_at, retired) VALUES (?, ?, x'')
    ON CONFLICT (doc) DO UPDATE SET deleted_at = excluded.deleted_at WHERE tombstones.deleted_at IS NULL`)
  const restore = db.prepare('UPDATE tombstones SET deleted_at = NULL WHERE doc = ? AND deleted_at IS NOT NULL')
  const deletedBefore = db.prepare(`
    SELECT doc AS name, deleted_at AS deletedAt FROM tombstones
    WHERE deleted_at IS NOT NULL AND deleted_at < ? ORDER BY deleted_at LIMIT ?`)
  const retire = db.prepare('UPDATE tombstones SET deleted_at = NULL, retired = ? WHERE doc = ? AND deleted_at = ?')
  const removeAll = db.prepare('DELETE FROM log WHERE doc = ?')
  const removeOwners = db.prepare('DELETE FROM owners WHERE doc = ?')
  // the mark and the rows go together: a restore either wins before or finds nothing to restore
  const purge = db.transaction((name, deletedAt, retired) => {
    if (retire.run(retired, name, deletedAt).changes !== 1) return false
    removeAll.run(name)
    removeOwners.run(name)
    return true
  })
  // made on first use, not at open: two instances opening a new file at once race on every
  // schema change there, and only a server ever needs this table
  let revocationStatements
  const revocations = () => {
    if (revocationStatements !== undefined) return revocationStatements
    db.exec(`
      CREATE TABLE IF NOT EXISTS revocations (
        kind TEXT NOT NULL,
        value TEXT NOT NULL,
        revoked_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (kind, value)
      )`)
    revocationStatements = {
      add: db.prepare(`
        INSERT INTO revocations (kind, value, revoked_at, expires_at) VALUES (@kind, @value, @revokedAt, @expiresAt)
        ON CONFLICT (kind, value) DO UPDATE SET
          revoked_at = max(revoked_at, excluded.revoked_at), expires_at = max(expires_at, excluded.expires_at)`),
      prune: db.prepare('DELETE FROM revocations WHERE expires_at <= ?'),
      list: db.prepare('SELECT kind, value, revoked_at AS revokedAt, expires_at AS expiresAt FROM revocations')
    }
    return revocationStatements
  }
  const noteAuthor = db.prepare('INSERT INTO version_authors (doc, author, since) VALUES (?, ?, ?) ON CONFLICT DO NOTHING')
  // (doc, author) pairs known to be in version_authors since the doc's last version: each is
  // written once per version, not once per batch (an INSERT per update cost about 10% of the
  // server's CPU per delivered update on 100 documents × 5 clients). A cache of this connection's
  // own writes, cleared when this connection saves a version of the doc; with SQLite a document
  // is written by one instance. Forgotten whole past NOTED_MAX docs (then merely written again).
  const noted = new Map()
  const append = db.transaction(entries => {
    const now = Date.now()
    const fresh = []
    const inBatch = new Set()
    for (const { name, update, author, owners } of entries) {
      insert.run({ doc: name, data: update })
      if (owners !== undefined) for (const { client, user } of owners) claim.run(name, client, user)
      const who = author ?? ''
      const key = `${name}\u0000${who}`
      if (noted.get(name)?.has(who) || inBatch.has(key)) continue
      inBatch.add(key)
      fresh.push([name, who])
      noteAuthor.run(name, who, now)
    }
    return fresh
  })
  /** Runs the append; once it committed, its new authors are known to be written. */
  const appendAndNote = entries => {
    const fresh = append.immediate(entries)
    if (noted.size > NOTED_MAX) noted.clear()
    for (const [name, who] of fresh) {
      let authors = noted.get(name)
      if (authors === undefined) noted.set(name, authors = new Set())
      authors.add(who)
    }
  }
  const versionOps = versions(db, name => noted.delete(name))
  const outboxOps = outbox(db)
  // a snapshot of the document as the caller holds it (every update sent here before it) replaces
  // the rows up to the last one, in its place; run IMMEDIATE (below), it holds the write lock from
  // its first read, so nothing can be appended between the read and the delete, by this
  // connection or another instance's
  const compact = db.transaction((name, snapshot) => {
    const tail = last.get(name)
    if (tail.seq === null || tail.n < 2) return
    remove.run(name, tail.seq)
    insertAt.run(name, tail.seq, snapshot)
  })
  // a compaction without a snapshot (SqliteStore.compact) reads the rows to fold here, folds them
  // in a thread of its own (document/off-loop.ts) and replaces them here (replaceRows): this
  // thread, which every commit waits for, never builds the document (2-4 MiB of typed text held
  // it 0.35-0.55 s)
  const compactionPlan = name => {
    const rows = select.all(name)
    if (rows.length < 2) return null
    const head = rows[0].data
    if (head.byteLength >= BIG_SNAPSHOT_BYTES) {
      // a big document: its first row is its last snapshot, the rest the updates since
      const tail = rows.slice(1)
      let tailBytes = 0
      for (const row of tail) tailBytes += row.data.byteLength
      // the updates since are folded into one row and the snapshot is left as it is (the cost is
      // the updates', not the document's), until they come to 1 / TAIL_SHARE of it; then all are
      // merged, never applied to a Y.Doc (five times the encoded size)
      if (head.byteLength >= TAIL_SHARE * tailBytes) return tail.length < 2 ? null : planOf(tail, 'merge')
      return planOf(rows, 'merge')
    }
    return planOf(rows, 'snapshot')
  }
  const inRange = db.prepare('SELECT count(*) AS n, coalesce(sum(length(data)), 0) AS bytes FROM log WHERE doc = ? AND seq BETWEEN ? AND ?')
  const removeRange = db.prepare('DELETE FROM log WHERE doc = ? AND seq BETWEEN ? AND ?')
  // the rows a plan read, still as they were (not compacted meanwhile by another instance sharing
  // the file), are replaced by the folded row in the last one's place; rows appended since have
  // later seqs and stay
  const replaceRows = db.transaction((name, plan, folded) => {
    const now = inRange.get(name, plan.first, plan.last)
    if (now.n !== plan.count || now.bytes !== plan.bytes) return false
    removeRange.run(name, plan.first, plan.last)
    insertAt.run(name, plan.last, folded)
    return true
  })
  return {
    load: name => select.all(name).map(row => row.data),
    loadOwners: name => selectOwners.all(name),
    // IMMEDIATE: the write lock is taken (waiting for another connection's, if a second
    // instance writes the same file) before anything is read; a deferred transaction that read
    // first and then found the file changed by another connection fails at once, without waiting
    append: entries => { appendAndNote(entries) },
    compact: (name, snapshot) => { compact.immediate(name, snapshot) },
    compactionPlan,
    replaceRows: (name, plan, folded) => replaceRows.immediate(name, plan, folded),
    tombstone: name => getTombstone.get(name) ?? null,
    markDeleted: (name, at) => markDeleted.run(name, at).changes === 1,
    restore: name => restore.run(name).changes === 1,
    deletedBefore: (before, limit) => deletedBefore.all(before, limit),
    purge: (name, deletedAt, retired) => purge.immediate(name, deletedAt, retired),
    // all(), not get(): get() stops at the first row, and a RETURNING statement not stepped to
    // its end kept SQLite's automatic checkpoint from ever completing, so the WAL grew by a page
    // per token (5,000 lock grants: 20 MiB of WAL, never shrunk)
    nextFencingToken: (name, resource) => bump.all(name, resource)[0].token,
    ...versionOps,
    ...outboxOps,
    addRevocation: revocation => { revocations().add.run(revocation) },
    revocations: now => {
      const { prune, list } = revocations()
      prune.run(now)
      return list.all()
    }
  }
}

/** Rows to fold: their seqs' range, count and bytes (to find them unchanged), the rows, and how. */
function planOf (rows, how) {
  let bytes = 0
  for (const row of rows) bytes += row.data.byteLength
  return { first: rows[0].seq, last: rows[rows.length - 1].seq, count: rows.length, bytes, how, rows: rows.map(row => row.data) }
}

/**
 * A first row at least this large is a big document's snapshot: compacting without a snapshot
 * from the caller (the registry's choice for big documents, whose in-memory encoding would hold
 * up the event loop) folds only the updates after it, until they come to 1 / TAIL_SHARE of it.
 */
const BIG_SNAPSHOT_BYTES = 4 * 1024 * 1024
const TAIL_SHARE = 4

/** Documents whose authors the append cache remembers before it starts over. */
const NOTED_MAX = 10_000

/** Versions: saved apart from the log, with the authors recorded since the previous one. */
function versions (db, authorsCleared) {
  const authorsOf = db.prepare('SELECT author, since FROM version_authors WHERE doc = ?')
  const clearAuthors = db.prepare('DELETE FROM version_authors WHERE doc = ?')
  const lastAt = db.prepare('SELECT max(created_at) AS at FROM versions WHERE doc = ?')
  const insert = db.prepare(`
    INSERT INTO versions (doc, id, label, created_at, authors, automatic, data)
    VALUES (?, ?, ?, ?, ?, ?, ?)`)
  const prune = db.prepare(`
    DELETE FROM versions WHERE doc = ? AND automatic = 1 AND rowid NOT IN (
      SELECT rowid FROM versions WHERE doc = ? AND automatic = 1 ORDER BY rowid DESC LIMIT ?)`)
  const list = db.prepare('SELECT id, label, created_at, authors, automatic FROM versions WHERE doc = ? ORDER BY rowid DESC')
  const state = db.prepare('SELECT data FROM versions WHERE doc = ? AND id = ?')
  const due = db.prepare(`
    SELECT a.doc FROM version_authors a LEFT JOIN versions v ON v.doc = a.doc
    GROUP BY a.doc HAVING coalesce(max(v.created_at), min(a.since)) <= ? LIMIT ?`)
  const save = db.transaction((name, version, policy) => {
    const rows = authorsOf.all(name)
    if (policy.ifOlderThanMs > 0) {
      if (rows.length === 0) return null
      const last = lastAt.get(name).at ?? Math.min(...rows.map(row => row.since))
      if (last > version.createdAt - policy.ifOlderThanMs) return null
    }
    const authors = rows.map(row => row.author).filter(author => author !== '').sort()
    insert.run(name, version.id, version.label, version.createdAt, JSON.stringify(authors), version.automatic ? 1 : 0, version.state)
    clearAuthors.run(name)
    authorsCleared(name)
    prune.run(name, name, policy.retention)
    return { id: version.id, label: version.label, createdAt: version.createdAt, authors, automatic: version.automatic }
  })
  return {
    saveVersion: (name, version, policy) => save.immediate(name, version, policy),
    versions: name => list.all(name).map(row => ({
      id: row.id, label: row.label, createdAt: row.created_at, authors: JSON.parse(row.authors), automatic: row.automatic === 1
    })),
    versionState: (name, id) => state.get(name, id)?.data ?? null,
    dueForVersion: (olderThanMs, limit) => due.all(Date.now() - olderThanMs, limit).map(row => row.doc)
  }
}

/**
 * The webhook outbox. A claim takes the oldest event of each (receiver, document), if it is due
 * and not leased by someone else; in one IMMEDIATE transaction, so two instances sharing the file
 * never claim the same event.
 */
function outbox (db) {
  const insert = db.prepare('INSERT INTO outbox (target, doc, body, created_at) VALUES (?, ?, ?, ?)')
  const enqueue = db.transaction(entries => {
    for (const { target, document, body, createdAt } of entries) insert.run(target, document, body, createdAt)
  })
  const heads = db.prepare(`
    SELECT o.seq, o.target, o.doc, o.body, o.created_at, o.attempts FROM outbox o
    JOIN (SELECT min(seq) AS seq FROM outbox GROUP BY target, doc) h ON h.seq = o.seq
    WHERE o.retry_at <= @now AND (o.lease_owner IS NULL OR o.lease_until <= @now)
    ORDER BY o.seq LIMIT @limit`)
  const lease = db.prepare('UPDATE outbox SET lease_owner = ?, lease_until = ? WHERE seq = ?')
  const claim = db.transaction((owner, leaseMs, limit) => {
    const now = Date.now()
    const rows = heads.all({ now, limit })
    for (const row of rows) lease.run(owner, now + leaseMs, row.seq)
    return rows.map(row => ({ seq: row.seq, target: row.target, document: row.doc, body: row.body, createdAt: row.created_at, attempts: row.attempts }))
  })
  const remove = db.prepare('DELETE FROM outbox WHERE seq = ?')
  const retry = db.prepare('UPDATE outbox SET attempts = attempts + 1, retry_at = ?, lease_owner = NULL, lease_until = 0 WHERE seq = ?')
  const count = db.prepare('SELECT count(*) AS n FROM outbox')
  return {
    enqueueEvents: entries => { enqueue.immediate(entries) },
    claimEvents: (owner, leaseMs, limit) => claim.immediate(owner, leaseMs, limit),
    settleEvent: (seq, retryAt) => { if (retryAt === null) remove.run(seq); else retry.run(retryAt, seq) },
    pendingEvents: () => count.get().n
  }
}

/** The operations that commit: each is followed by a check of the WAL's size. */
const WRITES = new Set(['append', 'compact', 'replaceRows', 'nextFencingToken', 'addRevocation', 'revocations', 'saveVersion', 'enqueueEvents', 'claimEvents', 'settleEvent', 'markDeleted', 'restore', 'purge'])

/**
 * Checkpoints and truncates the WAL once it is past WAL_TRUNCATE_BYTES. A stat costs a few
 * microseconds; the checkpoint runs only after the WAL grew past what the automatic one keeps.
 */
function limitWal (db, walFile) {
  let size
  try {
    size = statSync(walFile).size
  } catch {
    return
  }
  if (size > WAL_TRUNCATE_BYTES) db.pragma('wal_checkpoint(TRUNCATE)')
}

/**
 * Opens the database, trying again for up to 5 s while another connection holds it: SQLite does
 * not always wait by itself (two instances opening a new file at once, one turning it to WAL).
 */
function openPatiently (file, durability) {
  const deadline = Date.now() + 5000
  for (;;) {
    try {
      return open(file, durability)
    } catch (err) {
      if (!String(err.code).startsWith('SQLITE_BUSY') || Date.now() > deadline) throw err
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20)
    }
  }
}

/**
 * The memory of the buffers in `list` that each own all of theirs (better-sqlite3 gives every
 * blob its own): moved to the main thread rather than copied, so that a document's read costs
 * the event loop no copy of its bytes (a first sync sends them as they are, stored-sync.ts).
 */
function ownBuffers (list) {
  const buffers = []
  const seen = new Set()
  for (const data of list) {
    const { buffer } = data
    if (data.byteOffset !== 0 || data.byteLength !== buffer.byteLength || seen.has(buffer)) return []
    seen.add(buffer)
    buffers.push(buffer)
  }
  return buffers
}

/** Replies to request `id`, moving `transfer` when the runtime lets it (else copying it). */
function reply (id, result, transfer) {
  if (transfer.length > 0) {
    try {
      parentPort.postMessage({ id, result }, transfer)
      return
    } catch {
      // not movable here: copied below
    }
  }
  parentPort.postMessage({ id, result })
}

let db
try {
  db = openPatiently(workerData.file, workerData.durability)
} catch (err) {
  parentPort.postMessage({ fatal: err.message })
  process.exit(1)
}
const ops = operations(db)
const walFile = workerData.file === ':memory:' ? null : `${workerData.file}-wal`
parentPort.on('message', ({ id, op, args }) => {
  if (op === 'close') {
    db.close()
    parentPort.postMessage({ id, result: undefined })
    parentPort.close()
    return
  }
  try {
    const result = ops[op](...args)
    if (WRITES.has(op) && walFile !== null) limitWal(db, walFile)
    reply(id, result, op === 'load' ? ownBuffers(result) : op === 'compactionPlan' && result !== null ? ownBuffers(result.rows) : [])
  } catch (err) {
    parentPort.postMessage({ id, error: { message: err.message, code: err.code } })
  }
})
parentPort.postMessage({ ready: true })
