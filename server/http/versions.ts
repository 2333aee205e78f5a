import type { IncomingMessage } from 'node:http'
import * as Y from 'yjs'
import type { Router, RouteResult } from './router.js'
import type { Versions } from '../versions/versions.js'
import { documentJson } from '../document/content-json.js'
import { validateDocumentName } from '../../shared/document-name.js'

/** What the versions API reads of the server (lazily: versions exist only while listening). */
export interface VersionsApiSource {
  readonly status: string
  /** Read only while listening or draining. */
  readonly versions: Versions
}

/** The largest request body accepted (a label): more is refused with 413. */
const MAX_BODY_BYTES = 64 * 1024
/** The longest label. */
const MAX_LABEL = 256
/** Version ids are 22 characters; anything much longer names no version. */
const MAX_ID = 64

/**
 * The versions API under /api (behind the admin token, guarded by the server's /api guard):
 *
 *   POST /api/documents/:name/versions                 { label? } → 201 VersionInfo; 404 no such document
 *   GET  /api/documents/:name/versions                 [VersionInfo], newest first
 *   GET  /api/documents/:name/versions/:id/content     the version's state (Yjs update v1); ?format=json
 *   POST /api/documents/:name/versions/:id/restore     { before }: the id of the version saved before
 */
export function registerVersionsApi (router: Router, server: VersionsApiSource): void {
  /** 503 unless the server is listening (or draining): versions exist only then. */
  const unavailable = (): RouteResult | null => {
    if (server.status !== 'listening' && server.status !== 'draining') return { status: 503, body: { error: `server is ${server.status}` } }
    return null
  }
  const named = (name: string): RouteResult | null => {
    try {
      validateDocumentName(name)
      return null
    } catch (err) {
      return { status: 400, body: { error: (err as Error).message } }
    }
  }
  router
    .add('POST', '/api/documents/:name*/versions', async (req, { name }) => {
      const refusal = unavailable()
      if (refusal !== null) return refusal
      const bad = named(name as string)
      if (bad !== null) return bad
      const body = await readJson(req)
      if ('status' in body) return body
      const label = body.value === undefined ? null : (body.value as { label?: unknown }).label ?? null
      if (label !== null && (typeof label !== 'string' || label.length > MAX_LABEL)) {
        return { status: 400, body: { error: `label must be a string of at most ${MAX_LABEL} characters` } }
      }
      const version = await server.versions.create(name as string, label)
      if (version === null) return { status: 404, body: { error: 'no such document' } }
      return { status: 201, body: publicVersion(version) }
    })
    .add('GET', '/api/documents/:name*/versions', async (_req, { name }) => {
      const refusal = unavailable()
      if (refusal !== null) return refusal
      return { status: 200, body: (await server.versions.list(name as string)).map(publicVersion) }
    })
    .add('GET', '/api/documents/:name*/versions/:id/content', async (req, { name, id }) => {
      const refusal = unavailable()
      if (refusal !== null) return refusal
      const state = (id as string).length > MAX_ID ? null : await server.versions.content(name as string, id as string)
      if (state === null) return { status: 404, body: { error: 'no such version' } }
      const format = new URL(req.url ?? '/', 'http://x').searchParams.get('format')
      if (format === 'json') {
        const ydoc = new Y.Doc()
        try {
          Y.applyUpdate(ydoc, state)
          return { status: 200, body: documentJson(ydoc) }
        } finally {
          ydoc.destroy()
        }
      }
      if (format !== null && format !== 'binary') return { status: 400, body: { error: 'format must be json or binary' } }
      return { status: 200, body: state, contentType: 'application/octet-stream' }
    })
    .add('POST', '/api/documents/:name*/versions/:id/restore', async (_req, { name, id }) => {
      const refusal = unavailable()
      if (refusal !== null) return refusal
      if (server.status !== 'listening') return { status: 503, body: { error: 'server is draining' } }
      const before = (id as string).length > MAX_ID ? null : await server.versions.restore(name as string, id as string)
      if (before === null) return { status: 404, body: { error: 'no such version' } }
      return { status: 200, body: { before: before.id } }
    })
}

/** The contract's shape: `{ id, label, createdAt, authors }`, plus `automatic`. */
function publicVersion (version: { id: string, label: string | null, createdAt: number, authors: string[], automatic: boolean }): object {
  return { id: version.id, label: version.label, createdAt: version.createdAt, authors: version.authors, automatic: version.automatic }
}

/**
 * Reads a JSON body of at most MAX_BODY_BYTES; an empty body is `undefined`. A larger one is
 * refused with 413 once read (up to 16 times the limit, so the client hears the answer; past that
 * the connection is cut).
 */
async function readJson (req: IncomingMessage): Promise<{ value: unknown } | RouteResult> {
  const chunks: Buffer[] = []
  const size = await new Promise<number>((resolve, reject) => {
    let read = 0
    req.on('data', (chunk: Buffer) => {
      read += chunk.byteLength
      if (read <= MAX_BODY_BYTES) chunks.push(chunk)
      else if (read > 16 * MAX_BODY_BYTES) req.destroy()
    })
    req.on('end', () => resolve(read))
    req.on('error', reject)
    req.on('close', () => resolve(read))
  })
  if (size > MAX_BODY_BYTES) return { status: 413, body: { error: `the body is larger than ${MAX_BODY_BYTES} bytes` } }
  const text = Buffer.concat(chunks).toString('utf8').trim()
  if (text === '') return { value: undefined }
  try {
    const value: unknown = JSON.parse(text)
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return { status: 400, body: { error: 'the body must be a JSON object' } }
    return { value }
  } catch (err) {
    return { status: 400, body: { error: `the body is not JSON: ${(err as Error).message}` } }
  }
}
