import type { Router, Route } from './router.js'
import type { Collaboration } from '../session/collaboration.js'
import type { DocumentRegistry } from '../document/registry.js'
import type { StatsSummary } from '../observability/stats.js'
import { ERRORS } from '../../shared/errors.js'
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
