import type { IncomingMessage } from 'node:http'
import * as Y from 'yjs'
import type { Route, RouteResult, Router } from './router.js'
import type { DocumentRegistry } from '../document/registry.js'
import type { Store } from '../store/store.js'
import type { Deletions } from '../document/deletion.js'
import { ServerMember } from '../document/handle.js'
import { documentJson } from '../document/content-json.js'
import { TandemError, isTandemError } from '../../shared/errors.js'
import { validateDocumentName } from '../../shared/document-name.js'

/** What the document API reads of the server (lazily: the parts exist only while listening). */
export interface DocumentApiSource {
  readonly documents: DocumentRegistry
  readonly store: Store
  readonly deletions: Deletions
  /** True when other instances share the documents: the store, not memory, has every acknowledged edit. */
  readonly clustered: boolean
  /**
   * True when the server authenticates its users (an auth secret or hook): an API write owns the
   * client ids it writes under as its user, like a session of that user (see ServerMember).
   */
  readonly authenticated: boolean
  /** The largest body `POST .../updates` accepts (--max-message-size). */
  readonly maxMessageSize: number
}

/** Who an API write is attributed to when the caller does not say. */
export const DEFAULT_API_USER = 'api'
/** The header naming the user an API write is attributed to (the `userId` query parameter wins). */
export const USER_HEADER = 'tandem-user-id'
const MAX_USER_ID_LENGTH = 256

/**
 * What the `:name*` of the document API's routes may not end with (raw, before percent-decoding):
 * the suffixes of the other routes under /api/documents/:name (presence, locks, locks/:resource,
 * users/:userId, recheck, versions/...) and of its own, so `DELETE /api/documents/x/locks/r`
 * releases a lock and `POST /api/documents/x/versions/3/restore` reaches the versions routes
 * whichever route was added first. A document whose name has such segments is addressed with its
 * slashes written `%2F`.
 */
export const RESERVED_NAME_TAIL = /\/(?:presence|locks|recheck|content|updates|restore|versions)$|\/(?:locks|users)\/[^/]+$|\/versions\//
const NAME = { name: RESERVED_NAME_TAIL }

/**
 * The document API, under the admin token like the rest of /api:
 *
 *   GET    /api/documents/:name/content     the whole state as a Yjs update (v1); ?format=json:
 *                                           { "<top-level type>": value }; 404 when none, 410 deleted
 *   POST   /api/documents/:name/updates     body: a Yjs update (v1); 200 { stored: true } once stored
 *   DELETE /api/documents/:name             200 { deleted: true }; 404 when none, 410 when deleted
 *   POST   /api/documents/:name/restore     200 { restored: true }; 404 when not deleted (or purged)
 *
 * `guard` wraps every route (the admin API's check). The names are anchored (RESERVED_NAME_TAIL),
 * so the order of registration does not matter.
 */
export function registerDocumentApi (router: Router, source: () => DocumentApiSource, guard: (route: Route) => Route): void {
  const route = (handler: (req: IncomingMessage, name: string) => Promise<RouteResult>): Route =>
    guard(async (req, { name }) => {
      try {
        // the one document-name rule, as at the upgrade: 400 TANDEM_ERR_INVALID_DOCUMENT_NAME
        validateDocumentName(name as string)
        return await handler(req, name as string)
      } catch (err) {
        return failure(err)
      }
    })
  router
    .add('GET', '/api/documents/:name*/content', route(async (req, name) => {
      const json = new URL(req.url ?? '/', 'http://localhost').searchParams.get('format') === 'json'
      const read = await readDocument(source(), name)
      if (read === null) return { status: 404, body: { error: 'no such document' } }
      try {
        if (json) return { status: 200, body: documentJson(read.ydoc) }
        return { status: 200, body: Y.encodeStateAsUpdate(read.ydoc), contentType: 'application/octet-stream' }
      } finally {
        if (read.owned) read.ydoc.destroy()
      }
    }), NAME)
    .add('POST', '/api/documents/:name*/updates', route(async (req, name) => {
      const userId = callerOf(req)
      const body = await readBody(req, source().maxMessageSize)
      await writeUpdate(source(), name, body, userId)
      return { status: 200, body: { stored: true } }
    }), NAME)
    .add('POST', '/api/documents/:name*/restore', route(async (_req, name) => {
      return await source().deletions.restore(name)
        ? { status: 200, body: { restored: true } }
        : { status: 404, body: { error: 'the document is not deleted (or was purged)' } }
    }), NAME)
    .add('DELETE', '/api/documents/:name*', route(async (_req, name) => {
      const { documents, store, deletions } = source()
      const tombstone = await store.tombstone(name)
      if (tombstone?.deletedAt != null) return failure(new TandemError('TANDEM_ERR_DOCUMENT_DELETED'))
      if (documents.get(name) === undefined && (await store.load(name)).length === 0) {
        return { status: 404, body: { error: 'no such document' } }
      }
      if (!await deletions.delete(name)) return failure(new TandemError('TANDEM_ERR_DOCUMENT_DELETED'))
      return { status: 200, body: { deleted: true } }
    }), NAME)
}

/**
 * The document's content, or null when it has none stored and is not loaded here. A document
 * loaded here is read from memory, which holds every update this instance acknowledged; with
 * other instances, from the store as well, which holds every update any instance acknowledged
 * (an update is acknowledged only once stored). A document not loaded is read from the store and
 * is not loaded. `owned`: the Y.Doc is a copy, to destroy after use (else it is the live one).
 */
async function readDocument (source: DocumentApiSource, name: string): Promise<{ ydoc: Y.Doc, owned: boolean } | null> {
  const { documents, store, deletions, clustered } = source
  let loaded = documents.get(name)
  if (loaded?.status === 'loading') {
    await documents.open(name).loaded
    loaded = documents.get(name)
  }
  const live = loaded !== undefined && (loaded.status === 'ready' || loaded.status === 'unloading') ? loaded : undefined
  if (live !== undefined && !clustered) return { ydoc: live.ydoc, owned: false }
  // another instance may have deleted it a moment ago
  await deletions.gate(name)
  const updates = await store.load(name)
  if (updates.length === 0 && live === undefined) return null
  const copy = new Y.Doc()
  Y.transact(copy, () => {
    for (const update of updates) Y.applyUpdate(copy, update)
    if (live !== undefined) Y.applyUpdate(copy, Y.encodeStateAsUpdate(live.ydoc))
  })
  return { ydoc: copy, owned: true }
}

/**
 * Applies an update as `userId`, through the path a client's update takes (Document.applyUpdate),
 * and resolves once it is stored. Refuses, changing nothing, an update that does not decode or
 * contradicts the document (update-guard.ts, 400 TANDEM_ERR_INVALID_UPDATE), depends on content
 * the document does not have (update-deps.ts; 400 TANDEM_ERR_UPDATE_INCOMPLETE: it would be held,
 * see ServerMember.hold), or writes under a client id another owns (409 TANDEM_ERR_CLIENT_ID_TAKEN
 * or _IN_USE). A change inside a type another session locked (`y:`) is undone for everyone, the
 * rest applied and stored: 409 TANDEM_ERR_LOCKED with the holder.
 */
async function writeUpdate (source: DocumentApiSource, name: string, update: Uint8Array, userId: string): Promise<void> {
  try {
    // garbage is refused before a document is loaded for it
    Y.decodeUpdate(update)
  } catch (err) {
    throw new TandemError('TANDEM_ERR_INVALID_UPDATE', (err as Error).message, { cause: err })
  }
  const { documents } = source
  const { doc, loaded } = documents.open(name)
  await loaded
  const member = new ServerMember(userId, source.authenticated)
  doc.addMember(member)
  try {
    await member.submit(doc, update)
  } finally {
    doc.removeMember(member)
    documents.release(doc)
  }
}

/** The user an API write is attributed to: `?userId=`, else the Tandem-User-Id header, else `api`. */
function callerOf (req: IncomingMessage): string {
  const fromQuery = new URL(req.url ?? '/', 'http://localhost').searchParams.get('userId')
  const header = req.headers[USER_HEADER]
  const userId = fromQuery ?? (typeof header === 'string' ? header : DEFAULT_API_USER)
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is refused
  if (userId.length === 0 || userId.length > MAX_USER_ID_LENGTH || /[\u0000-\u001f\u007f]/.test(userId)) {
    throw Object.assign(new Error(`userId must be 1 to ${MAX_USER_ID_LENGTH} characters without control characters`), { statusCode: 400 })
  }
  return userId
}

/** Bytes the server reads and drops after refusing a body as too large, before it hangs up. */
const MAX_DISCARD = 1024 * 1024

/**
 * Reads a request body of at most `limit` bytes. A larger one (by its Content-Length, or once
 * that many bytes arrived) is refused with TANDEM_ERR_MESSAGE_TOO_BIG at once, never buffered
 * past the limit; the rest is read and dropped (up to a bound, then the connection is cut) so the
 * client can read the 413.
 */
function readBody (req: IncomingMessage, limit: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const tooBig = (): void => {
      req.off('data', collect)
      let discarded = 0
      req.on('data', (chunk: Buffer) => {
        discarded += chunk.byteLength
        if (discarded > MAX_DISCARD) req.socket.destroy()
      })
      reject(new TandemError('TANDEM_ERR_MESSAGE_TOO_BIG', `the body is over ${limit} bytes`))
    }
    const declared = Number(req.headers['content-length'])
    const chunks: Buffer[] = []
    let size = 0
    const collect = (chunk: Buffer): void => {
      size += chunk.byteLength
      if (size > limit) return tooBig()
      chunks.push(chunk)
    }
    req.on('error', reject)
    if (Number.isFinite(declared) && declared > limit) return tooBig()
    req.on('data', collect)
    req.on('end', () => {
      if (size <= limit) resolve(new Uint8Array(Buffer.concat(chunks, size)))
    })
  })
}

/** The answer to a failed call: the registry's status and one readable line (with the holder for a lock). */
function failure (err: unknown): RouteResult {
  const statusCode = (err as { statusCode?: unknown } | null)?.statusCode
  if (!isTandemError(err)) {
    if (typeof statusCode === 'number' && statusCode >= 400 && statusCode < 500) return { status: statusCode, body: { error: (err as Error).message } }
    throw err
  }
  // the registry's status (shared/errors.ts); the enforced locks' refusal (TANDEM_ERR_LOCKED, 409)
  // carries the holder (LockInfo), answered as { holder }
  const status = err.httpStatus
  const body: Record<string, unknown> = { error: `${err.code}: ${err.message}`, code: err.code }
  const holder = (err as { holder?: unknown }).holder
  if (holder !== undefined) body.holder = holder
  return { status, body, headers: status === 413 ? { connection: 'close' } : undefined }
}
