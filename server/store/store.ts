import type { ClientOwner } from '../document/client-owners.js'

/** One update to append to a document's log. */
export interface StoreEntry {
  name: string
  update: Uint8Array
  /**
   * User id of the update's author: recorded with it, so that the next version of the document
   * lists who changed it since the previous one. Undefined: changed by no user (a restore).
   */
  author?: string
  /**
   * Client ids of the document that this update claimed for their users, stored in the same
   * write. A claim of an id stored before replaces it (its earlier owner's claim was released)
   * and counts as the newest.
   */
  owners?: readonly ClientOwner[]
}

/** A saved version of a document, as `GET /api/documents/:name/versions` lists it. */
export interface VersionInfo {
  id: string
  /** Given with the request; null for automatic versions. */
  label: string | null
  /** Milliseconds since the epoch. */
  createdAt: number
  /** User ids whose updates were stored since the previous version, sorted. */
  authors: string[]
  /** Taken by `--version-interval` (so dropped past `--version-retention`), not asked for. */
  automatic: boolean
}

/** A version to save: its description and the whole state of the document (a Yjs update, v1). */
export interface NewVersion {
  id: string
  label: string | null
  createdAt: number
  automatic: boolean
  state: Uint8Array
}

/** When `saveVersion` saves, and what it drops. */
export interface VersionPolicy {
  /**
   * 0: always. Otherwise only if some update was stored since the last version, and that version
   * (or, without one, the first update since) is older than this many milliseconds: instances
   * taking automatic versions of one document at once then save one.
   */
  ifOlderThanMs: number
  /** Automatic versions kept per document; the oldest beyond this are dropped. */
  retention: number
}

/** A webhook event to send to one receiver, in order with the other events of its document. */
export interface OutboxEntry {
  /** The receiver's URL. */
  target: string
  document: string
  /** The JSON body, exactly as signed and sent. */
  body: string
  /** Milliseconds since the epoch: the event is given up 24 h after this. */
  createdAt: number
}

/** An outbox entry claimed for delivery. */
export interface OutboxEvent extends OutboxEntry {
  /** Its place in the outbox: events of one document and receiver go out in this order. */
  seq: number
  /** Deliveries tried so far. */
  attempts: number
}

/**
 * What a store remembers of a deleted document (DELETE /api/documents/:name): while `deletedAt`
 * is set its data is kept for a restore; once purged, `deletedAt` is null and `retired` lists the
 * Yjs client ids of every purged generation, so that a client still holding the old content
 * cannot bring it back into the fresh document of the same name.
 */
export interface Tombstone {
  /** When it was deleted (ms since the epoch); null once purged. */
  deletedAt: number | null
  /** The purged generations' client ids, as a Yjs state vector; empty (zero bytes) when none. */
  retired: Uint8Array
}

/**
 * A revocation (`POST /api/revocations`): every session and token of a user issued before
 * `revokedAt`, one session, or one token (`jti`). Kept until `expiresAt`, when the tokens it
 * covers have expired, then pruned.
 */
export interface Revocation {
  kind: 'user' | 'session' | 'jti'
  value: string
  /** When it was made (ms since the epoch). */
  revokedAt: number
  /** When it may be forgotten (ms since the epoch). */
  expiresAt: number
}

/**
 * Where documents live between sessions. A document is an append-only log of Yjs updates that
 * `compact` folds into one snapshot; applying every stored update rebuilds the document, in any
 * order. Implementations: SQLite (embedded default), PostgreSQL (shared), memory (tests, demos).
 */
export interface Store {
  /** Every stored update of a document (snapshot and log); empty for a new document. */
  load (name: string): Promise<Uint8Array[]>
  /**
   * The client id owners stored for a document (see StoreEntry.owners), oldest claim first.
   * Optional for a store of one's own: without it, who owns which client id is forgotten when a
   * document unloads, and any user may write under an id nobody holds in memory.
   */
  loadOwners? (name: string): Promise<ClientOwner[]>
  /** Appends updates, possibly of several documents, durably and atomically. */
  append (entries: readonly StoreEntry[]): Promise<void>
  /**
   * Folds the updates stored for a document into one. Updates appended while it runs are kept:
   * only the rows it read are replaced.
   *
   * `snapshot`, when given, returns the state of the in-memory document, which every update
   * this process stored went through. A store only this process writes (SQLite, memory) may
   * store that in place of merging the rows, which is much cheaper; a store shared by several
   * instances must not, since another instance's rows may not be in it yet.
   */
  compact (name: string, snapshot?: () => Uint8Array): Promise<void>
  /** The deletion record of a document, or null when it was never deleted. */
  tombstone (name: string): Promise<Tombstone | null>
  /** Marks a document deleted at `at` (ms), keeping its data; false when it is deleted already. */
  markDeleted (name: string, at: number): Promise<boolean>
  /** Clears the deletion mark, its data untouched; false when it was not deleted. */
  restore (name: string): Promise<boolean>
  /** Documents deleted before `before` (ms), oldest first, at most `limit` of them. */
  deletedBefore (before: number, limit: number): Promise<Array<{ name: string, deletedAt: number }>>
  /**
   * Drops every stored update of a document still deleted at exactly `deletedAt` (a restore or a
   * later delete meanwhile wins) and records `retired` as its retired client ids, atomically.
   * False when it did nothing.
   */
  purge (name: string, deletedAt: number, retired: Uint8Array): Promise<boolean>
  /** The next fencing token for a lock resource: larger than any returned before, ever. */
  nextFencingToken (name: string, resource: string): Promise<number>
  /**
   * Saves a version of a document (see VersionPolicy), its authors the ones recorded since the
   * previous version, which are then cleared; drops automatic versions past the retention.
   * Resolves with the version saved, or null when the policy says not now. Versions live apart
   * from the update log: compaction never touches them.
   */
  saveVersion (name: string, version: NewVersion, policy: VersionPolicy): Promise<VersionInfo | null>
  /** The versions of a document, newest first. */
  versions (name: string): Promise<VersionInfo[]>
  /** The state saved with a version, or null when there is no such version. */
  versionState (name: string, id: string): Promise<Uint8Array | null>
  /**
   * Up to `limit` documents due for an automatic version: changed since their last version, which
   * (or, without one, their first change since) is older than `olderThanMs`.
   */
  dueForVersion (olderThanMs: number, limit: number): Promise<string[]>
  /** Adds webhook events to the outbox, durably, in the order given. */
  enqueueEvents (entries: readonly OutboxEntry[]): Promise<void>
  /**
   * Claims up to `limit` events ready to send, for `leaseMs`: for each document and receiver at
   * most its oldest event, and only if that one is due (`retryAt` passed) and not claimed by
   * another instance whose lease still runs. So events of one document go out one at a time, in
   * order, and each by one instance.
   */
  claimEvents (owner: string, leaseMs: number, limit: number): Promise<OutboxEvent[]>
  /** Settles a claimed event: delivered or given up (`retryAt` null, it is deleted), or to retry at `retryAt`. */
  settleEvent (seq: number, retryAt: number | null): Promise<void>
  /** Events waiting in the outbox. */
  pendingEvents (): Promise<number>
  /**
   * Stores a revocation durably. The same kind and value again keeps one record with the later
   * `revokedAt` and the later `expiresAt`.
   */
  addRevocation (revocation: Revocation): Promise<void>
  /** The revocations in force at `now` (ms); deletes those whose `expiresAt` has passed. */
  revocations (now: number): Promise<Revocation[]>
  /** Releases the store's resources; safe to call twice. */
  close (): Promise<void>
}
