import type { ClientOwner } from '../document/client-owners.js'

/** One update to append to a document's log. */
export interface StoreEntry {
  name: string
  update: Uint8Array
  /**
   * Client ids of the document that this update claimed for their users, stored in the same
   * write. A claim of an id stored before replaces it (its earlier owner's claim was released)
   * and counts as the newest.
   */
  owners?: readonly ClientOwner[]
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
   * Stores a revocation durably. The same kind and value again keeps one record with the later
   * `revokedAt` and the later `expiresAt`.
   */
  addRevocation (revocation: Revocation): Promise<void>
  /** The revocations in force at `now` (ms); deletes those whose `expiresAt` has passed. */
  revocations (now: number): Promise<Revocation[]>
  /** Releases the store's resources; safe to call twice. */
  close (): Promise<void>
}
