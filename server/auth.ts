import { randomUUID } from 'node:crypto'
import { jwtVerify, errors as joseErrors } from 'jose'
import { TandemError } from '../shared/errors.js'

/** Who a session is, from the token (or anonymous query parameters). Never from awareness. */
export interface Identity {
  userId: string
  name: string
  color: string
  access: 'read' | 'write'
  /** Allowed document names or `prefix/*` patterns; undefined allows all. */
  docs?: readonly string[]
}

/** What an authenticator gets: the request's token, query parameters and headers. */
export interface AuthRequest {
  document: string
  token: string | undefined
  query: URLSearchParams
  headers: Readonly<Record<string, string | string[] | undefined>>
}

/** Returns the identity of a connection, or throws TANDEM_ERR_UNAUTHENTICATED / _FORBIDDEN. */
export type Authenticate = (request: AuthRequest) => Promise<Identity>

const PALETTE = ['#e6194b', '#3cb44b', '#4363d8', '#f58231', '#911eb4', '#42d4f4', '#f032e6', '#469990']

/** Anonymous access: name and color from the query, a fresh user id per connection. */
export function anonymous (): Authenticate {
  return async ({ query }) => {
    const userId = query.get('user') ?? `anon-${randomUUID()}`
    return {
      userId: userId.slice(0, 128),
      name: (query.get('name') ?? 'Anonymous').slice(0, 128),
      color: pickColor(query.get('color'), userId),
      access: 'write'
    }
  }
}

/** HS256 JWTs signed with `secret`: claims sub (required), name, color, docs, access, exp. */
export function jwt (secret: string): Authenticate {
  const key = new TextEncoder().encode(secret)
  return async ({ token, document }) => {
    if (token === undefined || token === '') throw new TandemError('TANDEM_ERR_UNAUTHENTICATED', 'no token')
    let claims: Record<string, unknown>
    try {
      ({ payload: claims } = await jwtVerify(token, key, { algorithms: ['HS256'] }))
    } catch (err) {
      const why = err instanceof joseErrors.JWTExpired ? 'token expired' : 'invalid token'
      throw new TandemError('TANDEM_ERR_UNAUTHENTICATED', why, { cause: err })
    }
    const { sub, name, color, docs, access } = claims
    if (typeof sub !== 'string' || sub === '') throw new TandemError('TANDEM_ERR_UNAUTHENTICATED', 'token has no sub')
    if (access !== undefined && access !== 'read' && access !== 'write') {
      throw new TandemError('TANDEM_ERR_UNAUTHENTICATED', 'access must be "read" or "write"')
    }
    if (docs !== undefined && (!Array.isArray(docs) || !docs.every(d => typeof d === 'string'))) {
      throw new TandemError('TANDEM_ERR_UNAUTHENTICATED', 'docs must be a list of strings')
    }
    const identity: Identity = {
      userId: sub,
      name: typeof name === 'string' ? name : sub,
      color: pickColor(typeof color === 'string' ? color : null, sub),
      access: access ?? 'write',
      docs: docs as string[] | undefined
    }
    if (!mayOpen(identity, document)) throw new TandemError('TANDEM_ERR_FORBIDDEN', document)
    return identity
  }
}

/** True when the identity's `docs` allow the document (exact names or `prefix/*`). */
export function mayOpen (identity: Identity, document: string): boolean {
  if (identity.docs === undefined) return true
  return identity.docs.some(pattern => pattern.endsWith('/*')
    ? document.startsWith(pattern.slice(0, -1))
    : pattern === document)
}

function pickColor (color: string | null, seed: string): string {
  if (color !== null && /^#[0-9a-fA-F]{3,8}$/.test(color)) return color
  let hash = 0
  for (let i = 0; i < seed.length; i++) hash = (hash * 31 + seed.charCodeAt(i)) | 0
  return PALETTE[Math.abs(hash) % PALETTE.length] as string
}
