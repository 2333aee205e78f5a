import type { IncomingMessage } from 'node:http'
import type { Router, Route } from './router.js'
import type { Collaboration } from '../session/collaboration.js'
import type { DocumentRegistry } from '../document/registry.js'
import type { StatsSummary } from '../observability/stats.js'
import { ERRORS } from '../../shared/errors.js'
import { MAX_DOCUMENT_NAME_LENGTH } from '../../shared/constants.js'
import type { Revocation } from '../store/store.js'
import type { RevocationTarget } from '../auth/revocations.js'

/** Largest JSON body the API reads; a revocation is a few dozen bytes. */
const MAX_JSON_BODY_BYTES = 4_096
/** Longest user id, session id or jti a revocation may name. */
const MAX_REVOKED_VALUE_LENGTH = MAX_DOCUMENT_NAME_LENGTH
import { registerDocumentApi, type DocumentApiSource } from './documents.js'

/** What the admin API reads of the server (lazily: it exists only while listening). */
export interface ApiSource {
  server: {
    readonly status: string
    readonly sessions: ReadonlySet<{
      readonly doc: { readonly name: string }
      readonly identity: { readonly userId: string }
      close (code: number, reason: 'kicked', message?: string): void
    }>
    readonly documents: DocumentRegistry
    readonly collaboration: Collaboration
    readonly stats: { summary (): StatsSummary }
    readonly documentApi: DocumentApiSource
    revoke (target: RevocationTarget): Promise<{ revocation: Revocation, sessions: number }>
    recheck (doc: string): Promise<number>
  }
}

/**
 * The admin HTTP API under /api. The router's admin guard (admin.ts) checks the token for every
 * path under /api; names in the path are percent-decoded and may contain `/`.
 *
 *   GET    /api/documents                       [{ name, sessions, users }]
 *   GET    /api/documents/:name/presence        [PresenceEntry]
 *   GET    /api/documents/:name/locks           [LockInfo]
 *   DELETE /api/documents/:name/locks/:resource { released: LockInfo }, 404 when not held
 *   DELETE /api/documents/:name/users/:userId     { kicked: n }: closes that user's connections
 *                                                here with 4403 (session end reason `kicked`); 404 when none
 *   GET    /api/stats                           StatsSummary (sessions over a recent window)
 *   POST   /api/revocations                     { userId } | { sessionId } | { jti }: 200
 *                                              { revocation, sessions } (sessions ended here;
 *                                              every instance ends its own within a second)
 *   POST   /api/documents/:name/recheck         { rechecked: n }: authenticates the document's
 *                                              sessions again, here and on every instance
 *   ...and the document API (content, updates, delete, restore): see documents.ts
 */
export function registerApi (router: Router, source: ApiSource): void {
  const guarded = (route: Route): Route => (req, params) => {
    if (source.server.status !== 'listening' && source.server.status !== 'draining') {
      return { status: 503, body: { error: `server is ${source.server.status}` } }
    }
    return route(req, params)
  }
  // first on purpose: its `:name*` routes are anchored (RESERVED_NAME_TAIL), so they cannot take
  // .../locks/r or .../users/u whichever order the routes are in
  registerDocumentApi(router, () => source.server.documentApi, guarded)
  router
    .add('GET', '/api/documents', guarded(() => ({ status: 200, body: listDocuments(source.server) })))
    .add('GET', '/api/documents/:name*/presence', guarded((_req, { name }) => ({
      status: 200, body: source.server.collaboration.presence(name as string)
    })))
    .add('GET', '/api/documents/:name*/locks', guarded(async (_req, { name }) => ({
      status: 200, body: await source.server.collaboration.locks.list(name as string)
    })))
    .add('DELETE', '/api/documents/:name*/users/:userId', guarded((_req, { name, userId }) => {
      let kicked = 0
      for (const session of [...source.server.sessions]) {
        if (session.doc.name !== name || session.identity.userId !== userId) continue
        session.close(ERRORS.TANDEM_ERR_KICKED.closeCode, 'kicked', 'TANDEM_ERR_KICKED')
        kicked++
      }
      return kicked === 0 ? { status: 404, body: { error: 'no connection of that user here' } } : { status: 200, body: { kicked } }
    }))
    .add('GET', '/api/stats', guarded(() => ({ status: 200, body: source.server.stats.summary() })))
    .add('POST', '/api/revocations', guarded(async req => {
      const target = revocationTarget(await readJson(req))
      const { revocation, sessions } = await source.server.revoke(target)
      return { status: 200, body: { revocation, sessions } }
    }))
    .add('POST', '/api/documents/:name*/recheck', guarded(async (_req, { name }) => ({
      status: 200, body: { rechecked: await source.server.recheck(name as string) }
    })))
    .add('DELETE', '/api/documents/:name*/locks/:resource', guarded(async (_req, { name, resource }) => {
      const released = await source.server.collaboration.locks.forceRelease(name as string, resource as string)
      return released === null
        ? { status: 404, body: { error: 'the lock is not held' } }
        : { status: 200, body: { released } }
    }))
}

function listDocuments (server: ApiSource['server']): Array<{ name: string, sessions: number, users: number }> {
  const rows = new Map<string, { name: string, sessions: number, users: number }>()
  for (const doc of server.documents.all()) rows.set(doc.name, { name: doc.name, sessions: 0, users: 0 })
  for (const session of server.sessions) {
    const name = session.doc.name
    const row = rows.get(name) ?? { name, sessions: 0, users: 0 }
    row.sessions++
    rows.set(name, row)
  }
  for (const { name, users } of server.collaboration.documents()) {
    const row = rows.get(name) ?? { name, sessions: 0, users: 0 }
    row.users = users
    rows.set(name, row)
  }
  return [...rows.values()].sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
}

/** An error the router answers with its status and message. */
function badRequest (status: number, message: string): Error {
  return Object.assign(new Error(message), { statusCode: status })
}

/** Reads a JSON body of at most MAX_JSON_BODY_BYTES: 413 beyond, 400 when it is not JSON. */
async function readJson (req: IncomingMessage): Promise<unknown> {
  const declared = Number(req.headers['content-length'] ?? 0)
  if (declared > MAX_JSON_BODY_BYTES) throw badRequest(413, `the body is over ${MAX_JSON_BODY_BYTES} bytes`)
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.byteLength
    if (size > MAX_JSON_BODY_BYTES) {
      req.resume()
      throw badRequest(413, `the body is over ${MAX_JSON_BODY_BYTES} bytes`)
    }
    chunks.push(chunk)
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch {
    throw badRequest(400, 'the body must be JSON')
  }
}

/** Exactly one of userId, sessionId, jti: a non-empty string of at most 512 characters. */
function revocationTarget (body: unknown): RevocationTarget {
  const expected = 'expected one of {"userId": "..."}, {"sessionId": "..."}, {"jti": "..."}'
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw badRequest(400, expected)
  const keys = Object.keys(body)
  const key = keys[0]
  if (keys.length !== 1 || (key !== 'userId' && key !== 'sessionId' && key !== 'jti')) throw badRequest(400, expected)
  const value = (body as Record<string, unknown>)[key]
  if (typeof value !== 'string' || value === '' || value.length > MAX_REVOKED_VALUE_LENGTH) {
    throw badRequest(400, `${key} must be a string of 1 to ${MAX_REVOKED_VALUE_LENGTH} characters`)
  }
  return { kind: key === 'userId' ? 'user' : key === 'sessionId' ? 'session' : 'jti', value }
}
