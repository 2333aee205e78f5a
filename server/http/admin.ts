import { createHash, timingSafeEqual } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import type { RouteResult } from './router.js'

/**
 * The guard of the admin endpoints: a request passes with `Authorization: Bearer <token>`, else
 * it gets 401. The comparison is constant-time over digests, so neither the token's bytes nor
 * its length leak through timing.
 */
export function adminGuard (token: string): (req: IncomingMessage) => RouteResult | undefined {
  const expected = digest(token)
  return req => {
    const header = req.headers.authorization
    const match = typeof header === 'string' ? /^Bearer[ ]+(\S+)\s*$/i.exec(header) : null
    if (match !== null && timingSafeEqual(digest(match[1] as string), expected)) return undefined
    return {
      status: 401,
      body: { error: 'admin token required (Authorization: Bearer <token>)' },
      headers: { 'www-authenticate': 'Bearer realm="tandem"' }
    }
  }
}

function digest (text: string): Buffer {
  return createHash('sha256').update(text).digest()
}
