import { randomId } from '../session/ids.js'
import { TandemError } from '../../shared/errors.js'

/** Who a session is, from the token (or anonymous query parameters). Never from awareness. */
export interface Identity {
  userId: string
  name: string
  color: string
  access: 'read' | 'write'
  /** Allowed document names or `prefix/*` patterns; undefined allows all. */
  docs?: readonly string[]
  /**
   * True for a connection admitted without credentials (no auth secret): its user id proves
   * nothing, so what it owns (client ids) is owned by the connection and ends with it.
   */
  anonymous?: boolean
  /** When the credentials expire (ms since the epoch): the session ends then unless refreshed. */
  expiresAt?: number
  /**
   * When the credentials were issued (ms): a user's revocation covers what was issued before it.
   * A JWT without `iat` counts as issued at 0 (always covered); a hook's answer as issued now.
   */
  issuedAt?: number
  /** The token's id (`jti`), for revoking one token. */
  jti?: string
}

/** What an authenticator gets: the request's document, token, query parameters and headers. */
export interface AuthRequest {
  /** The decoded, validated document name. */
  document: string
  /** The `token` query parameter, else the first Sec-WebSocket-Protocol value. */
  token: string | undefined
  query: URLSearchParams
  /** The upgrade request's headers, `cookie` included. */
  headers: Readonly<Record<string, string | string[] | undefined>>
  /** The peer's address (the proxy's, behind a reverse proxy). */
  remoteAddress: string
}

/** Returns the identity of a connection, or throws TANDEM_ERR_UNAUTHENTICATED / _FORBIDDEN. */
export type Authenticate = (request: AuthRequest) => Promise<Identity>

/** What an `authenticate` hook returns to admit a connection; `name` and `color` default from `userId`. */
export interface HookIdentity {
  userId: string
  name?: string
  color?: string
  /** @default 'write' */
  access?: 'read' | 'write'
  /** Allowed document names or `prefix/*` patterns; checked by the server (403 outside them). */
  docs?: readonly string[]
  /**
   * When this answer stops being valid (ms since the epoch): the session ends then with 4401
   * unless a refresh (a new call of the hook) extends it. @default never
   */
  expiresAt?: number
  /** When the credentials were issued (ms); a user's revocation covers earlier ones. @default now */
  issuedAt?: number
  /** An id of the credentials, for revoking them alone (`POST /api/revocations` `{ jti }`). */
  jti?: string
}

/**
 * The `authenticate` option of createServer: an identity admits the connection, null or false
 * refuses it with 401. Throw a TandemError to choose the refusal (TANDEM_ERR_FORBIDDEN: 403).
 */
export type AuthenticateHook = (request: AuthRequest) => HookIdentity | null | false | Promise<HookIdentity | null | false>

const PALETTE = ['#e6194b', '#3cb44b', '#4363d8', '#f58231', '#911eb4', '#42d4f4', '#f032e6', '#469990']

/** Anonymous access: name and color from the query, a fresh user id per connection. */
export function anonymous (): Authenticate {
  return async ({ query }) => {
    const userId = query.get('user') ?? `anon-${randomId()}`
    return {
      userId: userId.slice(0, 128),
      name: (query.get('name') ?? 'Anonymous').slice(0, 128),
      color: pickColor(query.get('color'), userId),
      access: 'write',
      anonymous: true
    }
  }
}

/**
 * HS256 JWTs: claims sub (required), name, color, docs, access, exp. `verify` checks the
 * signature and the time claims and returns the claims (a JwtPool's, off the event loop), or
 * throws TANDEM_ERR_UNAUTHENTICATED.
 */
export function jwt (verify: (token: string) => Promise<Record<string, unknown>>): Authenticate {
  return async ({ token, document }) => {
    if (token === undefined || token === '') throw new TandemError('TANDEM_ERR_UNAUTHENTICATED', 'no token')
    const claims = await verify(token)
    const { sub, name, color, docs, access, exp, iat, jti } = claims
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
      docs: docs as string[] | undefined,
      // jose checked that exp and iat, when present, are numbers
      expiresAt: typeof exp === 'number' ? exp * 1000 : undefined,
      issuedAt: typeof iat === 'number' ? iat * 1000 : 0,
      jti: typeof jti === 'string' ? jti : undefined
    }
    if (!mayOpen(identity, document)) throw new TandemError('TANDEM_ERR_FORBIDDEN', document)
    return identity
  }
}

/**
 * Wraps an embedder's hook as an Authenticate: a refusal becomes TANDEM_ERR_UNAUTHENTICATED, an
 * identity is checked (a malformed one is the embedder's bug: a plain Error, so a 500) and its
 * `docs` enforced. Errors the hook throws, synchronously or not, reach the caller as rejections.
 */
export function fromHook (hook: AuthenticateHook): Authenticate {
  return async request => {
    const result = await hook(request)
    if (result === null || result === false || result === undefined) {
      throw new TandemError('TANDEM_ERR_UNAUTHENTICATED', 'refused by the authenticate hook')
    }
    const { userId, name, color, access, docs, expiresAt, issuedAt, jti } = result
    if (typeof userId !== 'string' || userId === '') throw new Error('authenticate hook returned no userId')
    if (access !== undefined && access !== 'read' && access !== 'write') {
      throw new Error('authenticate hook returned an access other than "read" or "write"')
    }
    if (docs !== undefined && (!Array.isArray(docs) || !docs.every(d => typeof d === 'string'))) {
      throw new Error('authenticate hook returned docs that are not a list of strings')
    }
    for (const [key, value] of Object.entries({ expiresAt, issuedAt })) {
      if (value !== undefined && (typeof value !== 'number' || !Number.isFinite(value))) {
        throw new Error(`authenticate hook returned a ${key} that is not a number of milliseconds`)
      }
    }
    if (jti !== undefined && typeof jti !== 'string') throw new Error('authenticate hook returned a jti that is not a string')
    const identity: Identity = {
      userId,
      name: typeof name === 'string' ? name : userId,
      color: pickColor(typeof color === 'string' ? color : null, userId),
      access: access ?? 'write',
      docs,
      expiresAt,
      issuedAt: issuedAt ?? Date.now(),
      jti
    }
    if (!mayOpen(identity, request.document)) throw new TandemError('TANDEM_ERR_FORBIDDEN', request.document)
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
